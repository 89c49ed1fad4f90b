//! Survey metrics: NPS (with its distribution and confidence interval), CSAT, CES and IQS.
//!
//! All six share one aggregate implementation, [`SurveyFunction`], that differs by metric only
//! in argument types, result type and kernel; the accumulators themselves are the generic ones
//! of [`crate::common::kernel`].

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StructArray};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type};
use datafusion::common::{internal_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{AggregateUDFImpl, DocSection, Documentation, Signature, Volatility};

use crate::common::args;
use crate::common::fold::{first_float, first_int, fold_int, fold_one, fold_two, Numeric};
use crate::common::kernel::{AccumulatorFactory, Kernel};
use crate::common::state::{metric_state, MeanState, MetricState, ShareState};
use crate::common::{fmt_f64, InvalidInput, PolicyAware};

/// The survey metrics, one [`SurveyFunction`] each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SurveyMetric {
    Nps,
    NpsCounts,
    NpsCi,
    Csat,
    Ces,
    Iqs,
}

impl SurveyMetric {
    pub const ALL: [SurveyMetric; 6] = [Self::Nps, Self::NpsCounts, Self::NpsCi, Self::Csat, Self::Ces, Self::Iqs];

    pub fn name(self) -> &'static str {
        match self {
            Self::Nps => "nps",
            Self::NpsCounts => "nps_counts",
            Self::NpsCi => "nps_ci",
            Self::Csat => "csat",
            Self::Ces => "ces",
            Self::Iqs => "iqs",
        }
    }

    /// The accepted call shapes, quoted in planning errors.
    fn signatures(self) -> &'static str {
        match self {
            Self::Nps => "nps(score)",
            Self::NpsCounts => "nps_counts(score)",
            Self::NpsCi => "nps_ci(score), nps_ci(score, confidence)",
            Self::Csat => "csat(score), csat(score, threshold)",
            Self::Ces => "ces(score)",
            Self::Iqs => "iqs(score, weight)",
        }
    }
}

/// One survey metric as a DataFusion aggregate, with its invalid-input policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SurveyFunction {
    metric: SurveyMetric,
    policy: InvalidInput,
    signature: Signature,
}

impl SurveyFunction {
    pub fn new(metric: SurveyMetric) -> Self {
        Self { metric, policy: InvalidInput::default(), signature: Signature::user_defined(Volatility::Immutable) }
    }

    /// Builds the accumulator flavour `factory` makes, with the kernel this call needs.
    fn build<F: AccumulatorFactory>(&self, args: &AccumulatorArgs, factory: F) -> Result<F::Output> {
        let name = self.metric.name();
        Ok(match self.metric {
            SurveyMetric::Nps => factory.build(NpsKernel { output: NpsOutput::Score }, self.policy),
            SurveyMetric::NpsCounts => factory.build(NpsKernel { output: NpsOutput::Counts }, self.policy),
            SurveyMetric::NpsCi => {
                let confidence = args::constant_f64(args, 1, name, "confidence")?.unwrap_or(0.95);
                if !(confidence > 0.0 && confidence < 1.0) {
                    return datafusion::common::plan_err!(
                        "nps_ci: confidence must be a constant strictly between 0 and 1 (such as 0.95), not {confidence}"
                    );
                }
                let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
                factory.build(NpsKernel { output: NpsOutput::Ci { z } }, self.policy)
            }
            SurveyMetric::Csat => {
                let threshold = args::constant_f64(args, 1, name, "threshold")?.unwrap_or(4.0);
                factory.build(CsatKernel { threshold }, self.policy)
            }
            SurveyMetric::Ces => factory.build(CesKernel, self.policy),
            SurveyMetric::Iqs => factory.build(IqsKernel, self.policy),
        })
    }
}

impl PolicyAware for SurveyFunction {
    fn policy(&self) -> InvalidInput {
        self.policy
    }

    fn with_policy(&self, policy: InvalidInput) -> Self {
        Self { policy, ..self.clone() }
    }
}

fn nps_counts_fields() -> Fields {
    Fields::from(vec![
        Field::new("promoters", DataType::Int64, true),
        Field::new("passives", DataType::Int64, true),
        Field::new("detractors", DataType::Int64, true),
        Field::new("responses", DataType::Int64, true),
    ])
}

fn nps_ci_fields() -> Fields {
    Fields::from(vec![
        Field::new("nps", DataType::Float64, true),
        Field::new("lower", DataType::Float64, true),
        Field::new("upper", DataType::Float64, true),
        Field::new("responses", DataType::Int64, true),
    ])
}

impl AggregateUDFImpl for SurveyFunction {
    fn name(&self) -> &str {
        self.metric.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let (name, sigs) = (self.metric.name(), self.metric.signatures());
        match self.metric {
            SurveyMetric::Nps | SurveyMetric::NpsCounts | SurveyMetric::Ces => {
                args::arity(name, sigs, types, 1, 1)?;
                Ok(vec![args::numeric(name, sigs, "score", &types[0])?])
            }
            SurveyMetric::NpsCi | SurveyMetric::Csat => {
                args::arity(name, sigs, types, 1, 2)?;
                let mut coerced = vec![args::numeric(name, sigs, "score", &types[0])?];
                if let Some(t) = types.get(1) {
                    let arg = if self.metric == SurveyMetric::Csat { "threshold" } else { "confidence" };
                    coerced.push(args::float(name, sigs, arg, t)?);
                }
                Ok(coerced)
            }
            SurveyMetric::Iqs => {
                args::arity(name, sigs, types, 2, 2)?;
                Ok(vec![args::float(name, sigs, "score", &types[0])?, args::float(name, sigs, "weight", &types[1])?])
            }
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.metric {
            SurveyMetric::NpsCounts => DataType::Struct(nps_counts_fields()),
            SurveyMetric::NpsCi => DataType::Struct(nps_ci_fields()),
            _ => DataType::Float64,
        })
    }

    crate::common::kernel_accumulators!();

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(match self.metric {
            SurveyMetric::Nps | SurveyMetric::NpsCounts | SurveyMetric::NpsCi => NpsState::fields(args.name),
            SurveyMetric::Csat => ShareState::fields(args.name),
            SurveyMetric::Ces => MeanState::fields(args.name),
            SurveyMetric::Iqs => WeightedState::fields(args.name),
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(documentation(self.metric))
    }
}

metric_state! {
    /// Promoters (9–10), detractors (0–6) and all valid responses; passives are the rest.
    pub struct NpsState { promoters: i64, detractors: i64, responses: i64 }
}

metric_state! {
    /// `Σ score·weight` and `Σ weight` over `count` rows.
    pub struct WeightedState { weighted_sum: f64, weight: f64, count: i64 }
}

#[derive(Debug, Clone, Copy)]
enum NpsOutput {
    Score,
    Counts,
    Ci { z: f64 },
}

#[derive(Debug)]
struct NpsKernel {
    output: NpsOutput,
}

/// A row's NPS contribution, computed without branches so the batch loop vectorizes.
#[inline(always)]
fn nps_row(promoter: bool, detractor: bool, counts: bool) -> NpsState {
    let counts = counts as i64;
    NpsState { promoters: promoter as i64 & counts, detractors: detractor as i64 & counts, responses: counts }
}

fn nps_invalid_int(v: i64) -> bool {
    !(0..=10).contains(&v)
}

fn nps_invalid_f64(v: f64) -> bool {
    !((0.0..=10.0).contains(&v) && v.fract() == 0.0)
}

/// Results are NULL where no row counted. Struct results carry the same NULLs in their fields,
/// so `nps_counts(score)['promoters']` of an empty group is NULL too.
fn nulls_where_empty<S>(states: &[S], count: impl Fn(&S) -> i64) -> Option<NullBuffer> {
    let nulls = NullBuffer::from_iter(states.iter().map(|s| count(s) > 0));
    (nulls.null_count() > 0).then_some(nulls)
}

fn unexpected(function: &str, t: &DataType) -> Result<bool> {
    internal_err!("{function}: unexpected input type {t} after coercion")
}

impl Kernel for NpsKernel {
    type State = NpsState;

    fn name(&self) -> &'static str {
        match self.output {
            NpsOutput::Score => "nps",
            NpsOutput::Counts => "nps_counts",
            NpsOutput::Ci { .. } => "nps_ci",
        }
    }

    fn fold(
        &self,
        args: &[ArrayRef],
        filter: Option<&BooleanArray>,
        mut f: impl FnMut(usize, NpsState),
    ) -> Result<bool> {
        let mut invalid = false;
        match Numeric::of(&args[0]) {
            Some(Numeric::Int(scores)) => fold_int(scores, filter, |row, v, counts| {
                let bad = nps_invalid_int(v);
                invalid |= counts & bad;
                f(row, nps_row(v >= 9, v <= 6, counts & !bad));
            }),
            Some(Numeric::Float(scores)) => fold_one(scores, filter, |row, v, counts| {
                let bad = nps_invalid_f64(v);
                invalid |= counts & bad;
                f(row, nps_row(v >= 9.0, v <= 6.0, counts & !bad));
            }),
            None => return unexpected(self.name(), args[0].data_type()),
        }
        Ok(invalid)
    }

    fn describe_invalid(&self, args: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<String> {
        let value = match Numeric::of(&args[0]) {
            Some(Numeric::Int(scores)) => first_int(scores, filter, nps_invalid_int).map(|v| v.to_string()),
            Some(Numeric::Float(scores)) => first_float(scores, filter, nps_invalid_f64).map(fmt_f64),
            None => None,
        };
        Ok(format!("invalid NPS score {}: a score must be a whole number from 0 to 10", value.unwrap_or_default()))
    }

    fn evaluate(&self, states: &[NpsState]) -> Result<ArrayRef> {
        let nulls = nulls_where_empty(states, |s| s.responses);
        let nps =
            |s: &NpsState| (s.responses > 0).then(|| 100.0 * (s.promoters - s.detractors) as f64 / s.responses as f64);
        Ok(match self.output {
            NpsOutput::Score => Arc::new(states.iter().map(nps).collect::<Float64Array>()),
            NpsOutput::Counts => {
                let column = |get: fn(&NpsState) -> i64| -> ArrayRef {
                    Arc::new(Int64Array::new(states.iter().map(get).collect(), nulls.clone()))
                };
                Arc::new(StructArray::try_new(
                    nps_counts_fields(),
                    vec![
                        column(|s| s.promoters),
                        column(|s| s.responses - s.promoters - s.detractors),
                        column(|s| s.detractors),
                        column(|s| s.responses),
                    ],
                    nulls,
                )?)
            }
            NpsOutput::Ci { z } => {
                let mut centre = Vec::with_capacity(states.len());
                let mut lower = Vec::with_capacity(states.len());
                let mut upper = Vec::with_capacity(states.len());
                for s in states {
                    let (nps, lo, hi) = nps_interval(s, z);
                    centre.push(nps);
                    lower.push(lo);
                    upper.push(hi);
                }
                Arc::new(StructArray::try_new(
                    nps_ci_fields(),
                    vec![
                        Arc::new(Float64Array::new(centre.into(), nulls.clone())),
                        Arc::new(Float64Array::new(lower.into(), nulls.clone())),
                        Arc::new(Float64Array::new(upper.into(), nulls.clone())),
                        Arc::new(Int64Array::new(states.iter().map(|s| s.responses).collect(), nulls.clone())),
                    ],
                    nulls,
                )?)
            }
        })
    }
}

/// NPS and its normal-approximation interval: with p and d the promoter and detractor shares,
/// `se = 100·sqrt((p + d − (p − d)²) / n)`, bounds `nps ± z·se` clamped to [-100, 100].
fn nps_interval(s: &NpsState, z: f64) -> (f64, f64, f64) {
    if s.responses == 0 {
        return (0.0, 0.0, 0.0);
    }
    let n = s.responses as f64;
    let (p, d) = (s.promoters as f64 / n, s.detractors as f64 / n);
    let nps = 100.0 * (p - d);
    let se = 100.0 * ((p + d - (p - d) * (p - d)).max(0.0) / n).sqrt();
    (nps, (nps - z * se).max(-100.0), (nps + z * se).min(100.0))
}

/// The standard normal quantile Φ⁻¹(p) for p in (0.5, 1), by bisection on Φ computed with
/// `erfc`: about 60 halvings reach double precision, and the result is the same on every
/// platform and run.
fn normal_quantile(p: f64) -> f64 {
    let cdf = |z: f64| 0.5 * libm::erfc(-z / std::f64::consts::SQRT_2);
    let (mut lo, mut hi) = (-40.0_f64, 40.0_f64);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid == lo || mid == hi {
            break;
        }
        if cdf(mid) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[derive(Debug)]
struct CsatKernel {
    threshold: f64,
}

impl Kernel for CsatKernel {
    type State = ShareState;

    fn name(&self) -> &'static str {
        "csat"
    }

    fn fold(
        &self,
        args: &[ArrayRef],
        filter: Option<&BooleanArray>,
        mut f: impl FnMut(usize, ShareState),
    ) -> Result<bool> {
        let threshold = self.threshold;
        let mut invalid = false;
        match Numeric::of(&args[0]) {
            Some(Numeric::Int(scores)) => {
                // An integer is at or above the threshold when it is at or above its ceiling.
                let lowest = threshold.ceil().clamp(i64::MIN as f64, i64::MAX as f64) as i64;
                fold_int(scores, filter, |row, v, counts| {
                    let counts = counts as i64;
                    f(row, ShareState { hits: (v >= lowest) as i64 & counts, count: counts });
                })
            }
            Some(Numeric::Float(scores)) => fold_one(scores, filter, |row, v, counts| {
                let bad = !v.is_finite();
                invalid |= counts & bad;
                let counts = (counts & !bad) as i64;
                f(row, ShareState { hits: (v >= threshold) as i64 & counts, count: counts });
            }),
            None => return unexpected(self.name(), args[0].data_type()),
        }
        Ok(invalid)
    }

    fn describe_invalid(&self, args: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<String> {
        let value = first_float(args[0].as_primitive::<Float64Type>(), filter, |v| !v.is_finite());
        Ok(format!(
            "invalid satisfaction score {}: a score must be a finite number",
            value.map(fmt_f64).unwrap_or_default()
        ))
    }

    fn evaluate(&self, states: &[ShareState]) -> Result<ArrayRef> {
        Ok(Arc::new(
            states
                .iter()
                .map(|s| (s.count > 0).then(|| 100.0 * s.hits as f64 / s.count as f64))
                .collect::<Float64Array>(),
        ))
    }
}

#[derive(Debug)]
struct CesKernel;

impl Kernel for CesKernel {
    type State = MeanState;

    fn name(&self) -> &'static str {
        "ces"
    }

    fn fold(
        &self,
        args: &[ArrayRef],
        filter: Option<&BooleanArray>,
        mut f: impl FnMut(usize, MeanState),
    ) -> Result<bool> {
        let mut invalid = false;
        match Numeric::of(&args[0]) {
            Some(Numeric::Int(scores)) => fold_int(scores, filter, |row, v, counts| {
                f(row, if counts { MeanState { sum: v as f64, count: 1 } } else { MeanState::default() });
            }),
            Some(Numeric::Float(scores)) => fold_one(scores, filter, |row, v, counts| {
                let bad = !v.is_finite();
                invalid |= counts & bad;
                f(row, if counts & !bad { MeanState { sum: v, count: 1 } } else { MeanState::default() });
            }),
            None => return unexpected(self.name(), args[0].data_type()),
        }
        Ok(invalid)
    }

    fn describe_invalid(&self, args: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<String> {
        let value = first_float(args[0].as_primitive::<Float64Type>(), filter, |v| !v.is_finite());
        Ok(format!("invalid effort score {}: a score must be a finite number", value.map(fmt_f64).unwrap_or_default()))
    }

    fn evaluate(&self, states: &[MeanState]) -> Result<ArrayRef> {
        Ok(Arc::new(states.iter().map(|s| (s.count > 0).then(|| s.sum / s.count as f64)).collect::<Float64Array>()))
    }
}

#[derive(Debug)]
struct IqsKernel;

fn iqs_invalid(score: f64, weight: f64) -> bool {
    !(score.is_finite() && weight.is_finite() && weight >= 0.0)
}

impl Kernel for IqsKernel {
    type State = WeightedState;

    fn name(&self) -> &'static str {
        "iqs"
    }

    fn fold(
        &self,
        args: &[ArrayRef],
        filter: Option<&BooleanArray>,
        mut f: impl FnMut(usize, WeightedState),
    ) -> Result<bool> {
        let mut invalid = false;
        let (scores, weights) = (args[0].as_primitive::<Float64Type>(), args[1].as_primitive::<Float64Type>());
        fold_two(scores, weights, filter, |row, s, w, counts| {
            let bad = iqs_invalid(s, w);
            invalid |= counts & bad;
            let c = WeightedState { weighted_sum: s * w, weight: w, count: 1 };
            f(row, if counts & !bad { c } else { WeightedState::default() });
        });
        Ok(invalid)
    }

    fn describe_invalid(&self, args: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<String> {
        let (scores, weights) = (args[0].as_primitive::<Float64Type>(), args[1].as_primitive::<Float64Type>());
        let mut found = None;
        fold_two(scores, weights, filter, |_, s, w, counts| {
            if counts && found.is_none() && iqs_invalid(s, w) {
                found = Some((s, w));
            }
        });
        let (s, w) = found.unwrap_or_default();
        Ok(if !s.is_finite() {
            format!("invalid score {}: a score must be a finite number", fmt_f64(s))
        } else {
            format!("invalid weight {}: a weight must be a finite number of at least 0", fmt_f64(w))
        })
    }

    fn evaluate(&self, states: &[WeightedState]) -> Result<ArrayRef> {
        Ok(Arc::new(
            states
                .iter()
                .map(|s| (s.count > 0 && s.weight != 0.0).then(|| s.weighted_sum / s.weight))
                .collect::<Float64Array>(),
        ))
    }
}

const SECTION: DocSection = DocSection {
    include: true,
    label: "Survey metrics",
    description: Some("NPS, CSAT, CES and IQS over survey answers."),
};

const NULLS_AND_INVALID: &str = "NULL scores do not count; a group with no counting rows gives NULL. \
Invalid input fails the query unless `SET cxlake.invalid_input = 'skip'`, which ignores such rows.";

fn documentation(metric: SurveyMetric) -> &'static Documentation {
    static DOCS: LazyLock<Vec<Documentation>> =
        LazyLock::new(|| SurveyMetric::ALL.iter().map(|m| build_documentation(*m)).collect());
    &DOCS[SurveyMetric::ALL.iter().position(|m| *m == metric).unwrap_or(0)]
}

fn build_documentation(metric: SurveyMetric) -> Documentation {
    let score_nps = "An NPS answer: a whole number from 0 to 10 of any integer, float or decimal type (7.0 is fine, 7.5 and 11 are invalid).";
    let doc = match metric {
        SurveyMetric::Nps => Documentation::builder(
            SECTION,
            format!("Net Promoter Score of 0–10 answers, from -100 to 100. It is the percentage of promoters (9–10) minus the percentage of detractors (0–6), as DOUBLE; passives (7–8) count in the total only. {NULLS_AND_INVALID}"),
            "nps(score)",
        )
        .with_argument("score", score_nps)
        .with_sql_example("SELECT channel, nps(score) AS nps FROM surveys GROUP BY channel;\n-- 4 promoters, 1 passive, 2 detractors: 100 × (4 − 2) / 7 = 28.57")
        .with_related_udf("nps_counts")
        .with_related_udf("nps_ci"),
        SurveyMetric::NpsCounts => Documentation::builder(
            SECTION,
            format!("Promoters, passives, detractors and responses behind an NPS. Returns STRUCT<promoters, passives, detractors, responses> (BIGINT each), where responses counts every valid answer; read a field with nps_counts(score)['promoters']. {NULLS_AND_INVALID}"),
            "nps_counts(score)",
        )
        .with_argument("score", score_nps)
        .with_sql_example("SELECT nps_counts(score)['promoters'], nps_counts(score)['responses'] FROM surveys;")
        .with_related_udf("nps"),
        SurveyMetric::NpsCi => Documentation::builder(
            SECTION,
            format!("NPS with a confidence interval. Returns STRUCT<nps, lower, upper DOUBLE, responses BIGINT> from the normal approximation: with p and d the promoter and detractor shares of n responses, se = 100·sqrt((p + d − (p − d)²) / n) and the bounds are nps ± z·se, clamped to [-100, 100], z being the two-sided normal quantile of the confidence. {NULLS_AND_INVALID}"),
            "nps_ci(score [, confidence])",
        )
        .with_argument("score", score_nps)
        .with_argument("confidence", "A constant strictly between 0 and 1; default 0.95 (z = 1.96).")
        .with_sql_example("SELECT region, nps_ci(score, 0.9) AS ci FROM surveys GROUP BY region;")
        .with_related_udf("nps"),
        SurveyMetric::Csat => Documentation::builder(
            SECTION,
            format!("Customer Satisfaction Score: the share of satisfied answers, from 0 to 100. It is the percentage of answers at or above the threshold (top-2-box on a 1–5 scale by default), as DOUBLE. Any finite number is a valid answer; NaN and infinities are invalid. {NULLS_AND_INVALID}"),
            "csat(score [, threshold])",
        )
        .with_argument("score", "A satisfaction answer of any integer, float or decimal type.")
        .with_argument("threshold", "A constant: the lowest satisfied answer. Default 4 (1–5 scale); use 6 for 1–7, 9 for 1–10.")
        .with_sql_example("SELECT csat(satisfaction) FROM surveys;\n-- answers 5, 4, 3, 2: 100 × 2 / 4 = 50")
        .with_related_udf("ces"),
        SurveyMetric::Ces => Documentation::builder(
            SECTION,
            format!("Customer Effort Score: the mean effort answer. It is sum(score) / count(score), as DOUBLE. Any finite number is valid; NaN and infinities are invalid. {NULLS_AND_INVALID}"),
            "ces(score)",
        )
        .with_argument("score", "An effort answer of any integer, float or decimal type (1–7 where lower is easier is common).")
        .with_sql_example("SELECT channel, ces(effort) FROM surveys GROUP BY channel;")
        .with_related_udf("csat"),
        SurveyMetric::Iqs => Documentation::builder(
            SECTION,
            format!("Internal Quality Score: a weighted mean of quality scores. It is Σ score·weight / Σ weight, as DOUBLE; NULL when the weights sum to 0. A row counts when both score and weight are non-NULL. Also the building block of composite engagement scores. Weights must be finite and at least 0; NaN or infinite scores are invalid. {NULLS_AND_INVALID}"),
            "iqs(score, weight)",
        )
        .with_argument("score", "A quality score of any integer, float or decimal type.")
        .with_argument("weight", "The row's weight, a number of at least 0.")
        .with_sql_example("SELECT agent_id, iqs(score, weight) FROM qa_reviews GROUP BY agent_id;\n-- scores 80 (weight 0.4) and 60 (weight 0.1): (32 + 6) / 0.5 = 76")
        .with_related_udf("ces"),
    };
    doc.build()
}

crate::common::family_registry!(SurveyMetric, SurveyFunction);

/// Expression builders for the survey metrics.
pub mod expr {
    use datafusion::logical_expr::Expr;

    use super::{udaf, SurveyMetric};

    fn call(metric: SurveyMetric, args: Vec<Expr>) -> Expr {
        udaf(metric).call(args)
    }

    /// `nps(score)`: Net Promoter Score.
    pub fn nps(score: Expr) -> Expr {
        call(SurveyMetric::Nps, vec![score])
    }

    /// `nps_counts(score)`: promoters, passives, detractors and responses.
    pub fn nps_counts(score: Expr) -> Expr {
        call(SurveyMetric::NpsCounts, vec![score])
    }

    /// `nps_ci(score [, confidence])`: NPS with its confidence interval.
    pub fn nps_ci(score: Expr, confidence: Option<Expr>) -> Expr {
        call(SurveyMetric::NpsCi, std::iter::once(score).chain(confidence).collect())
    }

    /// `csat(score [, threshold])`: Customer Satisfaction Score.
    pub fn csat(score: Expr, threshold: Option<Expr>) -> Expr {
        call(SurveyMetric::Csat, std::iter::once(score).chain(threshold).collect())
    }

    /// `ces(score)`: Customer Effort Score.
    pub fn ces(score: Expr) -> Expr {
        call(SurveyMetric::Ces, vec![score])
    }

    /// `iqs(score, weight)`: Internal Quality Score.
    pub fn iqs(score: Expr, weight: Expr) -> Expr {
        call(SurveyMetric::Iqs, vec![score, weight])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_quantiles_match_published_tables() {
        // Two-sided 90%, 95% and 99% critical values.
        assert!((normal_quantile(0.95) - 1.6448536269514722).abs() < 1e-12);
        assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-12);
        assert!((normal_quantile(0.995) - 2.5758293035489004).abs() < 1e-12);
    }

    #[test]
    fn interval_follows_the_spec_formula() {
        // 50 promoters, 30 passives, 20 detractors: p = .5, d = .2, NPS = 30,
        // se = 100·sqrt((.7 − .09) / 100) = 7.8102496759..., 95% bounds 30 ∓ 1.959964·se.
        let (nps, lo, hi) =
            nps_interval(&NpsState { promoters: 50, detractors: 20, responses: 100 }, 1.959963984540054);
        assert!((nps - 30.0).abs() < 1e-12);
        assert!((lo - (30.0 - 1.959963984540054 * 7.810249675906654)).abs() < 1e-9);
        assert!((hi - (30.0 + 1.959963984540054 * 7.810249675906654)).abs() < 1e-9);
        // All promoters: zero spread, bounds clamp at 100.
        let (_, lo, hi) = nps_interval(&NpsState { promoters: 3, detractors: 0, responses: 3 }, 1.96);
        assert_eq!((lo, hi), (100.0, 100.0));
    }
}
