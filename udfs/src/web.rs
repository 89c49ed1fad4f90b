//! Web and product analytics over event rows: sessions ([`SessionIdFunction`], a window
//! function), pages per session, session duration and DAU/MAU stickiness (aggregates).
//!
//! The aggregates keep what makes their merge exact in their state — distinct session keys,
//! per-session first and last timestamps, distinct (user, day) pairs — with keys of any
//! hashable type encoded as bytes by Arrow's row format ([`crate::common::keys`]).
//!
//! No row value is invalid input here (any key, any timestamp), so these functions do not take
//! the `cxlake.invalid_input` policy; a bad constant (a negative session gap) fails at planning.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int32Type, Int64Type};
use datafusion::common::{internal_err, plan_err, HashMap, HashSet, Result, ScalarValue};
use datafusion::logical_expr::function::{
    AccumulatorArgs, PartitionEvaluatorArgs, StateFieldsArgs, WindowUDFFieldArgs,
};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, DocSection, Documentation, GroupsAccumulator, PartitionEvaluator,
    Signature, Volatility, WindowUDF, WindowUDFImpl,
};
use datafusion::physical_expr::expressions::Literal;
use datafusion::physical_expr::PhysicalExpr;

use crate::common::args;
use crate::common::fold::counting_rows;
use crate::common::groups::{GroupStates, Grouped, Single};
use crate::common::keys::{
    binary_list_field, binary_lists, check_key_type, int32_lists, int64_lists, list_column, list_field, Key, KeyEncoder,
};
use crate::common::time::{local_days, raw_ticks, timestamp_type, type_ticks_per_second};

/// The default inactivity gap that ends a session: 30 minutes.
pub const DEFAULT_SESSION_GAP_SECONDS: f64 = 1800.0;

const SESSION_SIGNATURE: &str = "session_id(ts) OVER (PARTITION BY user ORDER BY ts), \
session_id(ts, gap_seconds) OVER (...) with ts a TIMESTAMP and gap_seconds a constant number >= 0";

/// `session_id(ts [, gap_seconds])`: the session number of each event in its partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionIdFunction {
    signature: Signature,
}

impl Default for SessionIdFunction {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl WindowUDFImpl for SessionIdFunction {
    fn name(&self) -> &str {
        "session_id"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        args::arity("session_id", SESSION_SIGNATURE, types, 1, 2)?;
        let mut coerced = vec![timestamp_type("session_id", SESSION_SIGNATURE, "ts", &types[0])?];
        if let Some(gap) = types.get(1) {
            coerced.push(args::float("session_id", SESSION_SIGNATURE, "gap_seconds", gap)?);
        }
        Ok(coerced)
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(field_args.name(), DataType::Int64, true)))
    }

    fn partition_evaluator(&self, args: PartitionEvaluatorArgs) -> Result<Box<dyn PartitionEvaluator>> {
        let Some(ts) = args.input_fields().first() else {
            return plan_err!("session_id takes a timestamp. Accepted: {SESSION_SIGNATURE}");
        };
        let gap = session_gap_ticks(args.input_exprs().get(1), ts.data_type())?;
        Ok(Box::new(SessionEvaluator { gap, session: 0, previous: None }))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&SESSION_DOC)
    }
}

/// The largest gap, in ticks of `ts_type`, that keeps a session going: `gap_seconds` (a
/// constant number >= 0; 30 minutes when absent). Shared by the window function and the
/// one-pass plan of [`crate::sessions_plan`], so both number sessions alike.
pub(crate) fn session_gap_ticks(gap_seconds: Option<&Arc<dyn PhysicalExpr>>, ts_type: &DataType) -> Result<i64> {
    let gap = match gap_seconds {
        None => DEFAULT_SESSION_GAP_SECONDS,
        Some(expr) => {
            let any: &dyn std::any::Any = expr.as_ref();
            let Some(literal) = any.downcast_ref::<Literal>() else {
                return plan_err!("session_id: gap_seconds must be a constant, not the expression {expr}");
            };
            match literal.value().cast_to(&DataType::Float64)? {
                ScalarValue::Float64(Some(g)) if g.is_finite() && g >= 0.0 => g,
                other => {
                    return plan_err!(
                        "session_id: gap_seconds must be a constant number >= 0, not {other}. Accepted: {SESSION_SIGNATURE}"
                    )
                }
            }
        }
    };
    let per_second = type_ticks_per_second(ts_type, "session_id")?;
    // A gap is a whole number of ticks, so `gap > g` is `gap > floor(g)`.
    let gap = (gap * per_second as f64).floor();
    Ok(if gap >= i64::MAX as f64 { i64::MAX } else { gap as i64 })
}

/// Numbers the sessions of one partition: in a single pass over its timestamps when DataFusion
/// hands over the whole partition, or row by row as the events stream in (bounded execution:
/// memory then holds one user's events, not the input).
#[derive(Debug)]
struct SessionEvaluator {
    /// The largest gap, in ticks of the timestamp's unit, that keeps a session going.
    gap: i64,
    /// Row by row: the current session number and the last non-NULL timestamp.
    session: i64,
    previous: Option<i64>,
}

/// The raw value (ticks since the UTC epoch) of one timestamp, `None` when NULL.
fn tick_at(array: &ArrayRef, row: usize) -> Result<Option<i64>> {
    use datafusion::arrow::datatypes::{
        TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    };
    if array.is_null(row) {
        return Ok(None);
    }
    Ok(Some(match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => array.as_primitive::<TimestampSecondType>().value(row),
        DataType::Timestamp(TimeUnit::Millisecond, _) => array.as_primitive::<TimestampMillisecondType>().value(row),
        DataType::Timestamp(TimeUnit::Microsecond, _) => array.as_primitive::<TimestampMicrosecondType>().value(row),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => array.as_primitive::<TimestampNanosecondType>().value(row),
        other => return internal_err!("session_id: unexpected input type {other} after coercion"),
    }))
}

impl PartitionEvaluator for SessionEvaluator {
    fn supports_bounded_execution(&self) -> bool {
        true
    }

    fn is_causal(&self) -> bool {
        true
    }

    fn evaluate(&mut self, values: &[ArrayRef], range: &std::ops::Range<usize>) -> Result<ScalarValue> {
        let Some(ts) = values.first() else {
            return internal_err!("session_id: missing ts");
        };
        // Without a window frame, `range` is the current row alone.
        let Some(t) = tick_at(ts, range.start)? else {
            return Ok(ScalarValue::Int64(None));
        };
        if self.previous.is_none_or(|p| t as i128 - p as i128 > self.gap as i128) {
            self.session += 1;
        }
        self.previous = Some(t);
        Ok(ScalarValue::Int64(Some(self.session)))
    }

    fn evaluate_all(&mut self, values: &[ArrayRef], _num_rows: usize) -> Result<ArrayRef> {
        let Some(ts) = values.first() else {
            return internal_err!("session_id: missing ts");
        };
        let (ticks, _) = raw_ticks(ts, "session_id")?;
        Ok(Arc::new(SessionRun::default().number(&ticks, self.gap, None)))
    }
}

/// Where the numbering of a partition's sessions stands: the current session number and the last
/// non-NULL timestamp. The window function numbers one partition from a fresh run; the one-pass
/// plan ([`crate::sessions_plan`]) carries a run across the batches of sorted partitions.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SessionRun {
    session: i64,
    previous: Option<i64>,
}

impl SessionRun {
    /// The session number of each row of `ticks`, in row order, going on from this run. A row
    /// whose `starts` entry is true begins a new partition (numbered from 1 again). A NULL
    /// timestamp gets NULL and leaves the run as it was.
    pub(crate) fn number(&mut self, ticks: &Int64Array, gap: i64, starts: Option<&[bool]>) -> Int64Array {
        let gap = gap as i128;
        let mut out = Vec::with_capacity(ticks.len());
        for (row, &t) in ticks.values().iter().enumerate() {
            if starts.is_some_and(|s| s[row]) {
                *self = SessionRun::default();
            }
            if ticks.is_valid(row) {
                self.next(t, gap);
            }
            out.push(self.session);
        }
        Int64Array::new(out.into(), ticks.nulls().cloned())
    }

    /// Appends to `out` the session numbers of `ticks` (none NULL, in order, of one partition),
    /// going on from this run.
    ///
    /// The run is kept in locals and a new session adds a comparison's 0 or 1: with a user's few
    /// events, whether the gap is passed is a coin toss for the branch predictor, and stores to
    /// the run at every row kept it in memory.
    pub(crate) fn number_into(&mut self, ticks: &[i64], gap: i64, out: &mut Vec<i64>) {
        let Some((&first, rest)) = ticks.split_first() else { return };
        let gap = gap as i128;
        let (mut session, mut previous) = (self.next(first, gap), first);
        out.reserve(ticks.len());
        out.push(session);
        out.extend(rest.iter().map(|&t| {
            session += (t as i128 - previous as i128 > gap) as i64;
            previous = t;
            session
        }));
        (self.session, self.previous) = (session, Some(previous));
    }

    /// The session of an event at `t` after this run's events: a new one when the gap to the
    /// previous event is greater than `gap` (computed wide, so no gap overflows).
    #[inline]
    fn next(&mut self, t: i64, gap: i128) -> i64 {
        if self.previous.is_none_or(|p| t as i128 - p as i128 > gap) {
            self.session += 1;
        }
        self.previous = Some(t);
        self.session
    }
}

/// The web analytics aggregates, one [`WebFunction`] each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebMetric {
    PagesPerSession,
    AvgSessionDuration,
    Stickiness,
}

impl WebMetric {
    pub const ALL: [WebMetric; 3] = [Self::PagesPerSession, Self::AvgSessionDuration, Self::Stickiness];

    pub fn name(self) -> &'static str {
        match self {
            Self::PagesPerSession => "pages_per_session",
            Self::AvgSessionDuration => "avg_session_duration",
            Self::Stickiness => "stickiness",
        }
    }

    fn signatures(self) -> &'static str {
        match self {
            Self::PagesPerSession => "pages_per_session(session_key) with session_key of any hashable type",
            Self::AvgSessionDuration => "avg_session_duration(session_key, ts) with ts a TIMESTAMP",
            Self::Stickiness => "stickiness(user_id, ts) with user_id of any hashable type and ts a TIMESTAMP or DATE",
        }
    }

    fn key_name(self) -> &'static str {
        match self {
            Self::Stickiness => "user_id",
            _ => "session_key",
        }
    }
}

/// One web analytics aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebFunction {
    metric: WebMetric,
    signature: Signature,
}

impl WebFunction {
    pub fn new(metric: WebMetric) -> Self {
        Self { metric, signature: Signature::user_defined(Volatility::Immutable) }
    }

    fn states(&self, args: &AccumulatorArgs) -> Result<Box<dyn StatesFactory>> {
        let encoder = KeyEncoder::new(args.expr_fields[0].data_type())?;
        let name = self.metric.name();
        Ok(match self.metric {
            WebMetric::PagesPerSession => Box::new(PagesStates { encoder, groups: Vec::new(), heap: 0 }),
            WebMetric::AvgSessionDuration => Box::new(DurationStates {
                encoder,
                per_second: type_ticks_per_second(args.expr_fields[1].data_type(), name)?,
                groups: Vec::new(),
                heap: 0,
            }),
            WebMetric::Stickiness => Box::new(StickinessStates { encoder, groups: Vec::new(), heap: 0 }),
        })
    }
}

/// Turns a family's states into either accumulator flavour.
trait StatesFactory {
    fn single(self: Box<Self>) -> Box<dyn Accumulator>;
    fn grouped(self: Box<Self>) -> Box<dyn GroupsAccumulator>;
}

impl<S: GroupStates> StatesFactory for S {
    fn single(self: Box<Self>) -> Box<dyn Accumulator> {
        Box::new(Single::new(*self))
    }

    fn grouped(self: Box<Self>) -> Box<dyn GroupsAccumulator> {
        Box::new(Grouped(*self))
    }
}

impl AggregateUDFImpl for WebFunction {
    fn name(&self) -> &str {
        self.metric.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let (name, sigs) = (self.metric.name(), self.metric.signatures());
        let arity = if self.metric == WebMetric::PagesPerSession { 1 } else { 2 };
        args::arity(name, sigs, types, arity, arity)?;
        let mut coerced = vec![check_key_type(name, sigs, self.metric.key_name(), &types[0])?];
        if let Some(ts) = types.get(1) {
            coerced.push(match (self.metric, ts) {
                // A calendar day is all stickiness needs, so it also takes dates.
                (WebMetric::Stickiness, DataType::Date32 | DataType::Date64) => DataType::Date32,
                _ => timestamp_type(name, sigs, "ts", ts)?,
            });
        }
        Ok(coerced)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(self.states(&args)?.single())
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(self.states(&args)?.grouped())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let name = args.name;
        Ok(match self.metric {
            WebMetric::PagesPerSession => {
                vec![
                    Arc::new(Field::new(format!("{name}[rows]"), DataType::Int64, true)),
                    binary_list_field(name, "sessions"),
                ]
            }
            WebMetric::AvgSessionDuration => vec![
                binary_list_field(name, "sessions"),
                list_field(name, "first", DataType::Int64),
                list_field(name, "last", DataType::Int64),
            ],
            WebMetric::Stickiness => vec![binary_list_field(name, "users"), list_field(name, "days", DataType::Int32)],
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(documentation(self.metric))
    }
}

/// The rows that count: key (and timestamp) non-NULL, selected by the filter.
fn counting(values: &[ArrayRef], filter: Option<&BooleanArray>) -> Option<NullBuffer> {
    let nulls: Vec<Option<NullBuffer>> = values.iter().map(|v| v.logical_nulls()).collect();
    let refs: Vec<Option<&NullBuffer>> = nulls.iter().map(Option::as_ref).collect();
    counting_rows(&refs, filter)
}

fn counts(rows: &Option<NullBuffer>, row: usize) -> bool {
    rows.as_ref().is_none_or(|r| r.is_valid(row))
}

/// Offsets `start..end` of list `row`.
fn list_range(list: &datafusion::arrow::array::ListArray, row: usize) -> std::ops::Range<usize> {
    let offsets = list.value_offsets();
    offsets[row] as usize..offsets[row + 1] as usize
}

/// pages_per_session: counting rows and distinct session keys per group.
#[derive(Debug)]
struct PagesStates {
    encoder: KeyEncoder,
    groups: Vec<(i64, HashSet<Key>)>,
    /// Bytes of the stored keys, kept up to date so that `size` is O(1).
    heap: usize,
}

/// Approximate bytes of one hash table entry holding `key_len` key bytes and a `value` value.
fn entry_bytes(key_len: usize, value: usize) -> usize {
    key_len + std::mem::size_of::<Key>() + value + 1
}

/// Inserts `key` when absent; returns the bytes this stored.
fn insert_key(sessions: &mut HashSet<Key>, key: &[u8]) -> usize {
    if sessions.contains(key) {
        return 0;
    }
    sessions.insert(key.into());
    entry_bytes(key.len(), 0)
}

impl GroupStates for PagesStates {
    fn empty(&self) -> Result<Self> {
        Ok(Self { encoder: self.encoder.try_clone()?, groups: Vec::new(), heap: 0 })
    }

    fn resize(&mut self, groups: usize) {
        self.groups.resize_with(groups, Default::default);
    }

    fn update(&mut self, values: &[ArrayRef], group_indices: &[usize], filter: Option<&BooleanArray>) -> Result<()> {
        let keys = self.encoder.encode(&values[0])?;
        let rows = counting(&values[..1], filter);
        for (row, &g) in group_indices.iter().enumerate() {
            if counts(&rows, row) {
                let (count, sessions) = &mut self.groups[g];
                *count += 1;
                self.heap += insert_key(sessions, keys.row(row).as_ref());
            }
        }
        Ok(())
    }

    fn merge(&mut self, states: &[ArrayRef], group_indices: &[usize]) -> Result<()> {
        let Some(counts) = states.first().and_then(|s| s.as_primitive_opt::<Int64Type>()) else {
            return internal_err!("pages_per_session: unexpected state columns");
        };
        let lists = list_column(states, 1)?;
        let keys = lists.values().as_binary::<i32>();
        for (row, &g) in group_indices.iter().enumerate() {
            let (count, sessions) = &mut self.groups[g];
            *count += counts.value(row);
            for k in list_range(lists, row) {
                self.heap += insert_key(sessions, keys.value(k));
            }
        }
        Ok(())
    }

    fn evaluate(&self, groups: usize) -> Result<ArrayRef> {
        let values: Float64Array = self.groups[..groups]
            .iter()
            .map(|(count, sessions)| (*count > 0).then(|| *count as f64 / sessions.len() as f64))
            .collect();
        Ok(Arc::new(values))
    }

    fn state(&self, groups: usize) -> Result<Vec<ArrayRef>> {
        let groups = &self.groups[..groups];
        Ok(vec![
            Arc::new(groups.iter().map(|g| g.0).collect::<Int64Array>()),
            binary_lists(groups.iter().map(|g| Some(g.1.iter().map(|k| k.as_ref())))),
        ])
    }

    fn drop_first(&mut self, groups: usize) {
        let freed: usize =
            self.groups.drain(..groups).map(|g| g.1.iter().map(|k| entry_bytes(k.len(), 0)).sum::<usize>()).sum();
        self.heap -= freed;
    }

    fn groups(&self) -> usize {
        self.groups.len()
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<(i64, HashSet<Key>)>() + self.heap
    }
}

/// avg_session_duration: first and last timestamp (ticks) of every session per group.
#[derive(Debug)]
struct DurationStates {
    encoder: KeyEncoder,
    per_second: i64,
    groups: Vec<HashMap<Key, (i64, i64)>>,
    /// Bytes of the stored sessions, kept up to date so that `size` is O(1).
    heap: usize,
}

const SPAN_BYTES: usize = std::mem::size_of::<(i64, i64)>();

/// Widens a session's span to cover `first..=last`; returns the bytes a new session stored.
fn widen(sessions: &mut HashMap<Key, (i64, i64)>, key: &[u8], first: i64, last: i64) -> usize {
    match sessions.get_mut(key) {
        Some(span) => {
            span.0 = span.0.min(first);
            span.1 = span.1.max(last);
            0
        }
        None => {
            sessions.insert(key.into(), (first, last));
            entry_bytes(key.len(), SPAN_BYTES)
        }
    }
}

impl GroupStates for DurationStates {
    fn empty(&self) -> Result<Self> {
        Ok(Self { encoder: self.encoder.try_clone()?, per_second: self.per_second, groups: Vec::new(), heap: 0 })
    }

    fn resize(&mut self, groups: usize) {
        self.groups.resize_with(groups, Default::default);
    }

    fn update(&mut self, values: &[ArrayRef], group_indices: &[usize], filter: Option<&BooleanArray>) -> Result<()> {
        let keys = self.encoder.encode(&values[0])?;
        let (ticks, _) = raw_ticks(&values[1], "avg_session_duration")?;
        let rows = counting(values, filter);
        let ticks = ticks.values();
        for (row, &g) in group_indices.iter().enumerate() {
            if counts(&rows, row) {
                self.heap += widen(&mut self.groups[g], keys.row(row).as_ref(), ticks[row], ticks[row]);
            }
        }
        Ok(())
    }

    fn merge(&mut self, states: &[ArrayRef], group_indices: &[usize]) -> Result<()> {
        let lists = list_column(states, 0)?;
        let keys = lists.values().as_binary::<i32>();
        let (firsts, lasts) = (list_column(states, 1)?, list_column(states, 2)?);
        let (Some(first), Some(last)) =
            (firsts.values().as_primitive_opt::<Int64Type>(), lasts.values().as_primitive_opt::<Int64Type>())
        else {
            return internal_err!("avg_session_duration: unexpected state columns");
        };
        for (row, &g) in group_indices.iter().enumerate() {
            let (range, first_start) = (list_range(lists, row), firsts.value_offsets()[row] as usize);
            for (i, k) in range.clone().enumerate() {
                let j = first_start + i;
                self.heap += widen(&mut self.groups[g], keys.value(k), first.value(j), last.value(j));
            }
        }
        Ok(())
    }

    fn evaluate(&self, groups: usize) -> Result<ArrayRef> {
        let per_second = self.per_second as f64;
        let values: Float64Array = self.groups[..groups]
            .iter()
            .map(|sessions| {
                // Ticks add up exactly in 128 bits; one division at the end.
                let total: i128 = sessions.values().map(|(f, l)| *l as i128 - *f as i128).sum();
                (!sessions.is_empty()).then(|| total as f64 / sessions.len() as f64 / per_second)
            })
            .collect();
        Ok(Arc::new(values))
    }

    fn state(&self, groups: usize) -> Result<Vec<ArrayRef>> {
        let groups = &self.groups[..groups];
        Ok(vec![
            binary_lists(groups.iter().map(|g| Some(g.keys().map(|k| k.as_ref())))),
            int64_lists(groups.iter().map(|g| Some(g.values().map(|s| s.0)))),
            int64_lists(groups.iter().map(|g| Some(g.values().map(|s| s.1)))),
        ])
    }

    fn drop_first(&mut self, groups: usize) {
        let freed: usize = self
            .groups
            .drain(..groups)
            .map(|g| g.keys().map(|k| entry_bytes(k.len(), SPAN_BYTES)).sum::<usize>())
            .sum();
        self.heap -= freed;
    }

    fn groups(&self) -> usize {
        self.groups.len()
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<HashMap<Key, (i64, i64)>>() + self.heap
    }
}

/// stickiness: the distinct (user, local day) pairs of a group, users numbered in first-seen
/// order so that each user's key is stored once.
#[derive(Debug, Default)]
struct Activity {
    users: HashMap<Key, u32>,
    active: HashSet<(u32, i32)>,
}

const PAIR_BYTES: usize = std::mem::size_of::<(u32, i32)>() + 1;

impl Activity {
    /// Records that `user` was active on `day`; returns the bytes this stored.
    fn add(&mut self, user: &[u8], day: i32) -> usize {
        let mut bytes = 0;
        let next = self.users.len() as u32;
        let id = match self.users.get(user) {
            Some(id) => *id,
            None => {
                self.users.insert(user.into(), next);
                bytes += entry_bytes(user.len(), 4);
                next
            }
        };
        if self.active.insert((id, day)) {
            bytes += PAIR_BYTES;
        }
        bytes
    }

    fn bytes(&self) -> usize {
        self.users.keys().map(|k| entry_bytes(k.len(), 4)).sum::<usize>() + self.active.len() * PAIR_BYTES
    }
}

#[derive(Debug)]
struct StickinessStates {
    encoder: KeyEncoder,
    groups: Vec<Activity>,
    /// Bytes of the stored users and (user, day) pairs, kept up to date so that `size` is O(1).
    heap: usize,
}

impl GroupStates for StickinessStates {
    fn empty(&self) -> Result<Self> {
        Ok(Self { encoder: self.encoder.try_clone()?, groups: Vec::new(), heap: 0 })
    }

    fn resize(&mut self, groups: usize) {
        self.groups.resize_with(groups, Default::default);
    }

    fn update(&mut self, values: &[ArrayRef], group_indices: &[usize], filter: Option<&BooleanArray>) -> Result<()> {
        let keys = self.encoder.encode(&values[0])?;
        let days = local_days(&values[1], "stickiness")?;
        let rows = counting(values, filter);
        let days = days.values();
        for (row, &g) in group_indices.iter().enumerate() {
            if counts(&rows, row) {
                self.heap += self.groups[g].add(keys.row(row).as_ref(), days[row]);
            }
        }
        Ok(())
    }

    fn merge(&mut self, states: &[ArrayRef], group_indices: &[usize]) -> Result<()> {
        let users = list_column(states, 0)?;
        let keys = users.values().as_binary::<i32>();
        let day_lists = list_column(states, 1)?;
        let Some(days) = day_lists.values().as_primitive_opt::<Int32Type>() else {
            return internal_err!("stickiness: unexpected state columns");
        };
        for (row, &g) in group_indices.iter().enumerate() {
            let day_start = day_lists.value_offsets()[row] as usize;
            for (i, k) in list_range(users, row).enumerate() {
                self.heap += self.groups[g].add(keys.value(k), days.value(day_start + i));
            }
        }
        Ok(())
    }

    fn evaluate(&self, groups: usize) -> Result<ArrayRef> {
        let values: Float64Array = self.groups[..groups]
            .iter()
            .map(|activity| {
                let first = activity.active.iter().map(|a| a.1).min()?;
                let last = activity.active.iter().map(|a| a.1).max()?;
                let days = (last as i64 - first as i64 + 1) as f64;
                Some(100.0 * activity.active.len() as f64 / (days * activity.users.len() as f64))
            })
            .collect();
        Ok(Arc::new(values))
    }

    fn state(&self, groups: usize) -> Result<Vec<ArrayRef>> {
        let groups = &self.groups[..groups];
        let by_id: Vec<Vec<&[u8]>> = groups
            .iter()
            .map(|a| {
                let mut keys = vec![&[][..]; a.users.len()];
                for (key, &id) in &a.users {
                    keys[id as usize] = key.as_ref();
                }
                keys
            })
            .collect();
        Ok(vec![
            binary_lists(groups.iter().zip(&by_id).map(|(a, keys)| Some(a.active.iter().map(|p| keys[p.0 as usize])))),
            int32_lists(groups.iter().map(|a| Some(a.active.iter().map(|p| p.1)))),
        ])
    }

    fn drop_first(&mut self, groups: usize) {
        let freed: usize = self.groups.drain(..groups).map(|a| a.bytes()).sum();
        self.heap -= freed;
    }

    fn groups(&self) -> usize {
        self.groups.len()
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<Activity>() + self.heap
    }
}

const SECTION: DocSection = DocSection {
    include: true,
    label: "Web and product analytics",
    description: Some("Sessions, pages per session, session duration and stickiness over event rows."),
};

static SESSION_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        "Session number of each event, from 1 within each window partition: a new session starts when the gap to the previous event is greater than gap_seconds (default 1800, the 30-minute inactivity rule). The result is BIGINT. Use it OVER (PARTITION BY user ORDER BY ts); the gap is measured between consecutive rows of that order. A NULL ts gets a NULL session and does not break the sequence (the next event is compared with the last non-NULL one). Timestamps of any unit, with or without a time zone. gap_seconds must be a constant >= 0; anything else fails at planning. Key per-session aggregates on (user, session), e.g. named_struct('user', user_id, 'session', session_id). Partitioned by one integer, date or timestamp column and ordered by a timestamp, it runs in one pass: rows that already arrive in (user, ts) order, as files declared WITH ORDER can give them, are numbered as they stream; otherwise each partition's rows are held and ordered in memory, or, under a memory limit, through DataFusion's sort, which spills to disk.",
        "session_id(ts [, gap_seconds]) OVER (PARTITION BY user_id ORDER BY ts)",
    )
    .with_argument("ts", "The event time: a timestamp of any unit, with or without a time zone.")
    .with_argument("gap_seconds", "Optional constant number >= 0: the longest gap, in seconds, within one session (default 1800).")
    .with_sql_example(
        "SELECT user_id, ts, session_id(ts) OVER (PARTITION BY user_id ORDER BY ts) AS session FROM clickstream;\n\
         -- events at 10:00, 10:20, 11:00 and 11:29: sessions 1, 1, 2, 2 (40 min > 30 min, 29 min is not)",
    )
    .with_related_udf("pages_per_session")
    .with_related_udf("avg_session_duration")
    .build()
});

fn documentation(metric: WebMetric) -> &'static Documentation {
    static DOCS: LazyLock<Vec<Documentation>> =
        LazyLock::new(|| WebMetric::ALL.iter().map(|m| build_documentation(*m)).collect());
    &DOCS[WebMetric::ALL.iter().position(|m| *m == metric).unwrap_or(0)]
}

const KEY: &str = "Of any hashable type: integer, string, date, or a struct for a composite key such as named_struct('user', user_id, 'session', session).";

fn build_documentation(metric: WebMetric) -> Documentation {
    let ts = "The event time: a timestamp of any unit, with or without a time zone.";
    let builder = match metric {
        WebMetric::PagesPerSession => Documentation::builder(
            SECTION,
            "Mean page views per session: counting rows divided by distinct session keys, as DOUBLE. Each row is one page view (filter other events out with FILTER (WHERE event = 'page_view') or WHERE). Rows with a NULL key do not count; a group with no counting rows gives NULL. Distinct keys are exact (no sketch) and merge exactly across partitions.",
            "pages_per_session(session_key)",
        )
        .with_argument("session_key", format!("Identifies the session. {KEY}"))
        .with_sql_example(
            "SELECT pages_per_session(named_struct('user', user_id, 'session', session)) FROM sessions;\n\
             -- 5 page views in 2 sessions: 2.5",
        ),
        WebMetric::AvgSessionDuration => Documentation::builder(
            SECTION,
            "Mean session duration in seconds: over the distinct sessions of the group, the mean of (last ts − first ts), as DOUBLE; a one-event session lasts 0. Rows with a NULL key or ts do not count; a group with no counting rows gives NULL. Durations are summed exactly in ticks of the timestamp's unit (any unit, any zone) and merge exactly across partitions.",
            "avg_session_duration(session_key, ts)",
        )
        .with_argument("session_key", format!("Identifies the session. {KEY}"))
        .with_argument("ts", ts)
        .with_sql_example(
            "SELECT avg_session_duration(named_struct('user', user_id, 'session', session), ts) FROM sessions;\n\
             -- one session from 10:00 to 10:05, one of a single event: (300 + 0) / 2 = 150",
        ),
        WebMetric::Stickiness => Documentation::builder(
            SECTION,
            "Stickiness in percent (DAU/MAU when grouped by month): 100 × the mean over the calendar days from the group's first to its last active day (inactive days count 0) of distinct users active that day, divided by the distinct users of the group. Days follow the timestamp's own time zone, daylight saving time included (UTC when it has none). Rows with a NULL user or ts do not count; a group with no counting rows gives NULL.",
            "stickiness(user_id, ts)",
        )
        .with_argument("user_id", format!("Identifies the user. {KEY}"))
        .with_argument("ts", "The event time: a timestamp of any unit, with or without a time zone, or a DATE (the day itself).")
        .with_sql_example(
            "SELECT date_trunc('month', ts) AS month, stickiness(user_id, ts) AS dau_mau FROM clickstream GROUP BY 1;\n\
             -- 2 users over 3 days, active on 2, 1 and 1 of them: 100 × (4 / 3) / 2 = 66.67",
        ),
    };
    let mut builder = builder.with_related_udf("session_id");
    for other in WebMetric::ALL.iter().filter(|m| **m != metric) {
        builder = builder.with_related_udf(other.name());
    }
    builder.build()
}

/// The aggregates of this module.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    WebMetric::ALL.iter().map(|m| udaf(*m)).collect()
}

fn udaf(metric: WebMetric) -> Arc<AggregateUDF> {
    static UDAFS: LazyLock<Vec<Arc<AggregateUDF>>> = LazyLock::new(|| {
        WebMetric::ALL.iter().map(|m| Arc::new(AggregateUDF::new_from_impl(WebFunction::new(*m)))).collect()
    });
    Arc::clone(&UDAFS[WebMetric::ALL.iter().position(|m| *m == metric).unwrap_or(0)])
}

/// The window functions of this module.
pub fn windows() -> Vec<Arc<WindowUDF>> {
    vec![session_udwf()]
}

fn session_udwf() -> Arc<WindowUDF> {
    static UDWF: LazyLock<Arc<WindowUDF>> =
        LazyLock::new(|| Arc::new(WindowUDF::new_from_impl(SessionIdFunction::default())));
    Arc::clone(&UDWF)
}

/// Expression builders for this module.
pub mod expr {
    use datafusion::logical_expr::{lit, Expr};

    use super::{session_udwf, udaf, WebMetric};

    /// `session_id(ts [, gap_seconds])`: a window function; add `.partition_by(..).order_by(..)`
    /// through `ExprFunctionExt` and `.build()`.
    pub fn session_id(ts: Expr, gap_seconds: Option<f64>) -> Expr {
        let mut args = vec![ts];
        args.extend(gap_seconds.map(lit));
        session_udwf().call(args)
    }

    /// `pages_per_session(session_key)`: page views per distinct session.
    pub fn pages_per_session(session_key: Expr) -> Expr {
        udaf(WebMetric::PagesPerSession).call(vec![session_key])
    }

    /// `avg_session_duration(session_key, ts)`: mean seconds from a session's first to last event.
    pub fn avg_session_duration(session_key: Expr, ts: Expr) -> Expr {
        udaf(WebMetric::AvgSessionDuration).call(vec![session_key, ts])
    }

    /// `stickiness(user_id, ts)`: mean daily active users over distinct users, in percent.
    pub fn stickiness(user_id: Expr, ts: Expr) -> Expr {
        udaf(WebMetric::Stickiness).call(vec![user_id, ts])
    }
}
