//! `rfm_summary`: a customer's order log as the (frequency, recency, age, monetary value) that the
//! BG/NBD and Gamma-Gamma models read.
//!
//! The state is the customer's (period, amount) pairs: merging is concatenation, so partial
//! aggregation is exact; `evaluate` sorts them, collapses each calendar period into one purchase
//! and measures the summary.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, ListArray, StructArray,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, FieldRef, Fields, Float64Type, Int32Type};
use datafusion::common::{exec_err, internal_err, plan_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{AggregateUDFImpl, Documentation, Signature, Volatility};

use crate::common::collect::{Collector, CollectorFactory};
use crate::common::fold::counting_rows;
use crate::common::{args, fmt_f64, InvalidInput, PolicyAware};

pub const NAME: &str = "rfm_summary";
const SIGNATURES: &str = "rfm_summary(ts, amount, observation_end [, unit 'day' or 'week'])";

/// STRUCT<frequency, recency, age, monetary_value DOUBLE>
pub fn result_fields() -> Fields {
    ["frequency", "recency", "age", "monetary_value"].iter().map(|n| Field::new(*n, DataType::Float64, true)).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RfmFunction {
    policy: InvalidInput,
    signature: Signature,
}

impl Default for RfmFunction {
    fn default() -> Self {
        Self { policy: InvalidInput::default(), signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl PolicyAware for RfmFunction {
    fn policy(&self) -> InvalidInput {
        self.policy
    }

    fn with_policy(&self, policy: InvalidInput) -> Self {
        Self { policy, ..self.clone() }
    }
}

impl RfmFunction {
    fn build<F: CollectorFactory>(&self, args: &AccumulatorArgs, factory: F) -> Result<F::Output> {
        let weekly = match args::constant_str(args, 3, NAME, "unit")?.as_deref().map(str::to_ascii_lowercase) {
            None => false,
            Some(unit) if unit == "day" => false,
            Some(unit) if unit == "week" => true,
            Some(other) => {
                return plan_err!("{NAME}: unit must be 'day' or 'week', not '{other}'. Accepted: {SIGNATURES}")
            }
        };
        Ok(factory.build(RfmCollector { weekly }, self.policy))
    }
}

/// Dates and timestamps (any unit, any zone: the calendar day is taken in the timestamp's own
/// zone) become DATE; date strings are parsed.
fn date_type(arg: &str, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) | DataType::Null => Ok(DataType::Date32),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(DataType::Date32),
        DataType::Dictionary(_, value) => date_type(arg, value),
        other => plan_err!("{NAME}: {arg} must be a DATE or TIMESTAMP, not {other}. Accepted: {SIGNATURES}"),
    }
}

impl AggregateUDFImpl for RfmFunction {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        args::arity(NAME, SIGNATURES, types, 3, 4)?;
        let mut coerced = vec![
            date_type("ts", &types[0])?,
            args::float(NAME, SIGNATURES, "amount", &types[1])?,
            date_type("observation_end", &types[2])?,
        ];
        if let Some(t) = types.get(3) {
            match t {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => coerced.push(DataType::Utf8),
                other => {
                    return plan_err!(
                        "{NAME}: unit must be the string 'day' or 'week', not {other}. Accepted: {SIGNATURES}"
                    )
                }
            }
        }
        Ok(coerced)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(result_fields()))
    }

    crate::common::collect::collector_accumulators!();

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, false)));
        Ok(vec![
            Arc::new(Field::new(format!("{}[days]", args.name), list(DataType::Int32), true)),
            Arc::new(Field::new(format!("{}[amounts]", args.name), list(DataType::Float64), true)),
            Arc::new(Field::new(format!("{}[observation_end]", args.name), DataType::Int32, true)),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(super::docs::rfm_summary())
    }
}

/// A customer's purchases (day number, amount) and the observation end (day number).
#[derive(Debug, Default)]
pub struct RfmGroup {
    purchases: Vec<(i32, f64)>,
    observation_end: Option<i32>,
}

impl RfmGroup {
    fn set_end(&mut self, end: i32) -> Result<()> {
        match self.observation_end {
            Some(current) if current != end => exec_err!(
                "{NAME}: observation_end must be the same for every row of a group, got {} and {}. \
                 Give one date (a constant, or a value that is constant per customer)",
                fmt_day(current),
                fmt_day(end)
            ),
            _ => {
                self.observation_end = Some(end);
                Ok(())
            }
        }
    }
}

fn fmt_day(day: i32) -> String {
    Date32Type::to_naive_date_opt(day).map_or(format!("day {day}"), |d| d.to_string())
}

#[derive(Debug)]
struct RfmCollector {
    weekly: bool,
}

fn invalid_amount(amount: f64) -> bool {
    !(amount.is_finite() && amount >= 0.0)
}

impl RfmCollector {
    /// Calendar periods since the epoch: days, or weeks starting on Monday.
    fn period(&self, day: i32) -> i32 {
        if self.weekly {
            // 1970-01-01 was a Thursday: the Monday of its week is day −3.
            (day + 3).div_euclid(7)
        } else {
            day
        }
    }

    /// Weeks per period.
    fn period_weeks(&self) -> f64 {
        if self.weekly {
            1.0
        } else {
            1.0 / 7.0
        }
    }

    fn summarize(&self, group: &RfmGroup) -> Option<[f64; 4]> {
        let end = group.observation_end?;
        let mut purchases: Vec<(i32, f64)> = group.purchases.iter().map(|&(d, a)| (self.period(d), a)).collect();
        if purchases.is_empty() {
            return None;
        }
        // Sorting amounts too makes each period's sum independent of the row order.
        purchases.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut periods: Vec<(i32, f64)> = Vec::new();
        for (p, amount) in purchases {
            match periods.last_mut() {
                Some(last) if last.0 == p => last.1 += amount,
                _ => periods.push((p, amount)),
            }
        }
        let first = periods[0].0;
        let last = periods[periods.len() - 1].0;
        let repeats = &periods[1..];
        let monetary =
            if repeats.is_empty() { 0.0 } else { repeats.iter().map(|p| p.1).sum::<f64>() / repeats.len() as f64 };
        let weeks = self.period_weeks();
        Some([repeats.len() as f64, (last - first) as f64 * weeks, (self.period(end) - first) as f64 * weeks, monetary])
    }
}

impl Collector for RfmCollector {
    type Group = RfmGroup;

    fn name(&self) -> &'static str {
        NAME
    }

    fn update(
        &self,
        args: &[ArrayRef],
        filter: Option<&BooleanArray>,
        group_of: &[usize],
        groups: &mut [RfmGroup],
    ) -> Result<bool> {
        let (days, amounts, ends) = (
            args[0].as_primitive::<Date32Type>(),
            args[1].as_primitive::<Float64Type>(),
            args[2].as_primitive::<Date32Type>(),
        );
        let rows = counting_rows(&[days.nulls(), amounts.nulls(), ends.nulls()], filter);
        let mut invalid = false;
        for row in 0..days.len() {
            if rows.as_ref().is_some_and(|r| r.is_null(row)) {
                continue;
            }
            let (day, amount, end) = (days.value(row), amounts.value(row), ends.value(row));
            let group = &mut groups[group_of[row]];
            group.set_end(end)?;
            if day > end {
                continue;
            }
            if invalid_amount(amount) {
                invalid = true;
                continue;
            }
            group.purchases.push((day, amount));
        }
        Ok(invalid)
    }

    fn describe_invalid(&self, args: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<String> {
        let (days, amounts, ends) = (
            args[0].as_primitive::<Date32Type>(),
            args[1].as_primitive::<Float64Type>(),
            args[2].as_primitive::<Date32Type>(),
        );
        let rows = counting_rows(&[days.nulls(), amounts.nulls(), ends.nulls()], filter);
        for row in 0..days.len() {
            let counts = rows.as_ref().is_none_or(|r| r.is_valid(row)) && days.value(row) <= ends.value(row);
            if counts && invalid_amount(amounts.value(row)) {
                return Ok(format!("amount {} is not a finite non-negative number", fmt_f64(amounts.value(row))));
            }
        }
        Ok("invalid amount".to_string())
    }

    fn state(&self, groups: &[RfmGroup]) -> Result<Vec<ArrayRef>> {
        let mut offsets = vec![0i32];
        let (mut days, mut amounts) = (Vec::new(), Vec::new());
        for g in groups {
            days.extend(g.purchases.iter().map(|p| p.0));
            amounts.extend(g.purchases.iter().map(|p| p.1));
            offsets.push(days.len() as i32);
        }
        let offsets = OffsetBuffer::new(offsets.into());
        let list = |t: DataType, values: ArrayRef| -> ArrayRef {
            Arc::new(ListArray::new(Arc::new(Field::new_list_field(t, false)), offsets.clone(), values, None))
        };
        Ok(vec![
            list(DataType::Int32, Arc::new(Int32Array::from(days))),
            list(DataType::Float64, Arc::new(Float64Array::from(amounts))),
            Arc::new(Int32Array::from_iter(groups.iter().map(|g| g.observation_end))),
        ])
    }

    fn merge(&self, states: &[ArrayRef], group_of: &[usize], groups: &mut [RfmGroup]) -> Result<()> {
        if states.len() != 3 {
            return internal_err!("{NAME}: expected 3 state columns, got {}", states.len());
        }
        let (days, amounts, ends) =
            (states[0].as_list::<i32>(), states[1].as_list::<i32>(), states[2].as_primitive::<Int32Type>());
        for (row, &g) in group_of.iter().enumerate() {
            let group = &mut groups[g];
            if ends.is_valid(row) {
                group.set_end(ends.value(row))?;
            }
            if days.is_valid(row) {
                let (d, a) = (days.value(row), amounts.value(row));
                let (d, a) = (d.as_primitive::<Int32Type>(), a.as_primitive::<Float64Type>());
                group.purchases.extend(d.values().iter().copied().zip(a.values().iter().copied()));
            }
        }
        Ok(())
    }

    fn evaluate(&self, groups: &[RfmGroup]) -> Result<ArrayRef> {
        let summaries: Vec<Option<[f64; 4]>> = groups.iter().map(|g| self.summarize(g)).collect();
        let columns: Vec<ArrayRef> = (0..4)
            .map(|i| Arc::new(Float64Array::from_iter(summaries.iter().map(|s| s.map(|s| s[i])))) as ArrayRef)
            .collect();
        let valid = NullBuffer::from(summaries.iter().map(|s| s.is_some()).collect::<Vec<_>>());
        Ok(Arc::new(StructArray::try_new(result_fields(), columns, Some(valid))?))
    }

    fn group_size(&self, group: &RfmGroup) -> usize {
        group.purchases.capacity() * 16
    }
}
