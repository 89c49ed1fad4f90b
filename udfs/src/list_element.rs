//! `list[i]` (`array_element`) taken by one gather instead of one copy per row.
//!
//! A metric that answers a list per group — `retention(...)` most of all, one list per user —
//! is read back by indexing it: `sum(r[1]), sum(r[2])` over millions of users. DataFusion's
//! `array_element` builds its result row by row through `MutableArrayData`, a dynamic call per
//! row: reading back three flags of 5 M users took up to a sixth of the whole retention query
//! (benches/results/2026-12-03-retention-lists.md). Here the position of every row's element is
//! computed from the offsets in one pass and the elements are gathered with Arrow's `take`, the
//! same kernel any column's gather uses, for every element type.
//!
//! [`ListElementRewrite`] puts [`ListElement`] in place of DataFusion's `array_element` in every
//! plan (`r[1]`, `array_element(r, 1)`, `list_extract(...)` and the other aliases). It keeps the
//! original's name, signature, return type and column names, so plans, results and column names
//! read the same; a plan sent to another process (a cluster's executors) names the function
//! `array_element`, which there is DataFusion's own, with the same results.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, GenericListArray, Int64Array, OffsetSizeTrait, UInt64Array};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::take;
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, Result, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::expr_rewriter::FunctionRewrite;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

/// DataFusion's `array_element` with a vectorized evaluation (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ListElement {
    original: Arc<ScalarUDF>,
}

/// The one [`ListElement`] every rewritten plan shares.
pub fn list_element_udf() -> Arc<ScalarUDF> {
    static UDF: LazyLock<Arc<ScalarUDF>> = LazyLock::new(|| {
        let original = datafusion::functions_nested::extract::array_element_udf();
        Arc::new(ScalarUDF::new_from_impl(ListElement { original }))
    });
    Arc::clone(&UDF)
}

impl ScalarUDFImpl for ListElement {
    fn name(&self) -> &str {
        self.original.name()
    }

    fn aliases(&self) -> &[String] {
        self.original.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.original.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.original.signature()
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.original.coerce_types(arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.original.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.original.return_field_from_args(args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.original.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let [ColumnarValue::Array(list), index] = &args.args[..] {
            let index = match index {
                ColumnarValue::Scalar(ScalarValue::Int64(index)) => Some(Index::Same(*index)),
                ColumnarValue::Array(index) if index.data_type() == &DataType::Int64 => {
                    Some(Index::PerRow(index.as_primitive::<Int64Type>()))
                }
                _ => None,
            };
            match (list.data_type(), index) {
                (DataType::List(f), Some(index)) if !f.data_type().is_null() => {
                    return Ok(ColumnarValue::Array(element_of(list.as_list::<i32>(), &index)?));
                }
                (DataType::LargeList(f), Some(index)) if !f.data_type().is_null() => {
                    return Ok(ColumnarValue::Array(element_of(list.as_list::<i64>(), &index)?));
                }
                _ => {}
            }
        }
        // Constant lists, NULL element types and anything else: DataFusion's own evaluation.
        self.original.invoke_with_args(args)
    }
}

/// The 1-based index asked of each list: negative counts from the end, 0 and past the end are NULL.
enum Index<'a> {
    Same(Option<i64>),
    PerRow(&'a Int64Array),
}

impl Index<'_> {
    #[inline(always)]
    fn at(&self, row: usize) -> Option<i64> {
        match self {
            Index::Same(index) => *index,
            Index::PerRow(indexes) => indexes.is_valid(row).then(|| indexes.value(row)),
        }
    }
}

/// Each row's element of `lists` at `index`: the positions in the values are found from the
/// offsets, and the elements gathered in one `take`.
fn element_of<O: OffsetSizeTrait>(lists: &GenericListArray<O>, index: &Index) -> Result<ArrayRef> {
    let offsets = lists.value_offsets();
    let rows = lists.len();
    let mut positions = Vec::with_capacity(rows);
    let found = BooleanBuffer::collect_bool(rows, |row| {
        let (start, end) = (offsets[row].as_usize() as i64, offsets[row + 1].as_usize() as i64);
        let at = match index.at(row) {
            Some(i) if i > 0 => start + i - 1,
            Some(i) if i < 0 => end + i,
            _ => -1,
        };
        let found = at >= start && at < end && lists.is_valid(row);
        positions.push(if found { at as u64 } else { 0 });
        found
    });
    let positions = UInt64Array::new(ScalarBuffer::from(positions), Some(NullBuffer::new(found)));
    Ok(take(lists.values().as_ref(), &positions, None)?)
}

/// Puts [`ListElement`] in place of DataFusion's `array_element` (an analyzer function rewrite).
#[derive(Debug, Default)]
pub struct ListElementRewrite;

impl ListElementRewrite {
    pub const NAME: &'static str = "cxlake_list_element";
}

impl FunctionRewrite for ListElementRewrite {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn rewrite(&self, expr: Expr, _schema: &DFSchema, _config: &ConfigOptions) -> Result<Transformed<Expr>> {
        match expr {
            Expr::ScalarFunction(call)
                if call.func.name() == "array_element" && call.func.inner().downcast_ref::<ListElement>().is_none() =>
            {
                Ok(Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(list_element_udf(), call.args))))
            }
            other => Ok(Transformed::no(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ListArray, StringArray};
    use datafusion::arrow::datatypes::{Field, UInt8Type};

    fn lists() -> ListArray {
        // [1, 2, 3] | NULL | [] | [4, NULL] | [5], sliced from a list whose first row is [9].
        let whole = ListArray::from_iter_primitive::<UInt8Type, _, _>(vec![
            Some(vec![Some(9)]),
            Some(vec![Some(1), Some(2), Some(3)]),
            None,
            Some(vec![]),
            Some(vec![Some(4), None]),
            Some(vec![Some(5)]),
        ]);
        whole.slice(1, 5)
    }

    fn elements(index: &Index) -> Vec<Option<u8>> {
        let out = element_of(&lists(), index).unwrap();
        out.as_primitive::<UInt8Type>().iter().collect()
    }

    #[test]
    fn indexes_count_from_one_and_from_the_end() {
        // Expected by hand from the lists above: NULL lists, empty lists, positions past either
        // end and index 0 give NULL; a NULL element stays NULL.
        assert_eq!(elements(&Index::Same(Some(1))), [Some(1), None, None, Some(4), Some(5)]);
        assert_eq!(elements(&Index::Same(Some(2))), [Some(2), None, None, None, None]);
        assert_eq!(elements(&Index::Same(Some(-1))), [Some(3), None, None, None, Some(5)]);
        assert_eq!(elements(&Index::Same(Some(-3))), [Some(1), None, None, None, None]);
        assert_eq!(elements(&Index::Same(Some(0))), [None; 5]);
        assert_eq!(elements(&Index::Same(Some(4))), [None; 5]);
        assert_eq!(elements(&Index::Same(None)), [None; 5]);
        let per_row = Int64Array::from(vec![Some(3), Some(1), Some(1), Some(-2), None]);
        assert_eq!(elements(&Index::PerRow(&per_row)), [Some(3), None, None, Some(4), None]);
    }

    #[test]
    fn strings_and_large_lists_are_gathered_too() {
        let field = Arc::new(Field::new_list_field(DataType::Utf8, true));
        let values: ArrayRef = Arc::new(StringArray::from(vec!["a", "bb", "ccc"]));
        let offsets = datafusion::arrow::buffer::OffsetBuffer::<i64>::new(vec![0i64, 2, 3].into());
        let lists = GenericListArray::<i64>::new(field, offsets, values, None);
        let out = element_of(&lists, &Index::Same(Some(-1))).unwrap();
        assert_eq!(out.as_string::<i32>().iter().collect::<Vec<_>>(), [Some("bb"), Some("ccc")]);
    }
}
