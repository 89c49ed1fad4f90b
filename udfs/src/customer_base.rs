//! Customer-base metrics over (start, end, period start, period end): churn, retention, movement.
//!
//! All three share one aggregate implementation, [`CustomerBaseFunction`], and one kernel that
//! sorts each counting row into at-start, lost and new for its own period; the functions differ
//! only in how the counts become a result.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StructArray};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type, TimeUnit};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::{internal_err, plan_err, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{AggregateUDFImpl, DocSection, Documentation, Signature, Volatility};

use crate::common::args;
use crate::common::fold::counting_rows;
use crate::common::kernel::{AccumulatorFactory, Kernel};
use crate::common::state::{metric_state, MetricState};
use crate::common::{InvalidInput, PolicyAware};

/// The customer-base metrics, one [`CustomerBaseFunction`] each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CustomerBaseMetric {
    ChurnRate,
    RetentionRate,
    CustomerMovement,
}

impl CustomerBaseMetric {
    pub const ALL: [CustomerBaseMetric; 3] = [Self::ChurnRate, Self::RetentionRate, Self::CustomerMovement];

    pub fn name(self) -> &'static str {
        match self {
            Self::ChurnRate => "churn_rate",
            Self::RetentionRate => "retention_rate",
            Self::CustomerMovement => "customer_movement",
        }
    }

    /// The accepted call shapes, quoted in planning errors.
    fn signatures(self) -> &'static str {
        match self {
            Self::ChurnRate => "churn_rate(start_ts, end_ts, period_start, period_end)",
            Self::RetentionRate => "retention_rate(start_ts, end_ts, period_start, period_end)",
            Self::CustomerMovement => "customer_movement(start_ts, end_ts, period_start, period_end)",
        }
    }
}

const ARGUMENTS: [&str; 4] = ["start_ts", "end_ts", "period_start", "period_end"];

/// One customer-base metric as a DataFusion aggregate, with its invalid-input policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CustomerBaseFunction {
    metric: CustomerBaseMetric,
    policy: InvalidInput,
    signature: Signature,
}

impl CustomerBaseFunction {
    pub fn new(metric: CustomerBaseMetric) -> Self {
        Self { metric, policy: InvalidInput::default(), signature: Signature::user_defined(Volatility::Immutable) }
    }

    /// Builds the accumulator flavour `factory` makes, with the kernel this call needs.
    fn build<F: AccumulatorFactory>(&self, _args: &AccumulatorArgs, factory: F) -> Result<F::Output> {
        Ok(factory.build(CustomerBaseKernel { metric: self.metric }, self.policy))
    }
}

impl PolicyAware for CustomerBaseFunction {
    fn policy(&self) -> InvalidInput {
        self.policy
    }

    fn with_policy(&self, policy: InvalidInput) -> Self {
        Self { policy, ..self.clone() }
    }
}

fn movement_fields() -> Fields {
    Fields::from(vec![
        Field::new("at_start", DataType::Int64, true),
        Field::new("new", DataType::Int64, true),
        Field::new("lost", DataType::Int64, true),
        Field::new("at_end", DataType::Int64, true),
    ])
}

/// Nanoseconds per unit of an instant type the kernel reads, `None` for any other type.
fn nanos_per_unit(t: &DataType) -> Option<i64> {
    Some(match t {
        DataType::Timestamp(TimeUnit::Second, _) => 1_000_000_000,
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Date64 => 1_000_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 1,
        DataType::Date32 => 86_400 * 1_000_000_000,
        _ => return None,
    })
}

/// Timestamps (every unit, with or without a zone) and dates keep their type; a bare NULL
/// becomes a timestamp; anything else fails at planning time.
fn instant_type(function: &str, signatures: &str, arg: &str, t: &DataType) -> Result<DataType> {
    match t {
        t if nanos_per_unit(t).is_some() => Ok(t.clone()),
        DataType::Null => Ok(DataType::Timestamp(TimeUnit::Nanosecond, None)),
        DataType::Dictionary(_, value) => instant_type(function, signatures, arg, value),
        other => plan_err!(
            "{function}: {arg} must be a timestamp (any unit, with or without a time zone) or a date, not {other}. \
             Accepted: {signatures}"
        ),
    }
}

impl AggregateUDFImpl for CustomerBaseFunction {
    fn name(&self) -> &str {
        self.metric.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let (name, sigs) = (self.metric.name(), self.metric.signatures());
        args::arity(name, sigs, types, 4, 4)?;
        types.iter().zip(ARGUMENTS).map(|(t, arg)| instant_type(name, sigs, arg, t)).collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.metric {
            CustomerBaseMetric::CustomerMovement => DataType::Struct(movement_fields()),
            _ => DataType::Float64,
        })
    }

    crate::common::kernel_accumulators!();

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(MovementState::fields(args.name))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(documentation(self.metric))
    }
}

metric_state! {
    /// Customers at the start of their period, lost during it and new in it, out of `rows`
    /// counting rows (at the end = at_start − lost + new).
    pub struct MovementState { at_start: i64, lost: i64, new: i64, rows: i64 }
}

#[derive(Debug)]
struct CustomerBaseKernel {
    metric: CustomerBaseMetric,
}

/// What one row contributes, and whether it is invalid, computed without branches.
///
/// `ended` says whether `end` holds a value (a NULL end means still a customer); `counts`
/// whether the row counts at all. Invalid rows contribute nothing.
#[inline(always)]
fn movement_row<T: PartialOrd + Copy>(
    start: T,
    end: T,
    period_start: T,
    period_end: T,
    ended: bool,
    counts: bool,
) -> (MovementState, bool) {
    let bad = (ended & (end < start)) | (period_end <= period_start);
    let ok = counts & !bad;
    let at_start = (start < period_start) & (!ended | (end >= period_start));
    let lost = at_start & ended & (end < period_end);
    let new = (period_start <= start) & (start < period_end) & (!ended | (end >= period_end));
    let state = MovementState {
        at_start: (at_start & ok) as i64,
        lost: (lost & ok) as i64,
        new: (new & ok) as i64,
        rows: ok as i64,
    };
    (state, counts & bad)
}

/// The four arguments of a batch as raw instants, with their NULLs and their units.
struct Instants {
    len: usize,
    values: [ScalarBuffer<i64>; 4],
    nulls: [Option<NullBuffer>; 4],
    /// Each argument's unit as a multiple of the finest unit among the four.
    scale: [i64; 4],
}

impl Instants {
    fn new(function: &str, args: &[ArrayRef]) -> Result<Self> {
        if args.len() != 4 {
            return internal_err!("{function}: expected 4 arguments, got {}", args.len());
        }
        let mut units = [1i64; 4];
        for (unit, array) in units.iter_mut().zip(args) {
            match nanos_per_unit(array.data_type()) {
                Some(n) => *unit = n,
                None => return internal_err!("{function}: unexpected input type {} after coercion", array.data_type()),
            }
        }
        let finest = units.iter().copied().min().unwrap_or(1);
        let mut values: [ScalarBuffer<i64>; 4] = Default::default();
        let mut nulls: [Option<NullBuffer>; 4] = Default::default();
        for ((v, n), array) in values.iter_mut().zip(nulls.iter_mut()).zip(args) {
            // Timestamps and Date64 are reinterpreted without a copy; Date32 is widened.
            let raw = cast(array, &DataType::Int64)?;
            let raw = raw.as_primitive::<Int64Type>();
            *v = raw.values().clone();
            *n = raw.nulls().cloned();
        }
        Ok(Self { len: args[0].len(), values, nulls, scale: units.map(|u| u / finest) })
    }

    /// Calls `f(row, contribution, invalid)` for every row. Rows with a NULL start or period
    /// bound, or outside `filter`, contribute nothing; a NULL end is a current customer.
    #[inline(always)]
    fn visit(&self, filter: Option<&BooleanArray>, mut f: impl FnMut(usize, MovementState, bool)) {
        let len = self.len;
        let [start, end, period_start, period_end] = &self.nulls;
        let counting = counting_rows(&[start.as_ref(), period_start.as_ref(), period_end.as_ref()], filter)
            .map_or_else(|| BooleanBuffer::new_set(len), NullBuffer::into_inner);
        let ended = end.as_ref().map_or_else(|| BooleanBuffer::new_set(len), |n| n.inner().clone());
        let [s, e, ps, pe] = self.values.each_ref().map(|v| &v[..len]);
        if self.scale == [1; 4] {
            for_each_row(len, &counting, &ended, |row, counts, ended| {
                let (c, bad) = movement_row(s[row], e[row], ps[row], pe[row], ended, counts);
                f(row, c, bad)
            });
        } else {
            // Mixed units: compare instants in the finest unit, in i128 so nothing overflows.
            let [ks, ke, kps, kpe] = self.scale.map(i128::from);
            for_each_row(len, &counting, &ended, |row, counts, ended| {
                let (c, bad) = movement_row(
                    s[row] as i128 * ks,
                    e[row] as i128 * ke,
                    ps[row] as i128 * kps,
                    pe[row] as i128 * kpe,
                    ended,
                    counts,
                );
                f(row, c, bad)
            });
        }
    }
}

/// Calls `f(row, counts, ended)` for every row, reading both masks 64 rows at a time.
#[inline(always)]
fn for_each_row(len: usize, counting: &BooleanBuffer, ended: &BooleanBuffer, mut f: impl FnMut(usize, bool, bool)) {
    let (counting, ended) = (counting.bit_chunks(), ended.bit_chunks());
    for (word, (c, e)) in counting.iter_padded().zip(ended.iter_padded()).enumerate() {
        let base = word * 64;
        for bit in 0..(len - base).min(64) {
            f(base + bit, (c >> bit) & 1 == 1, (e >> bit) & 1 == 1);
        }
    }
}

/// An argument's value as ISO 8601 text, for error messages.
fn iso(array: &ArrayRef, row: usize) -> String {
    ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())
        .map(|f| f.value(row).to_string())
        .unwrap_or_else(|_| "?".to_string())
}

impl Kernel for CustomerBaseKernel {
    type State = MovementState;

    fn name(&self) -> &'static str {
        self.metric.name()
    }

    fn fold(
        &self,
        args: &[ArrayRef],
        filter: Option<&BooleanArray>,
        mut f: impl FnMut(usize, MovementState),
    ) -> Result<bool> {
        let instants = Instants::new(self.name(), args)?;
        let mut invalid = false;
        instants.visit(filter, |row, c, bad| {
            invalid |= bad;
            f(row, c);
        });
        Ok(invalid)
    }

    fn describe_invalid(&self, args: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<String> {
        let instants = Instants::new(self.name(), args)?;
        let mut found = None;
        instants.visit(filter, |row, _, bad| {
            if bad && found.is_none() {
                found = Some(row);
            }
        });
        let Some(row) = found else {
            return Ok("invalid row".to_string());
        };
        let [start, end, period_start, period_end] = [0, 1, 2, 3].map(|i| iso(&args[i], row));
        // Recompute which rule the row broke, in the finest unit.
        let at = |i: usize| instants.values[i][row] as i128 * instants.scale[i] as i128;
        Ok(if at(3) <= at(2) {
            format!(
                "empty period [{period_start}, {period_end}): period_end must be after period_start \
                 (the period is half-open)"
            )
        } else {
            format!("customer ended at {end}, before starting at {start}: end_ts must not be before start_ts")
        })
    }

    fn evaluate(&self, states: &[MovementState]) -> Result<ArrayRef> {
        let rate = |part: fn(&MovementState) -> i64| -> ArrayRef {
            Arc::new(
                states
                    .iter()
                    .map(|s| (s.at_start > 0).then(|| 100.0 * part(s) as f64 / s.at_start as f64))
                    .collect::<Float64Array>(),
            )
        };
        Ok(match self.metric {
            CustomerBaseMetric::ChurnRate => rate(|s| s.lost),
            // CRR = (E − N) / S with E = S − L + N, that is (S − L) / S.
            CustomerBaseMetric::RetentionRate => rate(|s| s.at_start - s.lost),
            CustomerBaseMetric::CustomerMovement => {
                // NULL where no row counted, in the struct and in its fields alike.
                let nulls = NullBuffer::from_iter(states.iter().map(|s| s.rows > 0));
                let nulls = (nulls.null_count() > 0).then_some(nulls);
                let column = |get: fn(&MovementState) -> i64| -> ArrayRef {
                    Arc::new(Int64Array::new(states.iter().map(get).collect(), nulls.clone()))
                };
                Arc::new(StructArray::try_new(
                    movement_fields(),
                    vec![
                        column(|s| s.at_start),
                        column(|s| s.new),
                        column(|s| s.lost),
                        column(|s| s.at_start - s.lost + s.new),
                    ],
                    nulls,
                )?)
            }
        })
    }
}

const SECTION: DocSection = DocSection {
    include: true,
    label: "Customer-base metrics",
    description: Some("Churn, retention and the movement of a customer base over a period."),
};

const RULES: &str = "Each row is one customer (or subscription), judged against its own half-open period \
[period_start, period_end): it is at the start (S) when start_ts < period_start and it had not left by \
period_start (end_ts NULL or end_ts >= period_start); lost (L) when at the start and end_ts < period_end; new (N) \
when period_start <= start_ts < period_end and end_ts is NULL or end_ts >= period_end; at the end E = S − L + N. \
A customer who joins and leaves inside the same period is neither at the start nor new, so counts nowhere. \
A NULL end_ts means still a customer; a row whose start_ts, period_start or period_end is NULL does not count. \
Every argument may be a timestamp of any unit, with or without a time zone, or a DATE (midnight UTC); instants \
are compared as such (timestamps without a zone are read as UTC), so units and types may be mixed. \
Period bounds may be constants or columns, so joining a calendar computes every month in one query. \
An end before its start, or a period_end not after its period_start, is invalid input: the query fails naming \
the values unless `SET cxlake.invalid_input = 'skip'`, which ignores such rows.";

const CALENDAR_EXAMPLE: &str = "SELECT month, {CALL} AS value\nFROM subscriptions\nCROSS JOIN (SELECT \
unnest(generate_series(DATE '2025-01-01', DATE '2025-06-01', INTERVAL '1 month')) AS month)\nGROUP BY month \
ORDER BY month;";

fn documentation(metric: CustomerBaseMetric) -> &'static Documentation {
    static DOCS: LazyLock<Vec<Documentation>> =
        LazyLock::new(|| CustomerBaseMetric::ALL.iter().map(|m| build_documentation(*m)).collect());
    &DOCS[CustomerBaseMetric::ALL.iter().position(|m| *m == metric).unwrap_or(0)]
}

fn build_documentation(metric: CustomerBaseMetric) -> Documentation {
    let name = metric.name();
    let call = format!("{name}(started_at, ended_at, month, month + INTERVAL '1 month')");
    let (description, worked) = match metric {
        CustomerBaseMetric::ChurnRate => (
            format!(
                "Customer churn rate of a period, in percent. It is 100 × L / S, the share of the customers at \
                 the start of the period who left during it, as DOUBLE; NULL when S = 0. {RULES}"
            ),
            "-- 250 customers at the start of a month, 20 of whom leave in it: 100 × 20 / 250 = 8",
        ),
        CustomerBaseMetric::RetentionRate => (
            format!(
                "Customer retention rate (CRR) of a period, in percent. It is 100 × (E − N) / S, the share of the \
                 customers at the start of the period still customers at its end, new customers excluded, as \
                 DOUBLE; NULL when S = 0. {RULES}"
            ),
            "-- S = 200 at the start, 20 lost, N = 20 new, so E = 200: 100 × (200 − 20) / 200 = 90",
        ),
        CustomerBaseMetric::CustomerMovement => (
            format!(
                "Customers at the start of a period, new, lost and at its end. Returns STRUCT<at_start, new, lost, \
                 at_end> (BIGINT each), the counts behind churn_rate and retention_rate; NULL when no row counted. \
                 Read a field with customer_movement(...)['lost']. {RULES}"
            ),
            "-- 200 at the start, 20 new, 20 lost: {at_start: 200, new: 20, lost: 20, at_end: 200}",
        ),
    };
    let mut builder = Documentation::builder(SECTION, description, metric.signatures())
        .with_argument("start_ts", "When the customer started: a timestamp (any unit and zone) or a date.")
        .with_argument("end_ts", "When the customer left, NULL while still a customer; not before start_ts.")
        .with_argument("period_start", "The first instant of the period (included): a constant or a column.")
        .with_argument("period_end", "The end of the period (excluded), after period_start: a constant or a column.")
        .with_sql_example(format!("{}\n{worked}", CALENDAR_EXAMPLE.replace("{CALL}", &call)));
    for other in CustomerBaseMetric::ALL.iter().filter(|m| **m != metric) {
        builder = builder.with_related_udf(other.name());
    }
    builder.build()
}

crate::common::family_registry!(CustomerBaseMetric, CustomerBaseFunction);

/// Expression builders for this family.
pub mod expr {
    use datafusion::logical_expr::Expr;

    use super::{udaf, CustomerBaseMetric};

    fn call(metric: CustomerBaseMetric, start: Expr, end: Expr, period_start: Expr, period_end: Expr) -> Expr {
        udaf(metric).call(vec![start, end, period_start, period_end])
    }

    /// `churn_rate(start_ts, end_ts, period_start, period_end)`: 100 × lost / at start.
    pub fn churn_rate(start: Expr, end: Expr, period_start: Expr, period_end: Expr) -> Expr {
        call(CustomerBaseMetric::ChurnRate, start, end, period_start, period_end)
    }

    /// `retention_rate(start_ts, end_ts, period_start, period_end)`: 100 × (at end − new) / at start.
    pub fn retention_rate(start: Expr, end: Expr, period_start: Expr, period_end: Expr) -> Expr {
        call(CustomerBaseMetric::RetentionRate, start, end, period_start, period_end)
    }

    /// `customer_movement(start_ts, end_ts, period_start, period_end)`: at start, new, lost, at end.
    pub fn customer_movement(start: Expr, end: Expr, period_start: Expr, period_end: Expr) -> Expr {
        call(CustomerBaseMetric::CustomerMovement, start, end, period_start, period_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(s: i64, e: Option<i64>, ps: i64, pe: i64) -> (MovementState, bool) {
        movement_row(s, e.unwrap_or(i64::MIN), ps, pe, e.is_some(), true)
    }

    #[test]
    fn rows_follow_the_half_open_period() {
        let m = |at_start, lost, new| MovementState { at_start, lost, new, rows: 1 };
        // Period [10, 20).
        assert_eq!(row(5, None, 10, 20), (m(1, 0, 0), false));
        assert_eq!(row(5, Some(10), 10, 20), (m(1, 1, 0), false)); // leaves on period_start: lost
        assert_eq!(row(5, Some(9), 10, 20), (m(0, 0, 0), false)); // gone before the period
        assert_eq!(row(5, Some(20), 10, 20), (m(1, 0, 0), false)); // leaves on period_end: retained
        assert_eq!(row(10, None, 10, 20), (m(0, 0, 1), false)); // starts on period_start: new
        assert_eq!(row(20, None, 10, 20), (m(0, 0, 0), false)); // starts on period_end: next period
        assert_eq!(row(12, Some(15), 10, 20), (m(0, 0, 0), false)); // in and out inside the period
        assert_eq!(row(12, Some(20), 10, 20), (m(0, 0, 1), false));
        // Invalid rows contribute nothing.
        assert_eq!(row(12, Some(11), 10, 20), (MovementState::default(), true));
        assert_eq!(row(5, None, 20, 20), (MovementState::default(), true));
        // A non-counting row is never invalid.
        assert_eq!(movement_row(12, 11, 10, 20, true, false), (MovementState::default(), false));
    }
}
