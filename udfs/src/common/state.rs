//! Fixed-size aggregate states that merge by field-wise addition (and retract by subtraction),
//! which is what makes partial/final aggregation and sliding windows exact: counts are `i64`,
//! sums are `f64`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, PrimitiveArray};
use datafusion::arrow::datatypes::{ArrowPrimitiveType, DataType, Field, FieldRef, Float64Type, Int64Type};
use datafusion::common::{internal_err, Result, ScalarValue};

/// A state field's Rust type and its Arrow column.
pub trait StateValue: Copy + Default + Send + Sync + 'static {
    type Arrow: ArrowPrimitiveType<Native = Self>;
    const DATA_TYPE: DataType;
    fn scalar(self) -> ScalarValue;
}

impl StateValue for i64 {
    type Arrow = Int64Type;
    const DATA_TYPE: DataType = DataType::Int64;
    fn scalar(self) -> ScalarValue {
        ScalarValue::Int64(Some(self))
    }
}

impl StateValue for f64 {
    type Arrow = Float64Type;
    const DATA_TYPE: DataType = DataType::Float64;
    fn scalar(self) -> ScalarValue {
        ScalarValue::Float64(Some(self))
    }
}

/// An aggregate state: a row of numbers that adds and subtracts field by field.
pub trait MetricState:
    Copy + Default + std::fmt::Debug + Send + Sync + std::ops::AddAssign + std::ops::SubAssign + 'static
{
    /// The state columns exchanged between partial and final aggregation.
    fn fields(name: &str) -> Vec<FieldRef>;
    fn to_arrays(states: &[Self]) -> Vec<ArrayRef>;
    fn to_scalars(&self) -> Vec<ScalarValue>;
    /// Calls `f(row, state)` for every row of state columns selected by `filter`.
    fn fold_arrays(arrays: &[ArrayRef], filter: Option<&BooleanArray>, f: impl FnMut(usize, Self)) -> Result<()>;
}

pub(crate) fn state_field<T: StateValue>(name: &str, field: &str) -> FieldRef {
    Arc::new(Field::new(format!("{name}[{field}]"), T::DATA_TYPE, true))
}

pub(crate) fn state_array<S, T: StateValue>(states: &[S], get: impl Fn(&S) -> T) -> ArrayRef {
    Arc::new(PrimitiveArray::<T::Arrow>::from_iter_values(states.iter().map(get)))
}

pub(crate) fn state_column<T: StateValue>(arrays: &[ArrayRef], index: usize) -> Result<&PrimitiveArray<T::Arrow>> {
    match arrays.get(index).and_then(|a| a.as_any().downcast_ref::<PrimitiveArray<T::Arrow>>()) {
        Some(a) => Ok(a),
        None => internal_err!("aggregate state column {index} is missing or not {}", T::DATA_TYPE),
    }
}

pub(crate) fn selected(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

/// Declares a state struct with its merge arithmetic and its Arrow state columns.
macro_rules! metric_state {
    ($(#[$meta:meta])* $vis:vis struct $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, Default, PartialEq)]
        $vis struct $name { $($(#[$fmeta])* pub $field: $ty),+ }

        impl ::std::ops::AddAssign for $name {
            #[inline(always)]
            fn add_assign(&mut self, o: Self) { $(self.$field += o.$field;)+ }
        }

        impl ::std::ops::SubAssign for $name {
            #[inline(always)]
            fn sub_assign(&mut self, o: Self) { $(self.$field -= o.$field;)+ }
        }

        impl $crate::common::state::MetricState for $name {
            fn fields(name: &str) -> Vec<::datafusion::arrow::datatypes::FieldRef> {
                vec![$($crate::common::state::state_field::<$ty>(name, stringify!($field))),+]
            }

            fn to_arrays(states: &[Self]) -> Vec<::datafusion::arrow::array::ArrayRef> {
                vec![$($crate::common::state::state_array(states, |s| s.$field)),+]
            }

            fn to_scalars(&self) -> Vec<::datafusion::common::ScalarValue> {
                vec![$($crate::common::state::StateValue::scalar(self.$field)),+]
            }

            fn fold_arrays(
                arrays: &[::datafusion::arrow::array::ArrayRef],
                filter: Option<&::datafusion::arrow::array::BooleanArray>,
                mut f: impl FnMut(usize, Self),
            ) -> ::datafusion::common::Result<()> {
                let mut _index = 0;
                $(
                    let $field = $crate::common::state::state_column::<$ty>(arrays, _index)?.values();
                    _index += 1;
                )+
                let rows = arrays.first().map_or(0, |a| a.len());
                for row in 0..rows {
                    if $crate::common::state::selected(filter, row) {
                        f(row, Self { $($field: $field[row]),+ });
                    }
                }
                Ok(())
            }
        }
    };
}
pub(crate) use metric_state;

metric_state! {
    /// A mean under construction: `Σ value` over `count` rows.
    pub struct MeanState { sum: f64, count: i64 }
}

metric_state! {
    /// A share under construction: `hits` of `count` rows.
    pub struct ShareState { hits: i64, count: i64 }
}
