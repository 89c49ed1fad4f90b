//! Keeping some rows of a batch whose columns may be lists.
//!
//! A grouping that numbers its groups by key leaves holes (keys never seen) that its output
//! drops, and `retention` answers one list per group. Arrow's filter copies a list row by row
//! through its general `MutableArrayData`, which made dropping the holes of a few million lists
//! cost as much as computing them. Here a list keeps its rows by moving offsets and filtering
//! its values in one call: the values of kept rows, marked run by run, go through the same
//! filter kernels as any flat column.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, GenericListArray, OffsetSizeTrait, RecordBatch,
};
use datafusion::arrow::array::{BooleanBufferBuilder, RecordBatchOptions};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::{FilterBuilder, FilterPredicate, SlicesIterator};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;

/// The rows of `batch` where `keep` is set.
pub fn filter_batch(batch: &RecordBatch, keep: &BooleanBuffer) -> Result<RecordBatch> {
    let keep = BooleanArray::new(keep.clone(), None);
    let predicate = FilterBuilder::new(&keep).optimize().build();
    let columns = batch.columns().iter().map(|c| filter_column(c, &keep, &predicate)).collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(predicate.count()));
    Ok(RecordBatch::try_new_with_options(batch.schema(), columns, &options)?)
}

/// The rows of `column` where `keep` (no NULLs) is set; `predicate` is built from `keep`.
fn filter_column(column: &ArrayRef, keep: &BooleanArray, predicate: &FilterPredicate) -> Result<ArrayRef> {
    match column.data_type() {
        DataType::List(_) => filter_list(column.as_list::<i32>(), keep, predicate),
        DataType::LargeList(_) => filter_list(column.as_list::<i64>(), keep, predicate),
        _ => Ok(predicate.filter(column)?),
    }
}

fn filter_list<O: OffsetSizeTrait>(
    list: &GenericListArray<O>,
    keep: &BooleanArray,
    predicate: &FilterPredicate,
) -> Result<ArrayRef> {
    let offsets = list.value_offsets();
    let values = list.values();
    let mut kept_values = BooleanBufferBuilder::new(values.len());
    let mut kept_offsets = Vec::with_capacity(predicate.count() + 1);
    kept_offsets.push(O::zero());
    let mut end = O::zero();
    for (first, past) in SlicesIterator::new(keep) {
        let (from, to) = (offsets[first], offsets[past]);
        kept_values.append_n(from.as_usize() - kept_values.len(), false);
        kept_values.append_n((to - from).as_usize(), true);
        let shift = end - from;
        kept_offsets.extend(offsets[first + 1..=past].iter().map(|&o| o + shift));
        end = to + shift;
    }
    kept_values.append_n(values.len() - kept_values.len(), false);
    let kept_values = BooleanArray::new(kept_values.finish(), None);
    let values_predicate = FilterBuilder::new(&kept_values).optimize().build();
    let values = filter_column(values, &kept_values, &values_predicate)?;
    let nulls = match list.nulls() {
        Some(nulls) => {
            let valid = predicate.filter(&BooleanArray::new(nulls.inner().clone(), None))?;
            Some(NullBuffer::new(valid.as_boolean().values().clone())).filter(|n| n.null_count() > 0)
        }
        None => None,
    };
    let field = match list.data_type() {
        DataType::List(field) | DataType::LargeList(field) => Arc::clone(field),
        _ => unreachable!("a list array has a list type"),
    };
    Ok(Arc::new(GenericListArray::<O>::try_new(field, OffsetBuffer::new(kept_offsets.into()), values, nulls)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, ListArray, StringArray};
    use datafusion::arrow::datatypes::{Field, Int64Type, Schema, UInt8Type};

    #[test]
    fn lists_keep_their_rows_values_and_nulls() {
        // Rows: [1,2] | NULL | [] | [3] | [4,5,6] | [7], from a list whose offsets start past 0
        // (a slice), with one NULL value inside a kept list.
        let whole = ListArray::from_iter_primitive::<UInt8Type, _, _>(vec![
            Some(vec![Some(9)]),
            Some(vec![Some(1), Some(2)]),
            None,
            Some(vec![]),
            Some(vec![Some(3)]),
            Some(vec![Some(4), None, Some(6)]),
            Some(vec![Some(7)]),
        ]);
        let list: ArrayRef = Arc::new(whole.slice(1, 6));
        let keys: ArrayRef = Arc::new(Int64Array::from(vec![10, 11, 12, 13, 14, 15]));
        let names: ArrayRef = Arc::new(StringArray::from(vec!["a", "b", "c", "d", "e", "f"]));
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("l", list.data_type().clone(), true),
            Field::new("n", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(schema, vec![keys, list, names]).unwrap();
        let keep = BooleanBuffer::from(vec![true, true, false, false, true, true]);

        let kept = filter_batch(&batch, &keep).unwrap();

        assert_eq!(kept.num_rows(), 4);
        assert_eq!(kept.column(0).as_primitive::<Int64Type>().values(), &[10, 11, 14, 15]);
        assert_eq!(
            kept.column(2).as_string::<i32>().iter().collect::<Vec<_>>(),
            [Some("a"), Some("b"), Some("e"), Some("f")]
        );
        let lists = kept.column(1).as_list::<i32>();
        assert_eq!(lists.value_offsets(), &[0, 2, 2, 5, 6]);
        assert!(lists.is_valid(0) && lists.is_null(1) && lists.is_valid(2) && lists.is_valid(3));
        let values = lists.values().as_primitive::<UInt8Type>();
        assert_eq!(values.iter().collect::<Vec<_>>(), [Some(1), Some(2), Some(4), None, Some(6), Some(7)]);
    }

    #[test]
    fn a_batch_with_nothing_kept_is_empty_with_its_schema() {
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<UInt8Type, _, _>(vec![Some(vec![Some(1)])]));
        let schema = Arc::new(Schema::new(vec![Field::new("l", list.data_type().clone(), true)]));
        let batch = RecordBatch::try_new(schema, vec![list]).unwrap();
        let kept = filter_batch(&batch, &BooleanBuffer::new_unset(1)).unwrap();
        assert_eq!(kept.num_rows(), 0);
        assert_eq!(kept.schema(), batch.schema());
        assert_eq!(kept.column(0).as_list::<i32>().values().len(), 0);
    }
}
