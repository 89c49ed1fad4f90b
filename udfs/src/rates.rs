//! Rates: the share of true flags, in percent (conversion, feedback response, referral, participation).
//!
//! All four share one aggregate implementation, [`RateFunction`], and one kernel: they differ
//! only in name and documentation, so that queries say what they measure.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::datatypes::{DataType, FieldRef, UInt64Type};
use datafusion::common::{internal_err, plan_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{AggregateUDFImpl, DocSection, Documentation, Signature, Volatility};

use crate::common::args;
use crate::common::fold::{counting_rows, first_int, fold_int, fold_one, is_native_int};
use crate::common::kernel::{AccumulatorFactory, Kernel};
use crate::common::state::{MetricState, ShareState};
use crate::common::{InvalidInput, PolicyAware};

/// The rate metrics, one [`RateFunction`] each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateMetric {
    Conversion,
    FeedbackResponse,
    Referral,
    Participation,
}

impl RateMetric {
    pub const ALL: [RateMetric; 4] = [Self::Conversion, Self::FeedbackResponse, Self::Referral, Self::Participation];

    pub fn name(self) -> &'static str {
        match self {
            Self::Conversion => "conversion_rate",
            Self::FeedbackResponse => "feedback_response_rate",
            Self::Referral => "referral_rate",
            Self::Participation => "participation_rate",
        }
    }

    /// The accepted call shape, quoted in planning errors.
    fn signatures(self) -> &'static str {
        match self {
            Self::Conversion => "conversion_rate(flag BOOLEAN or integer 0/1)",
            Self::FeedbackResponse => "feedback_response_rate(flag BOOLEAN or integer 0/1)",
            Self::Referral => "referral_rate(flag BOOLEAN or integer 0/1)",
            Self::Participation => "participation_rate(flag BOOLEAN or integer 0/1)",
        }
    }
}

/// One rate metric as a DataFusion aggregate, with its invalid-input policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RateFunction {
    metric: RateMetric,
    policy: InvalidInput,
    signature: Signature,
}

impl RateFunction {
    pub fn new(metric: RateMetric) -> Self {
        Self { metric, policy: InvalidInput::default(), signature: Signature::user_defined(Volatility::Immutable) }
    }

    /// Builds the accumulator flavour `factory` makes.
    fn build<F: AccumulatorFactory>(&self, _args: &AccumulatorArgs, factory: F) -> Result<F::Output> {
        Ok(factory.build(RateKernel { name: self.metric.name() }, self.policy))
    }
}

impl PolicyAware for RateFunction {
    fn policy(&self) -> InvalidInput {
        self.policy
    }

    fn with_policy(&self, policy: InvalidInput) -> Self {
        Self { policy, ..self.clone() }
    }
}

/// A flag column as kernels read it: BOOLEAN and every integer type keep their type.
fn flag_type(function: &str, signatures: &str, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Boolean | DataType::UInt64 => Ok(t.clone()),
        t if is_native_int(t) => Ok(t.clone()),
        DataType::Null => Ok(DataType::Boolean),
        DataType::Dictionary(_, value) => flag_type(function, signatures, value),
        other => plan_err!(
            "{function}: flag must be BOOLEAN or an integer holding 0 or 1 (any integer type), not {other}. \
             Accepted: {signatures}"
        ),
    }
}

impl AggregateUDFImpl for RateFunction {
    fn name(&self) -> &str {
        self.metric.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let (name, sigs) = (self.metric.name(), self.metric.signatures());
        args::arity(name, sigs, types, 1, 1)?;
        Ok(vec![flag_type(name, sigs, &types[0])?])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    crate::common::kernel_accumulators!();

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(ShareState::fields(args.name))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(documentation(self.metric))
    }
}

/// Calls `f(row, flag, counts)` for every row of a BOOLEAN column, reading the value and
/// counting-row bitmaps 64 rows per word.
#[inline(always)]
fn fold_bool(flags: &BooleanArray, filter: Option<&BooleanArray>, mut f: impl FnMut(usize, bool, bool)) {
    #[inline(always)]
    fn word(f: &mut impl FnMut(usize, bool, bool), base: usize, bits: usize, values: u64, rows: u64) {
        for bit in 0..bits {
            f(base + bit, (values >> bit) & 1 == 1, (rows >> bit) & 1 == 1);
        }
    }
    let values = flags.values().bit_chunks();
    let tail = values.chunk_len() * 64;
    match counting_rows(&[flags.nulls()], filter) {
        None => {
            for (i, v) in values.iter().enumerate() {
                word(&mut f, i * 64, 64, v, u64::MAX);
            }
            word(&mut f, tail, values.remainder_len(), values.remainder_bits(), u64::MAX);
        }
        Some(rows) if rows.null_count() == rows.len() => {}
        Some(rows) => {
            let rows: &BooleanBuffer = rows.inner();
            let masks = rows.bit_chunks();
            for (i, (v, m)) in values.iter().zip(masks.iter()).enumerate() {
                word(&mut f, i * 64, 64, v, m);
            }
            word(&mut f, tail, values.remainder_len(), values.remainder_bits(), masks.remainder_bits());
        }
    }
}

/// A row's contribution: a hit when the flag is true, counted when the row counts.
#[inline(always)]
fn rate_row(flag: bool, counts: bool) -> ShareState {
    let counts = counts as i64;
    ShareState { hits: flag as i64 & counts, count: counts }
}

/// An integer flag must be 0 or 1 (as an unsigned value, so negatives are out too).
#[inline(always)]
fn invalid_int_flag(v: i64) -> bool {
    (v as u64) > 1
}

#[derive(Debug)]
struct RateKernel {
    name: &'static str,
}

impl Kernel for RateKernel {
    type State = ShareState;

    fn name(&self) -> &'static str {
        self.name
    }

    fn fold(
        &self,
        args: &[ArrayRef],
        filter: Option<&BooleanArray>,
        mut f: impl FnMut(usize, ShareState),
    ) -> Result<bool> {
        let mut invalid = false;
        let flags = &args[0];
        match flags.data_type() {
            DataType::Boolean => fold_bool(flags.as_boolean(), filter, |row, v, counts| f(row, rate_row(v, counts))),
            DataType::UInt64 => fold_one(flags.as_primitive::<UInt64Type>(), filter, |row, v, counts| {
                let bad = v > 1;
                invalid |= counts & bad;
                f(row, rate_row(v == 1, counts & !bad));
            }),
            t if is_native_int(t) => fold_int(flags, filter, |row, v, counts| {
                let bad = invalid_int_flag(v);
                invalid |= counts & bad;
                f(row, rate_row(v == 1, counts & !bad));
            }),
            other => return internal_err!("{}: unexpected input type {other} after coercion", self.name),
        }
        Ok(invalid)
    }

    fn describe_invalid(&self, args: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<String> {
        let flags = &args[0];
        let value = match flags.data_type() {
            DataType::UInt64 => {
                let mut found = None;
                fold_one(flags.as_primitive::<UInt64Type>(), filter, |_, v, counts| {
                    if counts && found.is_none() && v > 1 {
                        found = Some(v.to_string());
                    }
                });
                found
            }
            t if is_native_int(t) => first_int(flags, filter, invalid_int_flag).map(|v| v.to_string()),
            _ => None,
        };
        Ok(format!(
            "invalid flag {}: a flag must be true/false or 0/1 (any other integer is invalid)",
            value.unwrap_or_default()
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

const SECTION: DocSection = DocSection {
    include: true,
    label: "Rates",
    description: Some("Shares of true flags, in percent: conversion, feedback response, referral, participation."),
};

const RULES: &str = "It is 100 × count(flag = true) / count(flag), a DOUBLE from 0 to 100. \
The flag is BOOLEAN, or an integer of any type where 1 is true and 0 is false; any other integer \
(2, -1) is invalid input. NULL flags do not count; a group with no counting rows gives NULL. \
Invalid input fails the query unless `SET cxlake.invalid_input = 'skip'`, which ignores such rows.";

const FLAG: &str = "BOOLEAN, or an integer of any type holding 0 (false) or 1 (true).";

fn documentation(metric: RateMetric) -> &'static Documentation {
    static DOCS: LazyLock<Vec<Documentation>> =
        LazyLock::new(|| RateMetric::ALL.iter().map(|m| build_documentation(*m)).collect());
    &DOCS[RateMetric::ALL.iter().position(|m| *m == metric).unwrap_or(0)]
}

fn build_documentation(metric: RateMetric) -> Documentation {
    let (summary, flag, example) = match metric {
        RateMetric::Conversion => (
            "Conversion rate: the percentage of sessions, visits or events that converted. Use it over a \
             converted flag, such as conversion_rate(converted) over sessions or clickstream events.",
            "Whether the row converted (made a purchase, signed up). ",
            "SELECT device, conversion_rate(converted) FROM clickstream GROUP BY device;\n\
             -- 3 of 40 events are purchases: 100 × 3 / 40 = 7.5",
        ),
        RateMetric::FeedbackResponse => (
            "Feedback response rate: the percentage of survey invitations that were answered. Use it over \
             the invitations' responded flag, such as feedback_response_rate(responded) over survey_invitations.",
            "Whether the invitation was answered. ",
            "SELECT channel, feedback_response_rate(responded) FROM survey_invitations GROUP BY channel;\n\
             -- 5 of 8 invitations answered: 100 × 5 / 8 = 62.5",
        ),
        RateMetric::Referral => (
            "Referral rate: the percentage of customers who referred someone. Use it over one row per \
             customer, such as referral_rate(made_referral) over customers.",
            "Whether the customer made a referral. ",
            "SELECT region, referral_rate(made_referral) FROM customers GROUP BY region;\n\
             -- 1 of 4 customers referred someone: 100 × 1 / 4 = 25",
        ),
        RateMetric::Participation => (
            "Participation rate: the percentage of customers taking part in a programme. Use it over one row \
             per customer, such as participation_rate(loyalty_member) over customers for loyalty-programme \
             participation.",
            "Whether the customer takes part (a 0/1 INT column such as loyalty_member works as is). ",
            "SELECT plan, participation_rate(loyalty_member) FROM customers GROUP BY plan;\n\
             -- loyalty_member 1, 0, 1, NULL: 100 × 2 / 3 = 66.67",
        ),
    };
    let mut builder = Documentation::builder(SECTION, format!("{summary} {RULES}"), format!("{}(flag)", metric.name()))
        .with_argument("flag", format!("{flag}{FLAG}"))
        .with_sql_example(example);
    for other in RateMetric::ALL.iter().filter(|m| **m != metric) {
        builder = builder.with_related_udf(other.name());
    }
    builder.build()
}

crate::common::family_registry!(RateMetric, RateFunction);

/// Expression builders for this family.
pub mod expr {
    use datafusion::logical_expr::Expr;

    use super::{udaf, RateMetric};

    /// `conversion_rate(flag)`: percentage of rows that converted.
    pub fn conversion_rate(flag: Expr) -> Expr {
        udaf(RateMetric::Conversion).call(vec![flag])
    }

    /// `feedback_response_rate(flag)`: percentage of survey invitations answered.
    pub fn feedback_response_rate(flag: Expr) -> Expr {
        udaf(RateMetric::FeedbackResponse).call(vec![flag])
    }

    /// `referral_rate(flag)`: percentage of customers who referred someone.
    pub fn referral_rate(flag: Expr) -> Expr {
        udaf(RateMetric::Referral).call(vec![flag])
    }

    /// `participation_rate(flag)`: percentage of customers taking part in a programme.
    pub fn participation_rate(flag: Expr) -> Expr {
        udaf(RateMetric::Participation).call(vec![flag])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold_all(flags: &BooleanArray, filter: Option<&BooleanArray>) -> Vec<(bool, bool)> {
        let mut seen = Vec::new();
        fold_bool(flags, filter, |row, v, counts| {
            assert_eq!(row, seen.len());
            seen.push((v, counts));
        });
        seen
    }

    #[test]
    fn boolean_folding_reads_values_validity_filter_and_offsets() {
        // 150 rows cross two full words and a remainder; slicing shifts the bit offset.
        let flags: BooleanArray = (0..150).map(|i| (i % 7 != 0).then_some(i % 3 == 0)).collect();
        let filter: BooleanArray = (0..150).map(|i| (i % 11 != 0).then_some(i % 5 != 0)).collect();
        for (flags, filter) in [(flags.clone(), filter.clone()), (flags.slice(3, 140), filter.slice(3, 140))] {
            let seen = fold_all(&flags, Some(&filter));
            assert_eq!(seen.len(), flags.len());
            for (row, (v, counts)) in seen.iter().enumerate() {
                let selected = filter.is_valid(row) && filter.value(row);
                assert_eq!(*counts, flags.is_valid(row) && selected, "row {row}");
                if *counts {
                    assert_eq!(*v, flags.value(row), "row {row}");
                }
            }
            let all = fold_all(&flags, None);
            assert_eq!(all.iter().filter(|(_, c)| *c).count(), flags.len() - flags.null_count());
        }
    }

    #[test]
    fn integer_flags_are_zero_or_one() {
        assert!(!invalid_int_flag(0) && !invalid_int_flag(1));
        assert!(invalid_int_flag(2) && invalid_int_flag(-1) && invalid_int_flag(i64::MIN));
    }
}
