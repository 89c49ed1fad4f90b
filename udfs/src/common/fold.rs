//! Row folding with SQL's rules applied once: a row counts only when every input is non-NULL and
//! the `FILTER (WHERE ...)` clause (if any) is true. Kernels see only counting rows.

use datafusion::arrow::array::{Array, BooleanArray, PrimitiveArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::ArrowPrimitiveType;

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

/// Calls `f(row, value)` for every counting row of one input.
#[inline]
pub fn fold_one<T, F>(values: &PrimitiveArray<T>, filter: Option<&BooleanArray>, mut f: F)
where
    T: ArrowPrimitiveType,
    F: FnMut(usize, T::Native),
{
    let data = values.values();
    match counting_rows(&[values.nulls()], filter) {
        None => data.iter().enumerate().for_each(|(row, &v)| f(row, v)),
        Some(rows) if rows.null_count() == rows.len() => {}
        Some(rows) => rows.valid_indices().for_each(|row| f(row, data[row])),
    }
}

/// Calls `f(row, a, b)` for every counting row of two inputs.
#[inline]
pub fn fold_two<A, B, F>(a: &PrimitiveArray<A>, b: &PrimitiveArray<B>, filter: Option<&BooleanArray>, mut f: F)
where
    A: ArrowPrimitiveType,
    B: ArrowPrimitiveType,
    F: FnMut(usize, A::Native, B::Native),
{
    let (da, db) = (a.values(), b.values());
    match counting_rows(&[a.nulls(), b.nulls()], filter) {
        None => da.iter().zip(db.iter()).enumerate().for_each(|(row, (&x, &y))| f(row, x, y)),
        Some(rows) if rows.null_count() == rows.len() => {}
        Some(rows) => rows.valid_indices().for_each(|row| f(row, da[row], db[row])),
    }
}

/// The first counting row's value for which `bad` holds (for error messages; not a hot path).
pub fn first_where<T, P>(values: &PrimitiveArray<T>, filter: Option<&BooleanArray>, bad: P) -> Option<T::Native>
where
    T: ArrowPrimitiveType,
    P: Fn(T::Native) -> bool,
{
    let mut found = None;
    fold_one(values, filter, |_, v| {
        if found.is_none() && bad(v) {
            found = Some(v);
        }
    });
    found
}
