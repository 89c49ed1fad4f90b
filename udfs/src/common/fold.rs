//! Row folding with SQL's rules applied once: a row counts only when every input is non-NULL and
//! the `FILTER (WHERE ...)` clause (if any) is true.
//!
//! Every row of the batch is visited, with a flag saying whether it counts, instead of skipping
//! the rows that do not: kernels turn the flag into a zero contribution without branching, which
//! keeps the loop free of unpredictable jumps and lets it vectorize. A kernel must ignore the
//! value of a row that does not count (a NULL slot holds arbitrary bytes).

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt8Type,
};

/// The rows selected by a filter, as a validity mask (a NULL filter value does not select).
fn filter_mask(filter: &BooleanArray) -> NullBuffer {
    match filter.nulls() {
        Some(nulls) => NullBuffer::new(filter.values() & nulls.inner()),
        None => NullBuffer::new(filter.values().clone()),
    }
}

/// The counting rows: valid in every input and selected by the filter; `None` means all rows.
pub fn counting_rows(inputs: &[Option<&NullBuffer>], filter: Option<&BooleanArray>) -> Option<NullBuffer> {
    let selected = filter.map(filter_mask);
    inputs
        .iter()
        .copied()
        .chain(std::iter::once(selected.as_ref()))
        .fold(None, |acc: Option<NullBuffer>, next| NullBuffer::union(acc.as_ref(), next))
}

/// Calls `f(row, value, counts)` for every row: 64 values per word of the counting mask, with
/// no bounds checks in the inner loop so that it vectorizes.
#[inline(always)]
fn for_each_masked<V: Copy>(data: &[V], rows: &NullBuffer, mut f: impl FnMut(usize, V, bool)) {
    let words = rows.inner().bit_chunks();
    let mut values = data.chunks_exact(64);
    let mut base = 0;
    for (word, chunk) in words.iter().zip(&mut values) {
        for (bit, &v) in chunk.iter().enumerate() {
            f(base + bit, v, (word >> bit) & 1 == 1);
        }
        base += 64;
    }
    let rest = words.remainder_bits();
    for (bit, &v) in values.remainder().iter().enumerate() {
        f(base + bit, v, (rest >> bit) & 1 == 1);
    }
}

/// Calls `f(row, value, counts)` for every row of one input.
#[inline(always)]
pub fn fold_one<T, F>(values: &PrimitiveArray<T>, filter: Option<&BooleanArray>, mut f: F)
where
    T: ArrowPrimitiveType,
    F: FnMut(usize, T::Native, bool),
{
    let data = values.values();
    match counting_rows(&[values.nulls()], filter) {
        None => data.iter().enumerate().for_each(|(row, &v)| f(row, v, true)),
        Some(rows) if rows.null_count() == rows.len() => {}
        Some(rows) => for_each_masked(data, &rows, f),
    }
}

/// Calls `f(row, a, b, counts)` for every row of two inputs.
#[inline(always)]
pub fn fold_two<A, B, F>(a: &PrimitiveArray<A>, b: &PrimitiveArray<B>, filter: Option<&BooleanArray>, mut f: F)
where
    A: ArrowPrimitiveType,
    B: ArrowPrimitiveType,
    F: FnMut(usize, A::Native, B::Native, bool),
{
    let (da, db) = (a.values(), b.values());
    match counting_rows(&[a.nulls(), b.nulls()], filter) {
        None => da.iter().zip(db.iter()).enumerate().for_each(|(row, (&x, &y))| f(row, x, y, true)),
        Some(rows) if rows.null_count() == rows.len() => {}
        Some(rows) => for_each_masked(da, &rows, |row, x, counts| f(row, x, db[row], counts)),
    }
}

/// The numeric input of a kernel after [`super::args::numeric`] coercion: integers keep their
/// width (no conversion pass over the batch) and are widened to `i64` per row; everything
/// else arrives as `Float64`.
pub enum Numeric<'a> {
    Int(&'a ArrayRef),
    Float(&'a PrimitiveArray<Float64Type>),
}

impl<'a> Numeric<'a> {
    pub fn of(array: &'a ArrayRef) -> Option<Self> {
        match array.data_type() {
            DataType::Float64 => Some(Self::Float(array.as_primitive())),
            t if is_native_int(t) => Some(Self::Int(array)),
            _ => None,
        }
    }
}

/// Integer types kernels read natively.
pub fn is_native_int(t: &DataType) -> bool {
    use DataType::*;
    matches!(t, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32)
}

/// Calls `f(row, value, counts)` for every row of an integer column of any native width.
#[inline(always)]
pub fn fold_int(values: &ArrayRef, filter: Option<&BooleanArray>, mut f: impl FnMut(usize, i64, bool)) {
    macro_rules! widen {
        ($t:ty) => {
            fold_one(values.as_primitive::<$t>(), filter, |row, v, counts| f(row, v as i64, counts))
        };
    }
    match values.data_type() {
        DataType::Int8 => widen!(Int8Type),
        DataType::Int16 => widen!(Int16Type),
        DataType::Int32 => widen!(Int32Type),
        DataType::Int64 => widen!(Int64Type),
        DataType::UInt8 => widen!(UInt8Type),
        DataType::UInt16 => widen!(UInt16Type),
        DataType::UInt32 => widen!(UInt32Type),
        other => unreachable!("fold_int on {other}: Numeric::of admits only native integers"),
    }
}

/// The first counting value for which `bad` holds (for error messages; not a hot path).
pub fn first_int(values: &ArrayRef, filter: Option<&BooleanArray>, bad: impl Fn(i64) -> bool) -> Option<i64> {
    let mut found = None;
    fold_int(values, filter, |_, v, counts| {
        if counts && found.is_none() && bad(v) {
            found = Some(v);
        }
    });
    found
}

/// The first counting value for which `bad` holds (for error messages; not a hot path).
pub fn first_float(
    values: &PrimitiveArray<Float64Type>,
    filter: Option<&BooleanArray>,
    bad: impl Fn(f64) -> bool,
) -> Option<f64> {
    let mut found = None;
    fold_one(values, filter, |_, v, counts| {
        if counts && found.is_none() && bad(v) {
            found = Some(v);
        }
    });
    found
}
