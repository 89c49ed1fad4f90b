//! Scoring customers with fitted (or published) models: P(alive), expected purchases, the
//! per-customer likelihood, expected spend and lifetime value, as scalar functions.
//!
//! A `model` argument is any STRUCT with the parameter fields (`r`, `alpha`, `a`, `b` or `p`,
//! `q`, `gamma`) of any numeric type — what the fits return, or `named_struct(...)` of published
//! values; other fields are ignored. Every row is scored on its own, so the model may be a
//! constant, a column from a join with the fit, or differ per row.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, StructArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::bgnbd::{BgNbd, Rfm};
use super::gamma_gamma::GammaGamma;
use super::{check_customer, CustomerCheck};
use crate::common::{args, columnar_result, fmt_f64, invalid_input_error, session_policy, InvalidInput};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Score {
    PAlive,
    ExpectedPurchases,
    LogLikelihood,
    ExpectedSpend,
    LifetimeValue,
}

/// What each argument of a scoring function is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Arg {
    BgModel,
    GgModel,
    Number(&'static str),
}

impl Score {
    pub const ALL: [Score; 5] =
        [Self::PAlive, Self::ExpectedPurchases, Self::LogLikelihood, Self::ExpectedSpend, Self::LifetimeValue];

    pub fn name(self) -> &'static str {
        match self {
            Self::PAlive => "bgnbd_p_alive",
            Self::ExpectedPurchases => "bgnbd_expected_purchases",
            Self::LogLikelihood => "bgnbd_log_likelihood",
            Self::ExpectedSpend => "gamma_gamma_expected_spend",
            Self::LifetimeValue => "customer_lifetime_value",
        }
    }

    pub fn signatures(self) -> &'static str {
        match self {
            Self::PAlive => "bgnbd_p_alive(model, frequency, recency, age)",
            Self::ExpectedPurchases => "bgnbd_expected_purchases(model, t, frequency, recency, age)",
            Self::LogLikelihood => "bgnbd_log_likelihood(model, frequency, recency, age)",
            Self::ExpectedSpend => "gamma_gamma_expected_spend(model, frequency, monetary_value)",
            Self::LifetimeValue => {
                "customer_lifetime_value(bg_model, gg_model, frequency, recency, age, monetary_value \
                 [, months [, monthly_discount [, units_per_month]]])"
            }
        }
    }

    fn args(self) -> (&'static [Arg], usize) {
        use Arg::*;
        match self {
            Self::PAlive | Self::LogLikelihood => {
                (&[BgModel, Number("frequency"), Number("recency"), Number("age")], 4)
            }
            Self::ExpectedPurchases => {
                (&[BgModel, Number("t"), Number("frequency"), Number("recency"), Number("age")], 5)
            }
            Self::ExpectedSpend => (&[GgModel, Number("frequency"), Number("monetary_value")], 3),
            Self::LifetimeValue => (
                &[
                    BgModel,
                    GgModel,
                    Number("frequency"),
                    Number("recency"),
                    Number("age"),
                    Number("monetary_value"),
                    Number("months"),
                    Number("monthly_discount"),
                    Number("units_per_month"),
                ],
                6,
            ),
        }
    }
}

/// Defaults of `customer_lifetime_value`'s optional arguments: 12 months, 1 % monthly
/// discount, 4.345 time units (weeks) per month.
const CLV_DEFAULTS: [f64; 3] = [12.0, 0.01, 4.345];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScoreFunction {
    score: Score,
    signature: Signature,
}

impl ScoreFunction {
    pub fn new(score: Score) -> Self {
        Self { score, signature: Signature::user_defined(Volatility::Immutable) }
    }
}

pub fn udf(score: Score) -> Arc<ScalarUDF> {
    Arc::new(ScalarUDF::new_from_impl(ScoreFunction::new(score)))
}

fn model_type(function: &str, signatures: &str, parameters: &[&str], t: &DataType) -> Result<DataType> {
    let DataType::Struct(fields) = t else {
        return plan_err!(
            "{function}: the model must be a STRUCT with fields {} (what the fit returns, or named_struct(...)), \
             not {t}. Accepted: {signatures}",
            parameters.join(", ")
        );
    };
    for p in parameters {
        match fields.iter().find(|f| f.name() == p) {
            None => {
                return plan_err!(
                    "{function}: the model has no field '{p}'; it needs {}. Accepted: {signatures}",
                    parameters.join(", ")
                )
            }
            Some(f) => {
                args::float(function, signatures, &format!("model field '{p}'"), f.data_type())?;
            }
        }
    }
    Ok(t.clone())
}

impl ScalarUDFImpl for ScoreFunction {
    fn name(&self) -> &str {
        self.score.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let (name, sigs) = (self.score.name(), self.score.signatures());
        let (kinds, required) = self.score.args();
        args::arity(name, sigs, types, required, kinds.len())?;
        types
            .iter()
            .zip(kinds)
            .map(|(t, kind)| match kind {
                Arg::BgModel => model_type(name, sigs, &BgNbd::PARAMETERS, t),
                Arg::GgModel => model_type(name, sigs, &GammaGamma::PARAMETERS, t),
                Arg::Number(arg) => args::float(name, sigs, arg, t),
            })
            .collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let policy = session_policy(&args.config_options);
        let scalar_result = args.args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (kinds, _) = self.score.args();
        let mut columns: Vec<Float64Array> = Vec::new();
        for (array, kind) in arrays.iter().zip(kinds) {
            match kind {
                Arg::BgModel => columns.extend(model_columns(array, &BgNbd::PARAMETERS)?),
                Arg::GgModel => columns.extend(model_columns(array, &GammaGamma::PARAMETERS)?),
                Arg::Number(_) => columns.push(array.as_primitive::<Float64Type>().clone()),
            }
        }
        let rows = arrays.first().map_or(args.number_rows, |a| a.len());
        let nulls = NullBuffer::union_many(columns.iter().map(|c| c.nulls()));
        let mut out = Vec::with_capacity(rows);
        let mut values = vec![0.0; columns.len()];
        for row in 0..rows {
            if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                out.push(None);
                continue;
            }
            for (v, c) in values.iter_mut().zip(&columns) {
                *v = c.value(row);
            }
            match self.score_row(&values) {
                Ok(v) => out.push(v),
                Err(detail) if policy == InvalidInput::Error => {
                    return Err(invalid_input_error(self.score.name(), &detail))
                }
                Err(_) => out.push(None),
            }
        }
        columnar_result(Arc::new(Float64Array::from(out)), scalar_result)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(super::docs::score(self.score))
    }
}

/// A model argument's parameter columns as DOUBLE, NULL where the model is NULL.
fn model_columns(array: &ArrayRef, parameters: &[&str]) -> Result<Vec<Float64Array>> {
    let model: &StructArray = array.as_struct();
    parameters
        .iter()
        .map(|p| {
            let column = model.column_by_name(p).expect("checked at planning");
            let column = cast(column, &DataType::Float64)?;
            let column = column.as_primitive::<Float64Type>();
            let nulls = NullBuffer::union(column.nulls(), model.nulls());
            Ok(Float64Array::new(column.values().clone(), nulls))
        })
        .collect()
}

fn check_model(parameters: &[&str], values: &[f64]) -> Result<(), String> {
    match parameters.iter().zip(values).find(|(_, v)| !(v.is_finite() && **v > 0.0)) {
        Some((p, v)) => Err(format!("model parameter {p} = {} is not a positive number", fmt_f64(*v))),
        None => Ok(()),
    }
}

fn check(result: CustomerCheck) -> Result<(), String> {
    match result {
        CustomerCheck::Invalid(reason) => Err(reason),
        _ => Ok(()),
    }
}

impl ScoreFunction {
    /// One row's score, `Ok(None)` where the model has no answer (₂F₁ not converging, q ≤ 1),
    /// `Err(reason)` for invalid input.
    fn score_row(&self, v: &[f64]) -> Result<Option<f64>, String> {
        let bg = |v: &[f64]| -> Result<BgNbd, String> {
            check_model(&BgNbd::PARAMETERS, &v[..4])?;
            Ok(BgNbd::from_slice(&v[..4]))
        };
        let gg = |v: &[f64]| -> Result<GammaGamma, String> {
            check_model(&GammaGamma::PARAMETERS, &v[..3])?;
            Ok(GammaGamma::from_slice(&v[..3]))
        };
        let customer = |v: &[f64]| -> Result<Rfm, String> {
            check(check_customer(v[0], Some((v[1], v[2])), None))?;
            Ok(Rfm { x: v[0], t_x: v[1], age: v[2] })
        };
        match self.score {
            Score::PAlive => Ok(Some(bg(v)?.p_alive(customer(&v[4..])?))),
            Score::LogLikelihood => Ok(Some(bg(v)?.ln_likelihood(customer(&v[4..])?))),
            Score::ExpectedPurchases => {
                let t = v[4];
                if !(t.is_finite() && t >= 0.0) {
                    return Err(format!("t {} is not a finite non-negative time", fmt_f64(t)));
                }
                Ok(bg(v)?.expected_purchases(t, customer(&v[5..])?))
            }
            Score::ExpectedSpend => {
                check(check_customer(v[3], None, Some(v[4])))?;
                Ok(gg(v)?.expected_spend(v[3], v[4]))
            }
            Score::LifetimeValue => {
                let model = bg(v)?;
                let spend_model = gg(&v[4..])?;
                let c = customer(&v[7..])?;
                let m = v[10];
                check(check_customer(c.x, None, Some(m)))?;
                let option = |i: usize| v.get(11 + i).copied().unwrap_or(CLV_DEFAULTS[i]);
                let (months, discount, units) = (option(0), option(1), option(2));
                if !(months.is_finite() && months >= 0.0 && months.fract() == 0.0) {
                    return Err(format!("months {} is not a whole non-negative number", fmt_f64(months)));
                }
                if !(discount.is_finite() && discount > -1.0) {
                    return Err(format!("monthly_discount {} is not a rate above -1", fmt_f64(discount)));
                }
                if !(units.is_finite() && units > 0.0) {
                    return Err(format!("units_per_month {} is not a positive number", fmt_f64(units)));
                }
                Ok(lifetime_value(&model, &spend_model, c, m, months as u32, discount, units))
            }
        }
    }
}

/// Σ_{k=1..months} E[M] · (E[Y(k·u)] − E[Y((k−1)·u)]) / (1 + discount)^k
fn lifetime_value(
    model: &BgNbd,
    spend_model: &GammaGamma,
    c: Rfm,
    m: f64,
    months: u32,
    discount: f64,
    units: f64,
) -> Option<f64> {
    let spend = spend_model.expected_spend(c.x, m)?;
    let mut total = 0.0;
    let mut previous = 0.0;
    for k in 1..=months {
        let purchases = model.expected_purchases(k as f64 * units, c)?;
        total += spend * (purchases - previous) / (1.0 + discount).powi(k as i32);
        previous = purchases;
    }
    Some(total)
}
