//! Helpdesk durations: mean seconds between two timestamps (first response, response, resolution, wait).
//!
//! All four share one aggregate implementation, [`ServiceFunction`], and one kernel. Start and
//! end keep their Arrow types (any unit, any or no time zone): Arrow timestamp values count
//! from the UTC epoch whatever the zone, so the kernel compares raw values brought to the finer
//! of the two units, with no cast pass over the batch.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, BooleanArray, Float64Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{AggregateUDFImpl, DocSection, Documentation, Signature, Volatility};

use crate::common::args;
use crate::common::fold::fold_two;
use crate::common::kernel::{AccumulatorFactory, Kernel};
use crate::common::state::{MeanState, MetricState};
use crate::common::time::{raw_ticks, timestamp_type};
use crate::common::{InvalidInput, PolicyAware};

/// The helpdesk duration metrics, one [`ServiceFunction`] each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceMetric {
    FirstResponseTime,
    AvgResponseTime,
    ResolutionTime,
    WaitTime,
}

impl ServiceMetric {
    pub const ALL: [ServiceMetric; 4] =
        [Self::FirstResponseTime, Self::AvgResponseTime, Self::ResolutionTime, Self::WaitTime];

    pub fn name(self) -> &'static str {
        match self {
            Self::FirstResponseTime => "first_response_time",
            Self::AvgResponseTime => "avg_response_time",
            Self::ResolutionTime => "resolution_time",
            Self::WaitTime => "wait_time",
        }
    }

    /// The names of the start and end arguments.
    fn arguments(self) -> (&'static str, &'static str) {
        match self {
            Self::FirstResponseTime => ("created_at", "first_response_at"),
            Self::AvgResponseTime => ("requested_at", "responded_at"),
            Self::ResolutionTime => ("created_at", "resolved_at"),
            Self::WaitTime => ("queued_at", "answered_at"),
        }
    }

    /// The accepted call shape, quoted in planning errors.
    fn signatures(self) -> &'static str {
        match self {
            Self::FirstResponseTime => "first_response_time(created_at TIMESTAMP, first_response_at TIMESTAMP)",
            Self::AvgResponseTime => "avg_response_time(requested_at TIMESTAMP, responded_at TIMESTAMP)",
            Self::ResolutionTime => "resolution_time(created_at TIMESTAMP, resolved_at TIMESTAMP)",
            Self::WaitTime => "wait_time(queued_at TIMESTAMP, answered_at TIMESTAMP)",
        }
    }
}

/// One helpdesk duration metric as a DataFusion aggregate, with its invalid-input policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceFunction {
    metric: ServiceMetric,
    policy: InvalidInput,
    signature: Signature,
}

impl ServiceFunction {
    pub fn new(metric: ServiceMetric) -> Self {
        Self { metric, policy: InvalidInput::default(), signature: Signature::user_defined(Volatility::Immutable) }
    }

    /// Builds the accumulator flavour `factory` makes.
    fn build<F: AccumulatorFactory>(&self, _args: &AccumulatorArgs, factory: F) -> Result<F::Output> {
        Ok(factory.build(DurationKernel { name: self.metric.name() }, self.policy))
    }
}

impl PolicyAware for ServiceFunction {
    fn policy(&self) -> InvalidInput {
        self.policy
    }

    fn with_policy(&self, policy: InvalidInput) -> Self {
        Self { policy, ..self.clone() }
    }
}

impl AggregateUDFImpl for ServiceFunction {
    fn name(&self) -> &str {
        self.metric.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let (name, sigs) = (self.metric.name(), self.metric.signatures());
        let (start, end) = self.metric.arguments();
        args::arity(name, sigs, types, 2, 2)?;
        Ok(vec![timestamp_type(name, sigs, start, &types[0])?, timestamp_type(name, sigs, end, &types[1])?])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    crate::common::kernel_accumulators!();

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(MeanState::fields(args.name))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(documentation(self.metric))
    }
}

/// Start and end as raw ticks, with the factors that bring each to the finer of the two units
/// and that unit's ticks per second.
struct Interval {
    start: Int64Array,
    end: Int64Array,
    start_factor: i128,
    end_factor: i128,
    per_second: f64,
}

impl Interval {
    fn of(args: &[ArrayRef], function: &str) -> Result<Self> {
        let (start, start_tps) = raw_ticks(&args[0], function)?;
        let (end, end_tps) = raw_ticks(&args[1], function)?;
        let common = start_tps.max(end_tps);
        Ok(Self {
            start,
            end,
            start_factor: (common / start_tps) as i128,
            end_factor: (common / end_tps) as i128,
            per_second: common as f64,
        })
    }

    /// Calls `f(row, |end − start| in ticks of the finer unit, end < start, counts)` for every
    /// row.
    ///
    /// The difference is exact for every timestamp Arrow can hold before it becomes a float.
    /// With one unit on both sides (the common case) it is taken in 64 bits: the distance
    /// between two `i64` values always fits in a `u64`. Mixed units are widened to i128 before
    /// scaling, so a seconds column far outside the nanosecond range (years 1677..2262) still
    /// compares exactly with a nanosecond one.
    #[inline(always)]
    fn fold(&self, filter: Option<&BooleanArray>, mut f: impl FnMut(usize, f64, bool, bool)) {
        let (sf, ef) = (self.start_factor, self.end_factor);
        if sf == 1 && ef == 1 {
            fold_two(&self.start, &self.end, filter, |row, s, e, counts| {
                let backwards = e < s;
                let distance =
                    if backwards { (s as u64).wrapping_sub(e as u64) } else { (e as u64).wrapping_sub(s as u64) };
                f(row, distance as f64, backwards, counts)
            });
        } else {
            fold_two(&self.start, &self.end, filter, |row, s, e, counts| {
                let ticks = e as i128 * ef - s as i128 * sf;
                f(row, ticks.unsigned_abs() as f64, ticks < 0, counts)
            });
        }
    }
}

#[derive(Debug)]
struct DurationKernel {
    name: &'static str,
}

impl Kernel for DurationKernel {
    type State = MeanState;

    fn name(&self) -> &'static str {
        self.name
    }

    fn fold(
        &self,
        args: &[ArrayRef],
        filter: Option<&BooleanArray>,
        mut f: impl FnMut(usize, MeanState),
    ) -> Result<bool> {
        let interval = Interval::of(args, self.name)?;
        let per_second = interval.per_second;
        let mut invalid = false;
        interval.fold(filter, |row, ticks, bad, counts| {
            invalid |= counts & bad;
            let counts = counts & !bad;
            // Dividing (not multiplying by the reciprocal) keeps whole ticks exact: 1.5 s is 1.5.
            let seconds = ticks / per_second;
            f(row, MeanState { sum: if counts { seconds } else { 0.0 }, count: counts as i64 });
        });
        Ok(invalid)
    }

    fn describe_invalid(&self, args: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<String> {
        let interval = Interval::of(args, self.name)?;
        let mut found = None;
        interval.fold(filter, |row, _, backwards, counts| {
            if counts && found.is_none() && backwards {
                found = Some(row);
            }
        });
        let Some(row) = found else {
            return Ok("invalid interval: an end before its start".to_string());
        };
        let options = FormatOptions::default();
        let show = |a: &ArrayRef| -> Result<String> {
            Ok(ArrayFormatter::try_new(a.as_ref(), &options)?.value(row).to_string())
        };
        Ok(format!(
            "invalid interval: ends at {} before it starts at {}: an end must not be before its start",
            show(&args[1])?,
            show(&args[0])?
        ))
    }

    fn evaluate(&self, states: &[MeanState]) -> Result<ArrayRef> {
        Ok(Arc::new(states.iter().map(|s| (s.count > 0).then(|| s.sum / s.count as f64)).collect::<Float64Array>()))
    }
}

const SECTION: DocSection = DocSection {
    include: true,
    label: "Service metrics",
    description: Some("Helpdesk durations: mean seconds between two timestamps."),
};

const RULES: &str = "The result is the mean of (end − start) in seconds, as DOUBLE, with sub-second precision \
kept (a 1.5 s gap is 1.5). Start and end may be timestamps of any unit (s, ms, us, ns), with or without a time \
zone, and of different zones: the instants are compared, and a timestamp without a zone is read as UTC. The \
difference is taken exactly in the finer of the two units, for any timestamp Arrow can hold. A row \
whose start or end is NULL (not yet answered or resolved) does not count; a group with no counting rows gives \
NULL. An end before its start is invalid input: it fails the query unless \
`SET cxlake.invalid_input = 'skip'`, which ignores such rows.";

fn documentation(metric: ServiceMetric) -> &'static Documentation {
    static DOCS: LazyLock<Vec<Documentation>> =
        LazyLock::new(|| ServiceMetric::ALL.iter().map(|m| build_documentation(*m)).collect());
    &DOCS[ServiceMetric::ALL.iter().position(|m| *m == metric).unwrap_or(0)]
}

fn build_documentation(metric: ServiceMetric) -> Documentation {
    let (summary, start, end, example) = match metric {
        ServiceMetric::FirstResponseTime => (
            "Mean first response time in seconds: how long customers wait for the first agent reply to a ticket.",
            "When the ticket was opened.",
            "The first agent response; NULL while unanswered.",
            "SELECT channel, first_response_time(created_at, first_response_at) FROM tickets GROUP BY channel;\n\
             -- replies after 60 s and 1.5 s, one ticket unanswered (NULL): (60 + 1.5) / 2 = 30.75",
        ),
        ServiceMetric::AvgResponseTime => (
            "Mean response time in seconds: how long each customer message waits for its reply, every message \
             of the conversation counting (not just the first).",
            "When the customer's message arrived.",
            "The agent's reply to it; NULL while unanswered.",
            "SELECT agent_id, avg_response_time(requested_at, responded_at) FROM ticket_replies GROUP BY agent_id;\n\
             -- replies after 120 s, 30 s and 30 s: 180 / 3 = 60",
        ),
        ServiceMetric::ResolutionTime => (
            "Mean resolution time in seconds: how long tickets take to be closed. Filter for a kind of ticket, \
             e.g. resolution_time(created_at, resolved_at) FILTER (WHERE type = 'complaint') for complaint \
             resolution time.",
            "When the ticket was opened.",
            "When the ticket was resolved; NULL while open.",
            "SELECT resolution_time(created_at, resolved_at) FILTER (WHERE type = 'complaint') FROM tickets;\n\
             -- complaints resolved after 1 h and 3 h: (3600 + 10800) / 2 = 7200",
        ),
        ServiceMetric::WaitTime => (
            "Mean wait time in seconds: how long live chats and calls stay in the queue before an agent picks up.",
            "When the chat or call entered the agent queue.",
            "When an agent answered; NULL for abandoned chats and calls (and non-live channels).",
            "SELECT channel, wait_time(queued_at, answered_at) FROM tickets GROUP BY channel;\n\
             -- answered after 84 s and 240 s, one abandoned: (84 + 240) / 2 = 162",
        ),
    };
    let (start_name, end_name) = metric.arguments();
    let any = " A timestamp of any unit, with or without a time zone.";
    let mut builder = Documentation::builder(
        SECTION,
        format!("{summary} {RULES}"),
        format!("{}({start_name}, {end_name})", metric.name()),
    )
    .with_argument(start_name, format!("{start}{any}"))
    .with_argument(end_name, format!("{end}{any}"))
    .with_sql_example(example);
    for other in ServiceMetric::ALL.iter().filter(|m| **m != metric) {
        builder = builder.with_related_udf(other.name());
    }
    builder.build()
}

crate::common::family_registry!(ServiceMetric, ServiceFunction);

/// Expression builders for this family.
pub mod expr {
    use datafusion::logical_expr::Expr;

    use super::{udaf, ServiceMetric};

    /// `first_response_time(created_at, first_response_at)`: mean seconds to the first reply.
    pub fn first_response_time(created_at: Expr, first_response_at: Expr) -> Expr {
        udaf(ServiceMetric::FirstResponseTime).call(vec![created_at, first_response_at])
    }

    /// `avg_response_time(requested_at, responded_at)`: mean seconds to each reply.
    pub fn avg_response_time(requested_at: Expr, responded_at: Expr) -> Expr {
        udaf(ServiceMetric::AvgResponseTime).call(vec![requested_at, responded_at])
    }

    /// `resolution_time(created_at, resolved_at)`: mean seconds to resolution.
    pub fn resolution_time(created_at: Expr, resolved_at: Expr) -> Expr {
        udaf(ServiceMetric::ResolutionTime).call(vec![created_at, resolved_at])
    }

    /// `wait_time(queued_at, answered_at)`: mean seconds in the queue before a live agent.
    pub fn wait_time(queued_at: Expr, answered_at: Expr) -> Expr {
        udaf(ServiceMetric::WaitTime).call(vec![queued_at, answered_at])
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{TimestampNanosecondArray, TimestampSecondArray};

    use super::*;

    fn durations(start: ArrayRef, end: ArrayRef) -> Vec<Option<f64>> {
        let kernel = DurationKernel { name: "resolution_time" };
        let mut out = Vec::new();
        let invalid = kernel.fold(&[start, end], None, |_, c| out.push((c.count == 1).then_some(c.sum))).unwrap();
        assert!(!invalid);
        out
    }

    #[test]
    fn units_and_zones_compare_instants() {
        // 10:00:00Z in seconds against 12:00:01.5+02:00 (10:00:01.5Z) in nanoseconds.
        let start: ArrayRef =
            Arc::new(TimestampSecondArray::from(vec![Some(1_740_823_200), None]).with_timezone("UTC"));
        let end: ArrayRef = Arc::new(
            TimestampNanosecondArray::from(vec![Some(1_740_823_201_500_000_000), Some(0)]).with_timezone("+02:00"),
        );
        assert_eq!(durations(start, end), vec![Some(1.5), None]);
    }

    #[test]
    fn seconds_outside_the_nanosecond_range_stay_exact() {
        // Year ~3000 in seconds against a nanosecond value: no overflow, exact difference.
        let start: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![0]));
        let end: ArrayRef = Arc::new(TimestampSecondArray::from(vec![32_503_680_000]));
        assert_eq!(durations(start, end), vec![Some(32_503_680_000.0)]);
    }
}
