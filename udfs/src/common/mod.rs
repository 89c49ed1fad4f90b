//! What every metric family shares: the invalid-input policy and its session setting, argument
//! coercion, constant arguments, the row-folding helpers that apply NULL and `FILTER` rules, and
//! the generic accumulators that turn a per-row kernel into an `Accumulator` (ungrouped and
//! sliding windows) and a `GroupsAccumulator` (the `GROUP BY` fast path), and the physical rule
//! that aggregates collecting functions in one phase.

pub mod args;
pub mod collect;
pub mod filter;
pub mod fold;
pub mod groups;
pub mod kernel;
pub mod keys;
pub mod policy;
pub mod single_phase;
pub mod state;
pub mod time;

pub use policy::{session_policy, CxlakeOptions, InvalidInput, InvalidInputRule, PolicyAware};

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::physical_plan::ExecutionPlan;

/// Replaces, from the leaves up, each node of `plan` for which `rewrite` gives a new one: the
/// walk of cxlake's physical rules that swap one operator for their own.
pub fn rewrite_bottom_up(
    plan: Arc<dyn ExecutionPlan>,
    mut rewrite: impl FnMut(&Arc<dyn ExecutionPlan>) -> datafusion::common::Result<Option<Arc<dyn ExecutionPlan>>>,
) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        Ok(match rewrite(&node)? {
            Some(new) => Transformed::yes(new),
            None => Transformed::no(node),
        })
    })
    .map(|t| t.data)
}

/// The accumulator methods of a family's `AggregateUDFImpl`, whose `build(&args, factory)` picks
/// the kernel: every cxlake aggregate runs through the generic kernel accumulators, grouped,
/// ungrouped and in sliding window frames alike.
macro_rules! kernel_accumulators {
    () => {
        $crate::common::collect::collector_accumulators!();

        fn create_sliding_accumulator(
            &self,
            args: ::datafusion::logical_expr::function::AccumulatorArgs,
        ) -> ::datafusion::common::Result<Box<dyn ::datafusion::logical_expr::Accumulator>> {
            self.build(&args, $crate::common::kernel::Ungrouped)
        }
    };
}
pub(crate) use kernel_accumulators;

/// A family's registry: `udaf(metric)` (one shared instance per metric, default policy),
/// `all()` and `add_to_rule()`. `$metric` has `ALL` and `name()`; `$function` has `new(metric)`.
macro_rules! family_registry {
    ($metric:ty, $function:ty) => {
        fn udaf(metric: $metric) -> ::std::sync::Arc<::datafusion::logical_expr::AggregateUDF> {
            use ::datafusion::logical_expr::AggregateUDF;
            static UDAFS: ::std::sync::LazyLock<Vec<::std::sync::Arc<AggregateUDF>>> =
                ::std::sync::LazyLock::new(|| {
                    <$metric>::ALL
                        .iter()
                        .map(|m| ::std::sync::Arc::new(AggregateUDF::new_from_impl(<$function>::new(*m))))
                        .collect()
                });
            ::std::sync::Arc::clone(&UDAFS[<$metric>::ALL.iter().position(|m| *m == metric).unwrap_or(0)])
        }

        /// Every aggregate of this family.
        pub fn all() -> Vec<::std::sync::Arc<::datafusion::logical_expr::AggregateUDF>> {
            <$metric>::ALL.iter().map(|m| udaf(*m)).collect()
        }

        pub(crate) fn add_to_rule(rule: &mut $crate::common::InvalidInputRule) {
            for metric in <$metric>::ALL {
                rule.add::<$function>(metric.name());
            }
        }
    };
}
pub(crate) use family_registry;

use datafusion::common::DataFusionError;

/// The error for a row outside a metric's domain: names the function, the value, and the way out.
pub fn invalid_input_error(function: &str, detail: &str) -> DataFusionError {
    DataFusionError::Execution(format!(
        "{function}: {detail}. Fix or filter out such rows, or run \
         SET cxlake.invalid_input = 'skip' to ignore them like NULLs"
    ))
}

/// A float formatted the way SQL users write it (`7.5`, `11`, `NaN`, `inf`).
pub fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// A scalar function's result column, as a scalar when every argument was one (so that a
/// constant expression stays constant).
pub fn columnar_result(
    result: datafusion::arrow::array::ArrayRef,
    all_scalar: bool,
) -> datafusion::common::Result<datafusion::logical_expr::ColumnarValue> {
    use datafusion::logical_expr::ColumnarValue;
    Ok(if all_scalar {
        ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&result, 0)?)
    } else {
        ColumnarValue::Array(result)
    })
}

/// Asks the processor to bring `slots[index]` into cache (nothing if out of bounds, or on
/// processors without a prefetch instruction here).
#[inline(always)]
pub(crate) fn prefetch<T>(slots: &[T], index: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(slot) = slots.get(index) {
        // SAFETY: prefetching is a hint with no effect on memory; the pointer is in bounds.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((slot as *const T).cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slots, index);
}
