//! Argument checking at planning time: type coercion with errors that name the function and its
//! signatures, and constant (literal) arguments such as a CSAT threshold.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::physical_expr::expressions::Literal;

/// How a numeric argument is widened before it reaches a kernel.
///
/// Integers up to 64 bits keep their type (kernels widen them per row, with no conversion pass
/// over the batch); everything else becomes `Float64`, so each kernel has exactly two paths.
/// Decimals and `UInt64` become `Float64`: metric inputs are scores, weights and amounts, whose
/// integrality and range checks survive the conversion.
pub fn numeric(function: &str, signatures: &str, arg: &str, t: &DataType) -> Result<DataType> {
    use DataType::*;
    match t {
        t if crate::common::fold::is_native_int(t) => Ok(t.clone()),
        Null => Ok(Int64),
        UInt64 | Float16 | Float32 | Float64 => Ok(Float64),
        Decimal32(_, _) | Decimal64(_, _) | Decimal128(_, _) | Decimal256(_, _) => Ok(Float64),
        Dictionary(_, value) => numeric(function, signatures, arg, value),
        other => plan_err!(
            "{function}: {arg} must be a number (any integer, float or decimal type), not {other}. \
             Accepted: {signatures}"
        ),
    }
}

/// Like [`numeric`], but always `Float64` (for constant parameters and weights).
pub fn float(function: &str, signatures: &str, arg: &str, t: &DataType) -> Result<DataType> {
    numeric(function, signatures, arg, t).map(|_| DataType::Float64)
}

/// Checks the argument count against the accepted range.
pub fn arity(function: &str, signatures: &str, types: &[DataType], min: usize, max: usize) -> Result<()> {
    if types.len() < min || types.len() > max {
        let got = types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ");
        return plan_err!(
            "{function} takes {} argument{}, got {} ({got}). Accepted: {signatures}",
            if min == max { min.to_string() } else { format!("{min} to {max}") },
            if max == 1 { "" } else { "s" },
            types.len()
        );
    }
    Ok(())
}

/// The value of a constant argument, or `None` when the argument was not given.
///
/// Constants are checked when the accumulator is built, before any row is read.
pub fn constant_f64(args: &AccumulatorArgs, index: usize, function: &str, arg: &str) -> Result<Option<f64>> {
    let Some(expr) = args.exprs.get(index) else {
        return Ok(None);
    };
    let any: &dyn std::any::Any = expr.as_ref();
    let Some(literal) = any.downcast_ref::<Literal>() else {
        return plan_err!("{function}: {arg} must be a constant, not the expression {expr}");
    };
    match literal.value().cast_to(&DataType::Float64)? {
        ScalarValue::Float64(Some(v)) if v.is_finite() => Ok(Some(v)),
        other => plan_err!("{function}: {arg} must be a finite number, not {other}"),
    }
}

/// The value of a constant string argument, or `None` when the argument was not given.
pub fn constant_str(args: &AccumulatorArgs, index: usize, function: &str, arg: &str) -> Result<Option<String>> {
    let Some(expr) = args.exprs.get(index) else {
        return Ok(None);
    };
    let any: &dyn std::any::Any = expr.as_ref();
    let Some(literal) = any.downcast_ref::<Literal>() else {
        return plan_err!("{function}: {arg} must be a constant string, not the expression {expr}");
    };
    match literal.value().cast_to(&DataType::Utf8)? {
        ScalarValue::Utf8(Some(v)) => Ok(Some(v)),
        other => plan_err!("{function}: {arg} must be a constant string, not {other}"),
    }
}
