//! Hashable byte keys for values of any type (integers, strings, structs as composite keys),
//! through Arrow's row format: equal values encode to equal bytes, so distinct keys can be kept
//! in a hash set and exchanged between partial and final aggregation as `BINARY`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, GenericListArray, Int32Array, Int64Array};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::{internal_err, plan_err, Result};

/// A key as stored in aggregate states: its row-format bytes.
pub type Key = Box<[u8]>;

/// Encodes the values of one column type as byte keys.
#[derive(Debug)]
pub struct KeyEncoder {
    data_type: DataType,
    converter: RowConverter,
}

impl KeyEncoder {
    pub fn new(data_type: &DataType) -> Result<Self> {
        Ok(Self {
            data_type: data_type.clone(),
            converter: RowConverter::new(vec![SortField::new(data_type.clone())])?,
        })
    }

    /// An encoder for the same type (the converter holds per-instance dictionaries).
    pub fn try_clone(&self) -> Result<Self> {
        Self::new(&self.data_type)
    }

    /// The keys of every row (a NULL row encodes too: callers skip it by its validity).
    pub fn encode(&self, column: &ArrayRef) -> Result<Rows> {
        Ok(self.converter.convert_columns(std::slice::from_ref(column))?)
    }
}

/// Whether the row format can encode a key type (checked at planning, so that a bad key type
/// fails with the function's signature instead of at run time).
pub fn check_key_type(function: &str, signatures: &str, arg: &str, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Null => Ok(DataType::Int64),
        t if RowConverter::supports_fields(&[SortField::new(t.clone())]) => Ok(t.clone()),
        other => plan_err!("{function}: {arg} must be a hashable value (number, string, date, struct ...), not {other}. Accepted: {signatures}"),
    }
}

/// A `LIST<BINARY>` state column type.
pub fn binary_list_field(name: &str, field: &str) -> FieldRef {
    Arc::new(Field::new(format!("{name}[{field}]"), list_of(DataType::Binary), true))
}

/// A `LIST<type>` state column type.
pub fn list_field(name: &str, field: &str, item: DataType) -> FieldRef {
    Arc::new(Field::new(format!("{name}[{field}]"), list_of(item), true))
}

pub fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, true)))
}

/// Builds a `LIST<BINARY>` column, one list per group; `None` is a NULL list.
pub fn binary_lists<'a, I, K>(groups: I) -> ArrayRef
where
    I: IntoIterator<Item = Option<K>>,
    K: IntoIterator<Item = &'a [u8]>,
{
    let mut offsets = vec![0i32];
    let mut valid = Vec::new();
    let mut values: Vec<&'a [u8]> = Vec::new();
    for group in groups {
        valid.push(group.is_some());
        if let Some(keys) = group {
            values.extend(keys);
        }
        offsets.push(values.len() as i32);
    }
    let values = BinaryArray::from_iter_values(values);
    lists(Arc::new(values), offsets, valid)
}

/// Builds a `LIST<INT64>` column from per-group values.
pub fn int64_lists<I, V>(groups: I) -> ArrayRef
where
    I: IntoIterator<Item = Option<V>>,
    V: IntoIterator<Item = i64>,
{
    let mut offsets = vec![0i32];
    let mut valid = Vec::new();
    let mut values = Vec::new();
    for group in groups {
        valid.push(group.is_some());
        if let Some(v) = group {
            values.extend(v);
        }
        offsets.push(values.len() as i32);
    }
    lists(Arc::new(Int64Array::from(values)), offsets, valid)
}

/// Builds a `LIST<INT32>` column from per-group values.
pub fn int32_lists<I, V>(groups: I) -> ArrayRef
where
    I: IntoIterator<Item = Option<V>>,
    V: IntoIterator<Item = i32>,
{
    let mut offsets = vec![0i32];
    let mut valid = Vec::new();
    let mut values = Vec::new();
    for group in groups {
        valid.push(group.is_some());
        if let Some(v) = group {
            values.extend(v);
        }
        offsets.push(values.len() as i32);
    }
    lists(Arc::new(Int32Array::from(values)), offsets, valid)
}

fn lists(values: ArrayRef, offsets: Vec<i32>, valid: Vec<bool>) -> ArrayRef {
    let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid));
    Arc::new(GenericListArray::<i32>::new(field, OffsetBuffer::new(offsets.into()), values, nulls))
}

/// A `LIST<…>` state column, checked.
pub fn list_column(states: &[ArrayRef], index: usize) -> Result<&GenericListArray<i32>> {
    match states.get(index).and_then(|a| a.as_list_opt::<i32>()) {
        Some(a) => Ok(a),
        None => internal_err!("aggregate state column {index} is missing or not a LIST"),
    }
}
