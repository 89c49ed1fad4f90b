//! What every metric family shares: the invalid-input policy and its session setting, argument
//! coercion, constant arguments, the row-folding helpers that apply NULL and `FILTER` rules, and
//! the generic accumulators that turn a per-row kernel into an `Accumulator` (ungrouped and
//! sliding windows) and a `GroupsAccumulator` (the `GROUP BY` fast path).

pub mod args;
pub mod fold;
pub mod kernel;
pub mod policy;
pub mod state;

pub use policy::{session_policy, CxlakeOptions, InvalidInput, InvalidInputRule, PolicyAware};

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
