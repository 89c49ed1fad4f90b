//! Funnels and retention with the semantics of ClickHouse's `windowFunnel` and `retention`.
//!
//! [`WindowFunnelFunction`] serves `window_funnel` (the deepest step reached) and
//! `window_funnel_times` (seconds from step 1 to each step of the chain that reached it). Its
//! state is every group's (timestamp, condition bitmask) events, kept as they arrive (one chunk
//! per batch): partial states merge by appending, and each group's events are gathered (a
//! counting sort) and sorted once, when the group is evaluated, so the result does not depend
//! on partitioning and memory is bounded by the number of counted events.
//! [`RetentionFunction`] keeps one bitmask per group (which conditions ever held).
//!
//! The evaluation follows ClickHouse's `AggregateFunctionWindowFunnel.cpp` step by step; the
//! conformance test (`tests/clickhouse_conformance.rs`) checks it against ClickHouse itself.
//!
//! No row value is invalid input here (conditions are true, false or NULL), so these functions do
//! not take the `cxlake.invalid_input` policy; a bad window or mode fails at planning.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray, UInt8Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{internal_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, DocSection, Documentation, GroupsAccumulator, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;

use crate::common::args;
use crate::common::fold::counting_rows;
use crate::common::groups::{GroupStates, Grouped, Single};
use crate::common::keys::{list_column, list_field};
use crate::common::time::{raw_ticks, timestamp_type, type_ticks_per_second};

/// The aggregates whose state is every row they count: `GROUP BY` them in one phase
/// ([`crate::common::single_phase`]), as partial aggregation cannot make their state smaller.
pub const COLLECTING: &[&str] = &["window_funnel", "window_funnel_times"];

/// ClickHouse's limit on funnel and retention conditions (one bit each in a `u32`).
pub const MAX_CONDITIONS: usize = 32;

const FUNNEL_SIGNATURE: &str = "window_funnel(window_seconds, [mode,] ts, cond1, ..., condN): window_seconds a \
constant number >= 0, mode an optional constant string of comma-separated options (strict_deduplication, \
strict_order, strict_increase, strict_once, allow_reentry), ts a TIMESTAMP, and 1 to 32 BOOLEAN conditions";
const TIMES_SIGNATURE: &str = "window_funnel_times(window_seconds, [mode,] ts, cond1, ..., condN): the arguments \
of window_funnel";
const RETENTION_SIGNATURE: &str = "retention(cond1, ..., condN) with 1 to 32 BOOLEAN conditions";

/// A condition argument: BOOLEAN; integers are accepted as ClickHouse's UInt8 flags (non-zero
/// is true), a bare NULL as a NULL condition.
fn condition_type(function: &str, signatures: &str, index: usize, t: &DataType) -> Result<DataType> {
    match t {
        DataType::Boolean | DataType::Null => Ok(DataType::Boolean),
        t if t.is_integer() => Ok(DataType::Boolean),
        DataType::Dictionary(_, value) => condition_type(function, signatures, index, value),
        other => plan_err!("{function}: cond{index} must be a BOOLEAN condition, not {other}. Accepted: {signatures}"),
    }
}

fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, value) => is_string(value),
        _ => false,
    }
}

/// ClickHouse's `windowFunnel` options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FunnelMode {
    /// A repeat of a step already reached ends the search.
    pub strict_deduplication: bool,
    /// An event matching no condition, or a step out of order, ends the search.
    pub strict_order: bool,
    /// Each step must come strictly later than the previous one.
    pub strict_increase: bool,
    /// One row counts for at most one step of a chain.
    pub strict_once: bool,
    /// With `strict_order`, a step out of order is skipped instead of ending the search.
    pub allow_reentry: bool,
}

impl FunnelMode {
    /// Parses a comma-separated option list (case-sensitive, as in ClickHouse; blanks and empty
    /// items are ignored, so `''` is the default mode).
    pub fn parse(function: &str, text: &str) -> Result<Self> {
        let mut mode = Self::default();
        for option in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            match option {
                "strict_deduplication" => mode.strict_deduplication = true,
                "strict_order" => mode.strict_order = true,
                "strict_increase" => mode.strict_increase = true,
                "strict_once" => mode.strict_once = true,
                "allow_reentry" => mode.allow_reentry = true,
                "strict" => return plan_err!("{function}: mode 'strict' is now called 'strict_deduplication'"),
                other => {
                    return plan_err!(
                        "{function}: unknown mode option '{other}'; the options are strict_deduplication, \
                         strict_order, strict_increase, strict_once and allow_reentry, comma separated"
                    )
                }
            }
        }
        if mode.allow_reentry && !mode.strict_order {
            return plan_err!(
                "{function}: the allow_reentry option requires strict_order (mode 'strict_order, allow_reentry')"
            );
        }
        Ok(mode)
    }
}

/// `window_funnel` and `window_funnel_times` as a DataFusion aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowFunnelFunction {
    times: bool,
    signature: Signature,
}

impl WindowFunnelFunction {
    pub fn new(times: bool) -> Self {
        Self { times, signature: Signature::user_defined(Volatility::Immutable) }
    }

    fn function(&self) -> &'static str {
        if self.times {
            "window_funnel_times"
        } else {
            "window_funnel"
        }
    }

    fn signatures(&self) -> &'static str {
        if self.times {
            TIMES_SIGNATURE
        } else {
            FUNNEL_SIGNATURE
        }
    }

    /// The funnel as this call configures it, from its constant arguments.
    fn config(&self, args: &AccumulatorArgs) -> Result<FunnelConfig> {
        let name = self.function();
        let Some(window) = args::constant_f64(args, 0, name, "window_seconds")? else {
            return plan_err!("{name}: missing window_seconds. Accepted: {}", self.signatures());
        };
        if window < 0.0 {
            return plan_err!("{name}: window_seconds must be >= 0, not {window}");
        }
        let has_mode = args.expr_fields.get(1).is_some_and(|f| is_string(f.data_type()));
        let mode = if has_mode {
            let any: &dyn std::any::Any = args.exprs[1].as_ref();
            match any.downcast_ref::<Literal>().map(|l| l.value()) {
                Some(ScalarValue::Utf8(Some(s)) | ScalarValue::LargeUtf8(Some(s)) | ScalarValue::Utf8View(Some(s))) => {
                    FunnelMode::parse(name, s)?
                }
                _ => return plan_err!("{name}: mode must be a constant string, not {}", args.exprs[1]),
            }
        } else {
            FunnelMode::default()
        };
        let ts_index = 1 + has_mode as usize;
        let per_second = type_ticks_per_second(args.expr_fields[ts_index].data_type(), name)?;
        let window_ticks = (window * per_second as f64).floor();
        let window_ticks = if window_ticks >= i64::MAX as f64 { i64::MAX } else { window_ticks as i64 };
        Ok(FunnelConfig {
            name,
            times: self.times,
            mode,
            window: window_ticks,
            per_second,
            ts_index,
            conditions: args.exprs.len() - ts_index - 1,
        })
    }

    fn states(&self, args: &AccumulatorArgs) -> Result<FunnelStates> {
        Ok(FunnelStates::new(self.config(args)?))
    }
}

impl AggregateUDFImpl for WindowFunnelFunction {
    fn name(&self) -> &str {
        self.function()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        let (name, sigs) = (self.function(), self.signatures());
        let has_mode = types.get(1).is_some_and(is_string);
        let first_condition = 2 + has_mode as usize;
        args::arity(name, sigs, types, first_condition + 1, first_condition + MAX_CONDITIONS)?;
        let mut coerced = vec![args::float(name, sigs, "window_seconds", &types[0])?];
        if has_mode {
            coerced.push(DataType::Utf8);
        }
        coerced.push(timestamp_type(name, sigs, "ts", &types[first_condition - 1])?);
        for (i, t) in types[first_condition..].iter().enumerate() {
            coerced.push(condition_type(name, sigs, i + 1, t)?);
        }
        Ok(coerced)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.times { times_type() } else { DataType::UInt8 })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(Single::new(self.states(&args)?)))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Grouped(self.states(&args)?)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![list_field(args.name, "ts", DataType::Int64), list_field(args.name, "conditions", DataType::Int32)])
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(if self.times { &TIMES_DOC } else { &FUNNEL_DOC })
    }
}

fn times_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

/// One call's funnel: its mode, window and argument layout.
#[derive(Debug)]
struct FunnelConfig {
    name: &'static str,
    times: bool,
    mode: FunnelMode,
    /// The window in ticks of the timestamp's unit (fractions of a tick rounded down: a gap
    /// is a whole number of ticks, so `gap <= window` is unchanged).
    window: i64,
    per_second: i64,
    ts_index: usize,
    conditions: usize,
}

/// The counted rows of one input batch (or merged state batch), in arrival order: a row's group,
/// timestamp ticks and the bitmask of the conditions it met. Rows meeting no condition are kept
/// only under `strict_order`, where they interrupt a chain.
#[derive(Debug)]
struct Chunk {
    /// The smallest group in `groups`: chunks are gathered in this order.
    first_group: u32,
    /// Where `groups` decreases: the starts of its ascending runs after the first. A batch of a
    /// file sorted by the key is one run, or a few where a repartition joined batches.
    breaks: Vec<u32>,
    groups: Vec<u32>,
    ts: Vec<i64>,
    masks: Vec<u32>,
}

impl Chunk {
    fn with_capacity(rows: usize) -> Self {
        Self {
            first_group: u32::MAX,
            breaks: Vec::new(),
            groups: Vec::with_capacity(rows),
            ts: Vec::with_capacity(rows),
            masks: Vec::with_capacity(rows),
        }
    }

    #[inline]
    fn push(&mut self, group: u32, ts: i64, mask: u32) {
        self.first_group = self.first_group.min(group);
        if self.groups.last().is_some_and(|&last| last > group) {
            self.breaks.push(self.groups.len() as u32);
        }
        self.groups.push(group);
        self.ts.push(ts);
        self.masks.push(mask);
    }

    fn len(&self) -> usize {
        self.groups.len()
    }

    fn size(&self) -> usize {
        self.groups.capacity() * 4 + self.ts.capacity() * 8 + self.masks.capacity() * 4 + self.breaks.capacity() * 4
    }

    /// The ascending runs of entries, as ranges.
    fn runs(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        let starts = std::iter::once(0).chain(self.breaks.iter().map(|&b| b as usize));
        let ends = self.breaks.iter().map(|&b| b as usize).chain(std::iter::once(self.len()));
        starts.zip(ends).map(|(start, end)| start..end)
    }
}

/// The events of all groups, kept as they arrived, one [`Chunk`] per batch, and gathered per
/// group (a counting sort) only when groups are evaluated or emitted. Chunks instead of a list
/// per group: `GROUP BY user_id` has millions of groups of a few events each, where per-group
/// allocation and growth cost more than the search itself; chunks instead of one growing buffer:
/// a buffer of tens of millions of events copies itself each time it doubles.
#[derive(Debug)]
struct FunnelStates {
    config: Arc<FunnelConfig>,
    /// Per group, whether any row counted (non-NULL timestamp and conditions, selected by FILTER).
    seen: Vec<bool>,
    chunks: Vec<Chunk>,
    /// Events and bytes the chunks hold, kept up to date rather than summed on every batch.
    held_events: usize,
    held_bytes: usize,
}

/// Groups gathered from the chunks: group `g`'s events are at `offsets[g]..offsets[g + 1]` of
/// `ts` and `masks`, in no particular order (the search sorts them).
struct Gathered {
    offsets: Vec<u32>,
    ts: Vec<i64>,
    masks: Vec<u32>,
}

impl Gathered {
    fn group(&self, g: usize) -> (&[i64], &[u32]) {
        let range = self.offsets[g] as usize..self.offsets[g + 1] as usize;
        (&self.ts[range.clone()], &self.masks[range])
    }
}

impl FunnelStates {
    fn new(config: FunnelConfig) -> Self {
        Self::with_config(Arc::new(config))
    }

    fn with_config(config: Arc<FunnelConfig>) -> Self {
        Self { config, seen: Vec::new(), chunks: Vec::new(), held_events: 0, held_bytes: 0 }
    }

    /// Keeps a batch's events.
    fn keep(&mut self, chunk: Chunk) {
        if chunk.len() > 0 {
            self.held_events += chunk.len();
            self.held_bytes += chunk.size();
            self.chunks.push(chunk);
        }
    }

    /// Group numbers and the events of one partition are counted in `u32`.
    fn check_capacity(&self, adding: usize) -> Result<()> {
        check_group_count(self.config.name, self.seen.len())?;
        if self.held_events + adding > u32::MAX as usize {
            return datafusion::common::exec_err!(
                "{}: more than {} events in one partition; raise datafusion.execution.target_partitions",
                self.config.name,
                u32::MAX
            );
        }
        Ok(())
    }

    /// Calls `visit` with each of the first `groups` groups in order, and its events.
    ///
    /// When the chunks' groups ascend in long runs (batches of files sorted by the key), the
    /// events are gathered a block of groups at a time into buffers that stay in cache
    /// ([`visit_blocks`]); otherwise all of them at once ([`Self::gather`]).
    fn for_each_group(&self, groups: usize, mut visit: impl FnMut(usize, &[i64], &[u32])) {
        if self.by_blocks() {
            visit_blocks(&self.chunks, groups, visit);
        } else {
            let gathered = self.gather(groups);
            for g in 0..groups {
                let (ts, masks) = gathered.group(g);
                visit(g, ts, masks);
            }
        }
    }

    /// Whether the chunks' groups ascend in runs long enough to gather by blocks.
    fn by_blocks(&self) -> bool {
        let runs: usize = self.chunks.iter().map(|c| c.breaks.len() + 1).sum();
        runs * MIN_RUN <= self.held_events
    }

    /// The events of the first `groups` groups, gathered per group.
    ///
    /// Chunks are visited by their smallest group. A batch of a file sorted by the key covers a
    /// narrow range of groups, so in that order the chunks of all the files sweep the groups
    /// once and the offsets and events they touch stay in cache; in arrival order every chunk
    /// starts over somewhere else in tables far larger than the cache.
    fn gather(&self, groups: usize) -> Gathered {
        let mut order: Vec<&Chunk> = self.chunks.iter().filter(|c| (c.first_group as usize) < groups).collect();
        order.sort_unstable_by_key(|c| c.first_group);
        let segments: Vec<_> = order.into_iter().map(|chunk| (chunk, 0..chunk.len())).collect();
        let (mut offsets, mut ts, mut masks) = (Vec::new(), Vec::new(), Vec::new());
        place_events(&segments, 0, groups, &mut offsets, &mut ts, &mut masks);
        Gathered { offsets, ts, masks }
    }
}

/// Groups gathered per block, when a block spans this many group numbers: a block's events
/// (about 10 a group in event data, 12 bytes each) stay within a few MiB of cache.
const GATHER_BLOCK: usize = 1 << 15;

/// Ascending runs of at least this many events on average are gathered block by block.
const MIN_RUN: usize = 64;

/// [`FunnelStates::for_each_group`] over chunks whose groups ascend in runs: a block of groups
/// at a time, each run's events of the block being its next entries.
///
/// Gathering every group at once writes each event to a buffer as large as the state, fresh
/// memory the kernel must zero page by page, and reads it back after it has left the cache; a
/// block's buffers are reused and stay in cache from placing to the search.
fn visit_blocks(chunks: &[Chunk], groups: usize, mut visit: impl FnMut(usize, &[i64], &[u32])) {
    // Runs by their first group: the chunk, the run's next entry and its end.
    let mut waiting: Vec<(u32, &Chunk, usize, usize)> = chunks
        .iter()
        .flat_map(|c| c.runs().map(move |run| (c.groups[run.start], c, run.start, run.end)))
        .filter(|&(first, ..)| (first as usize) < groups)
        .collect();
    waiting.sort_unstable_by_key(|&(first, ..)| first);
    let mut waiting = waiting.into_iter().peekable();
    // Runs begun and not used up: the chunk, the run's next entry and its end.
    let mut active: Vec<(&Chunk, usize, usize)> = Vec::new();
    let mut segments = Vec::new();
    let (mut offsets, mut ts, mut masks) = (Vec::new(), Vec::new(), Vec::new());
    for lo in (0..groups).step_by(GATHER_BLOCK) {
        let hi = (lo + GATHER_BLOCK).min(groups);
        while let Some((_, chunk, start, end)) = waiting.next_if(|&(first, ..)| (first as usize) < hi) {
            active.push((chunk, start, end));
        }
        // A run's events of the block are its next ones, up to its first group at or past `hi`.
        segments.clear();
        for (chunk, next, run_end) in &mut active {
            let end = *next + chunk.groups[*next..*run_end].partition_point(|&g| (g as usize) < hi);
            segments.push((*chunk, *next..end));
            *next = end;
        }
        place_events(&segments, lo, hi, &mut offsets, &mut ts, &mut masks);
        active.retain(|(_, next, run_end)| next < run_end);
        for g in lo..hi {
            let range = offsets[g - lo] as usize..offsets[g - lo + 1] as usize;
            visit(g, &ts[range.clone()], &masks[range]);
        }
    }
}

/// A counting sort by group of the events of `segments` (ranges of chunks' entries, none of a
/// group below `lo`) whose group is below `hi`, into `ts` and `masks`: group `g`'s events end
/// up at `offsets[g - lo]..offsets[g - lo + 1]`. The segments are read in the order given
/// ([`FunnelStates::gather`] says why that order matters); the buffers are reused.
fn place_events(
    segments: &[(&Chunk, std::ops::Range<usize>)],
    lo: usize,
    hi: usize,
    offsets: &mut Vec<u32>,
    ts: &mut Vec<i64>,
    masks: &mut Vec<u32>,
) {
    // offsets[g - lo + 2] counts group g's events; summed up, offsets[g - lo + 1] is its first
    // place, advanced past each event placed, ending as its end (the next group's start).
    offsets.clear();
    offsets.resize(hi - lo + 2, 0);
    for (chunk, range) in segments {
        for &g in &chunk.groups[range.clone()] {
            if (g as usize) < hi {
                offsets[g as usize - lo + 2] += 1;
            }
        }
    }
    for i in 2..offsets.len() {
        offsets[i] += offsets[i - 1];
    }
    let total = offsets[hi - lo + 1] as usize;
    ts.resize(total, 0);
    masks.resize(total, 0);
    for (chunk, range) in segments {
        for i in range.clone() {
            let g = chunk.groups[i] as usize;
            if g < hi {
                let place = &mut offsets[g - lo + 1];
                ts[*place as usize] = chunk.ts[i];
                masks[*place as usize] = chunk.masks[i];
                *place += 1;
            }
        }
    }
    offsets.truncate(hi - lo + 1);
}

impl GroupStates for FunnelStates {
    fn empty(&self) -> Result<Self> {
        Ok(Self::with_config(Arc::clone(&self.config)))
    }

    fn resize(&mut self, groups: usize) {
        self.seen.resize(groups, false);
    }

    fn update(&mut self, values: &[ArrayRef], group_indices: &[usize], filter: Option<&BooleanArray>) -> Result<()> {
        self.check_capacity(group_indices.len())?;
        let keep_empty = self.config.mode.strict_order;
        let batch = EventBatch::of(&self.config, values, filter)?;
        let kept = if keep_empty { batch.masks.len() } else { batch.masks.iter().filter(|&&m| m != 0).count() };
        let mut chunk = Chunk::with_capacity(kept);
        for (row, (&t, &mask)) in batch.ts.values().iter().zip(&batch.masks).enumerate() {
            if batch.counts(row) {
                let g = group_indices[row];
                self.seen[g] = true;
                if mask != 0 || keep_empty {
                    chunk.push(g as u32, t, mask);
                }
            }
        }
        self.keep(chunk);
        Ok(())
    }

    /// One list per row, built directly: this is the path of `GROUP BY user_id` over many users.
    fn convert_to_state(&self, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Vec<ArrayRef>> {
        let keep_empty = self.config.mode.strict_order;
        let batch = EventBatch::of(&self.config, values, filter)?;
        let rows = batch.masks.len();
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0i32);
        let (mut ts, mut masks) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
        let mut valid = Vec::with_capacity(rows);
        for (row, (&t, &mask)) in batch.ts.values().iter().zip(&batch.masks).enumerate() {
            let counts = batch.counts(row);
            valid.push(counts);
            if counts && (mask != 0 || keep_empty) {
                ts.push(t);
                masks.push(mask as i32);
            }
            offsets.push(ts.len() as i32);
        }
        Ok(event_lists(offsets, &valid, ts, masks))
    }

    fn merge(&mut self, states: &[ArrayRef], group_indices: &[usize]) -> Result<()> {
        let ts_lists = list_column(states, 0)?;
        let mask_lists = list_column(states, 1)?;
        let ts = ts_lists.values().as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>();
        let masks = mask_lists.values().as_primitive_opt::<datafusion::arrow::datatypes::Int32Type>();
        let (Some(ts), Some(masks)) = (ts, masks) else {
            return internal_err!("{}: unexpected state columns", self.config.name);
        };
        let (ts, masks) = (ts.values(), masks.values());
        let (ts_offsets, mask_offsets) = (ts_lists.value_offsets(), mask_lists.value_offsets());
        let events = (ts_offsets[group_indices.len()] - ts_offsets[0]) as usize;
        self.check_capacity(events)?;
        let mut chunk = Chunk::with_capacity(events);
        for (row, &g) in group_indices.iter().enumerate() {
            if ts_lists.is_null(row) {
                continue;
            }
            self.seen[g] = true;
            let (start, end) = (ts_offsets[row] as usize, ts_offsets[row + 1] as usize);
            let mask_start = mask_offsets[row] as usize;
            for (&t, &m) in ts[start..end].iter().zip(&masks[mask_start..mask_start + end - start]) {
                chunk.push(g as u32, t, m as u32);
            }
        }
        self.keep(chunk);
        Ok(())
    }

    fn evaluate(&self, groups: usize) -> Result<ArrayRef> {
        let seen = &self.seen[..groups];
        let mut search = Search::new(&self.config);
        let nulls = seen.iter().any(|v| !v).then(|| NullBuffer::from(seen.to_vec()));
        if self.config.times {
            let mut offsets = vec![0i32];
            let mut values = Vec::new();
            let per_second = self.config.per_second as f64;
            self.for_each_group(groups, |g, ts, masks| {
                if seen[g] {
                    let (level, chain) = search.run(ts, masks);
                    let start = chain.first().copied().unwrap_or_default();
                    values.extend(
                        chain[..level as usize].iter().map(|&t| (t as i128 - start as i128) as f64 / per_second),
                    );
                }
                offsets.push(values.len() as i32);
            });
            let field = Arc::new(Field::new_list_field(DataType::Float64, true));
            let values = Arc::new(Float64Array::from(values));
            Ok(Arc::new(ListArray::new(field, OffsetBuffer::new(offsets.into()), values, nulls)))
        } else {
            let mut levels = Vec::with_capacity(groups);
            self.for_each_group(groups, |g, ts, masks| levels.push(if seen[g] { search.run(ts, masks).0 } else { 0 }));
            Ok(Arc::new(UInt8Array::new(levels.into(), nulls)))
        }
    }

    fn state(&self, groups: usize) -> Result<Vec<ArrayRef>> {
        let gathered = self.gather(groups);
        if gathered.ts.len() > i32::MAX as usize {
            return datafusion::common::exec_err!(
                "{}: more than {} events in one partial state; raise datafusion.execution.target_partitions",
                self.config.name,
                i32::MAX
            );
        }
        let offsets = gathered.offsets.iter().map(|&o| o as i32).collect();
        let masks = gathered.masks.iter().map(|&m| m as i32).collect();
        Ok(event_lists(offsets, &self.seen[..groups], gathered.ts, masks))
    }

    fn drop_first(&mut self, groups: usize) {
        if groups >= self.seen.len() {
            self.seen.clear();
            self.chunks.clear();
            (self.held_events, self.held_bytes) = (0, 0);
            return;
        }
        self.seen.drain(..groups);
        let dropped = groups as u32;
        for chunk in &mut self.chunks {
            if chunk.first_group >= dropped {
                chunk.first_group -= dropped;
                chunk.groups.iter_mut().for_each(|g| *g -= dropped);
                continue;
            }
            let mut kept = 0;
            for i in 0..chunk.len() {
                if chunk.groups[i] >= dropped {
                    chunk.groups[kept] = chunk.groups[i] - dropped;
                    chunk.ts[kept] = chunk.ts[i];
                    chunk.masks[kept] = chunk.masks[i];
                    kept += 1;
                }
            }
            chunk.groups.truncate(kept);
            chunk.ts.truncate(kept);
            chunk.masks.truncate(kept);
            chunk.first_group = chunk.groups.iter().copied().min().unwrap_or(u32::MAX);
            chunk.breaks = (1..kept).filter(|&i| chunk.groups[i - 1] > chunk.groups[i]).map(|i| i as u32).collect();
        }
        self.chunks.retain(|c| c.len() > 0);
        self.held_events = self.chunks.iter().map(Chunk::len).sum();
        self.held_bytes = self.chunks.iter().map(Chunk::size).sum();
    }

    fn groups(&self) -> usize {
        self.seen.len()
    }

    fn size(&self) -> usize {
        self.seen.capacity() + self.chunks.capacity() * std::mem::size_of::<Chunk>() + self.held_bytes
    }
}

/// The state columns, `LIST<INT64>` timestamps and `LIST<INT32>` condition masks, one list per
/// group (or row) sharing `offsets`; `valid[g]` says whether group `g` had a counting row.
fn event_lists(offsets: Vec<i32>, valid: &[bool], ts: Vec<i64>, masks: Vec<i32>) -> Vec<ArrayRef> {
    let offsets = OffsetBuffer::new(offsets.into());
    let nulls = valid.iter().any(|v| !v).then(|| NullBuffer::from(valid.to_vec()));
    let list = |values: ArrayRef| -> ArrayRef {
        let field = Arc::new(Field::new_list_field(values.data_type().clone(), true));
        Arc::new(ListArray::new(field, offsets.clone(), values, nulls.clone()))
    };
    vec![list(Arc::new(Int64Array::from(ts))), list(Arc::new(Int32Array::from(masks)))]
}

/// Group numbers are kept as `u32` in the flat buffer.
fn check_group_count(function: &str, groups: usize) -> Result<()> {
    if groups > u32::MAX as usize + 1 {
        return datafusion::common::exec_err!(
            "{function}: more than {} groups in one aggregation; split the query (for example by a date range)",
            u32::MAX as u64 + 1
        );
    }
    Ok(())
}

/// A batch of funnel input: raw timestamps, condition bitmasks and the rows that count.
struct EventBatch {
    ts: Int64Array,
    masks: Vec<u32>,
    counting: Option<NullBuffer>,
}

impl EventBatch {
    fn of(config: &FunnelConfig, values: &[ArrayRef], filter: Option<&BooleanArray>) -> Result<Self> {
        let (ts, _) = raw_ticks(&values[config.ts_index], config.name)?;
        let conditions: Vec<&BooleanArray> = values[config.ts_index + 1..].iter().map(|c| c.as_boolean()).collect();
        let masks = condition_masks(&conditions, ts.len());
        let mut inputs = vec![ts.nulls()];
        inputs.extend(conditions.iter().map(|c| c.nulls()));
        let counting = counting_rows(&inputs, filter);
        Ok(Self { ts, masks, counting })
    }

    fn counts(&self, row: usize) -> bool {
        self.counting.as_ref().is_none_or(|c| c.is_valid(row))
    }
}

/// Per row, the bitmask of the conditions that are true (bit k for condition k + 1).
fn condition_masks(conditions: &[&BooleanArray], rows: usize) -> Vec<u32> {
    let mut masks = vec![0u32; rows];
    for (k, condition) in conditions.iter().enumerate() {
        let bit = 1u32 << k;
        for row in condition.values().set_indices() {
            masks[row] |= bit;
        }
    }
    masks
}

/// One event of the search: timestamp, step (1..=N, 0 for a row matching no condition), the
/// tie order of its row among rows with the same timestamp and step ([`tie_order`]), and the row
/// it came from (ClickHouse's `unique_id`, so that `strict_once` uses a row once per chain).
type Event = (i64, u8, u32, u32);

/// Among events with the same timestamp and step, rows meeting earlier conditions come first
/// (compared as the tuple (cond1, cond2, ...), true before false).
///
/// ClickHouse takes such rows in the order they reach the aggregate, which depends on how the
/// data was split between threads; only `strict_once` with `strict_deduplication` can tell the
/// difference. A fixed order keeps cxlake's results independent of partitioning, and equals
/// ClickHouse's when ClickHouse reads the rows in this order (as the conformance test does).
fn tie_order(mask: u32) -> u32 {
    !mask.reverse_bits()
}

/// A chain under construction in `strict_once` mode.
#[derive(Clone, Copy)]
struct Sequence {
    first: i64,
    last: i64,
    rows: [u32; MAX_CONDITIONS],
    chain: [i64; MAX_CONDITIONS],
}

/// The funnel search over one group's events, reusing its buffers across groups.
struct Search<'a> {
    config: &'a FunnelConfig,
    events: Vec<Event>,
    /// The events of the greedy search as one integer each ([`Search::packed`]).
    packed: Vec<u64>,
}

/// Bits of a packed event ([`Search::packed`]) that hold its step.
const STEP_BITS: u32 = 6;

impl<'a> Search<'a> {
    fn new(config: &'a FunnelConfig) -> Self {
        Self { config, events: Vec::new(), packed: Vec::new() }
    }

    /// The greedy search's events packed as `(ts - first ts) << STEP_BITS | step`, sorted, when
    /// the group's timestamps span less than 2^57 ticks (4,500 years of microseconds), else
    /// `None`. Rows with the same timestamp and step are interchangeable to the greedy search
    /// (only `strict_once` tells rows apart), so sorting (timestamp, step) as one integer gives
    /// its order at a fraction of the cost of sorting the tuples with their tie order and row.
    fn packed(&mut self, ts: &[i64], masks: &[u32]) -> Option<i64> {
        let (&first, &last) = (ts.iter().min()?, ts.iter().max()?);
        if last as i128 - first as i128 >= 1i128 << (64 - STEP_BITS) {
            return None;
        }
        self.packed.clear();
        for (&t, &mask) in ts.iter().zip(masks) {
            let offset = (t.wrapping_sub(first) as u64) << STEP_BITS;
            if mask == 0 {
                self.packed.push(offset);
            }
            let mut bits = mask;
            while bits != 0 {
                self.packed.push(offset | (bits.trailing_zeros() as u64 + 1));
                bits &= bits - 1;
            }
        }
        self.packed.sort_unstable();
        Some(first)
    }

    /// The deepest level reached and the timestamps of the chain that reached it, over one
    /// group's rows (timestamps and condition bitmasks, in any order).
    fn run(&mut self, ts: &[i64], masks: &[u32]) -> (u8, Vec<i64>) {
        let n = self.config.conditions;
        let mode = self.config.mode;
        if ts.is_empty() {
            return (0, Vec::new());
        }
        // ClickHouse answers 1 for a single condition without searching (rows hold only matches
        // outside strict_order).
        if !mode.strict_order && n == 1 {
            let first = ts.iter().copied().min().unwrap_or_default();
            return (1, vec![first]);
        }
        if !mode.strict_once {
            if let Some(first) = self.packed(ts, masks) {
                let step_mask = (1u64 << STEP_BITS) - 1;
                return self.greedy(
                    self.packed.iter().map(|&e| (first.wrapping_add((e >> STEP_BITS) as i64), (e & step_mask) as u8)),
                );
            }
        }
        // One event per (row, condition met), sorted by timestamp, then step (as ClickHouse's
        // sort of (timestamp, step) pairs), then a fixed order of rows.
        self.events.clear();
        for (row, (&ts, &mask)) in ts.iter().zip(masks).enumerate() {
            let tie = tie_order(mask);
            if mask == 0 {
                self.events.push((ts, 0, tie, row as u32));
            }
            let mut bits = mask;
            while bits != 0 {
                let k = bits.trailing_zeros();
                self.events.push((ts, k as u8 + 1, tie, row as u32));
                bits &= bits - 1;
            }
        }
        self.events.sort_unstable();
        if mode.strict_once {
            self.strict_once()
        } else {
            self.greedy(self.events.iter().map(|&(ts, step, _, _)| (ts, step)))
        }
    }

    fn in_window(&self, first: i64, ts: i64) -> bool {
        ts as i128 <= first as i128 + self.config.window as i128
    }

    /// ClickHouse's `getEventLevelNonStrictOnce`: one chain per level, each new step-1 event
    /// restarting level 1, each step extending the chain of the level below when in the window.
    fn greedy(&self, events: impl Iterator<Item = (i64, u8)>) -> (u8, Vec<i64>) {
        let n = self.config.conditions;
        let mode = self.config.mode;
        let mut reached = [false; MAX_CONDITIONS];
        let mut first = [0i64; MAX_CONDITIONS];
        let mut last = [0i64; MAX_CONDITIONS];
        let mut chains = vec![[0i64; MAX_CONDITIONS]; if self.config.times { n } else { 0 }];
        let deepest = |reached: &[bool; MAX_CONDITIONS]| reached[..n].iter().rposition(|r| *r).map_or(0, |i| i + 1);
        let result = |level: usize, chains: &[[i64; MAX_CONDITIONS]]| {
            let chain = if level > 0 && !chains.is_empty() { chains[level - 1][..level].to_vec() } else { Vec::new() };
            (level as u8, chain)
        };
        let mut started = false;
        for (ts, step) in events {
            if step == 0 {
                // Only under strict_order: a row matching no condition ends the search.
                if started {
                    break;
                }
                continue;
            }
            let idx = step as usize - 1;
            if idx == 0 {
                reached[0] = true;
                (first[0], last[0]) = (ts, ts);
                if let Some(c) = chains.first_mut() {
                    c[0] = ts;
                }
                started = true;
            } else if mode.strict_deduplication && reached[idx] {
                return result(deepest(&reached), &chains);
            } else if mode.strict_order && started && !reached[idx - 1] {
                if mode.allow_reentry {
                    continue;
                }
                let level = reached[..n].iter().position(|r| !r).unwrap_or(n);
                return result(level, &chains);
            } else if reached[idx - 1] {
                let start = first[idx - 1];
                let mut matched = self.in_window(start, ts);
                if mode.strict_increase {
                    matched &= last[idx - 1] < ts;
                }
                if matched {
                    reached[idx] = true;
                    (first[idx], last[idx]) = (start, ts);
                    if !chains.is_empty() {
                        let below = chains[idx - 1];
                        chains[idx][..idx].copy_from_slice(&below[..idx]);
                        chains[idx][idx] = ts;
                    }
                    if idx + 1 == n {
                        return result(n, &chains);
                    }
                }
            }
        }
        result(deepest(&reached), &chains)
    }

    /// ClickHouse's `getEventLevelStrictOnce`: every chain is kept (one row may meet several
    /// conditions, and which chain will go further is not known yet), and a chain never uses
    /// the same row twice.
    fn strict_once(&self) -> (u8, Vec<i64>) {
        let n = self.config.conditions;
        let mode = self.config.mode;
        let mut levels: Vec<Vec<Sequence>> = vec![Vec::new(); n];
        let deepest = |levels: &[Vec<Sequence>]| levels.iter().rposition(|l| !l.is_empty()).map_or(0, |i| i + 1);
        let result = |level: usize, levels: &[Vec<Sequence>]| {
            let chain = match level {
                0 => Vec::new(),
                _ => levels[level - 1].last().map_or_else(Vec::new, |s| s.chain[..level].to_vec()),
            };
            (level as u8, chain)
        };
        let mut started = false;
        for &(ts, step, _, row) in &self.events {
            if step == 0 {
                if started {
                    break;
                }
                continue;
            }
            let idx = step as usize - 1;
            if idx == 0 {
                let mut sequence =
                    Sequence { first: ts, last: ts, rows: [0; MAX_CONDITIONS], chain: [0; MAX_CONDITIONS] };
                sequence.rows[0] = row;
                sequence.chain[0] = ts;
                levels[0].push(sequence);
                started = true;
            } else if mode.strict_deduplication && !levels[idx].is_empty() {
                return result(deepest(&levels), &levels);
            } else if mode.strict_order && started && levels[idx - 1].is_empty() {
                if mode.allow_reentry {
                    continue;
                }
                let level = levels.iter().position(|l| l.is_empty()).unwrap_or(n);
                return result(level, &levels);
            } else if !levels[idx - 1].is_empty() {
                let (below, above) = levels.split_at_mut(idx);
                let previous = &mut below[idx - 1];
                // ClickHouse drops the chains whose window has passed, keeping at least one:
                // the last one when every chain is out of the window.
                if previous.iter().any(|s| self.in_window(s.first, ts)) {
                    previous.retain(|s| self.in_window(s.first, ts));
                } else {
                    let keep = previous.len() - 1;
                    previous.drain(..keep);
                    continue;
                }
                for s in previous.iter() {
                    if s.rows[..idx].contains(&row) || (mode.strict_increase && s.last >= ts) {
                        continue;
                    }
                    let mut next = *s;
                    next.last = ts;
                    next.rows[idx] = row;
                    next.chain[idx] = ts;
                    above[0].push(next);
                    if idx + 1 == n {
                        return result(n, &levels);
                    }
                }
            }
        }
        result(deepest(&levels), &levels)
    }
}

/// `retention` as a DataFusion aggregate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RetentionFunction {
    signature: Signature,
}

impl Default for RetentionFunction {
    fn default() -> Self {
        Self { signature: Signature::user_defined(Volatility::Immutable) }
    }
}

impl AggregateUDFImpl for RetentionFunction {
    fn name(&self) -> &str {
        "retention"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, types: &[DataType]) -> Result<Vec<DataType>> {
        args::arity("retention", RETENTION_SIGNATURE, types, 1, MAX_CONDITIONS)?;
        types.iter().enumerate().map(|(i, t)| condition_type("retention", RETENTION_SIGNATURE, i + 1, t)).collect()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(DataType::UInt8, true))))
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let n = args.exprs.len();
        Ok(if fits_in_byte(n) {
            Box::new(Single::new(RetentionStates::<u8>::new(n)))
        } else {
            Box::new(Single::new(RetentionStates::<u64>::new(n)))
        })
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        let n = args.exprs.len();
        Ok(if fits_in_byte(n) {
            Box::new(Grouped(RetentionStates::<u8>::new(n)))
        } else {
            Box::new(Grouped(RetentionStates::<u64>::new(n)))
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(format!("{}[conditions]", args.name), DataType::Int64, true))])
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&RETENTION_DOC)
    }
}

/// Per group, the bitmask of the conditions that held on some counting row, with the word's
/// `COUNTED` bit set once a row counted (0 while none did): one word that every row ORs into
/// without a branch.
///
/// The word is a byte when the conditions fit in 7 bits, as they almost always do: a grouping
/// by user sweeps the states of millions of users once per file of a day, and at 8 bytes a
/// user that sweep is bound by memory bandwidth, at one byte it stays in cache.
#[derive(Debug)]
struct RetentionStates<W: RetentionWord> {
    conditions: usize,
    groups: Vec<W>,
}

/// A retention state word: condition bits from bit 0 and a `COUNTED` bit above them.
trait RetentionWord: Copy + Default + Send + Sync + std::fmt::Debug + 'static {
    /// Set once a row of the group counted.
    const COUNTED: Self;
    /// A row's condition bitmask (it fits below `COUNTED`) with `COUNTED` set.
    fn counted(mask: u32) -> Self;
    fn or(self, other: Self) -> Self;
    /// The condition bitmask, when a row counted.
    fn conditions(self) -> Option<u32>;
}

/// A [`RetentionWord`] of an unsigned integer type with `COUNTED` at the given bit.
macro_rules! retention_word {
    ($word:ty, $counted_bit:expr) => {
        impl RetentionWord for $word {
            const COUNTED: Self = 1 << $counted_bit;
            fn counted(mask: u32) -> Self {
                mask as Self | Self::COUNTED
            }
            fn or(self, other: Self) -> Self {
                self | other
            }
            fn conditions(self) -> Option<u32> {
                (self & Self::COUNTED != 0).then_some((self & !Self::COUNTED) as u32)
            }
        }
    };
}

retention_word!(u8, 7);
retention_word!(u64, 32);

impl<W: RetentionWord> RetentionStates<W> {
    fn new(conditions: usize) -> Self {
        Self { conditions, groups: Vec::new() }
    }

    /// Which of the first `groups` groups had a row counted; `None` when all did.
    fn counted(&self, groups: usize) -> Option<NullBuffer> {
        let states = &self.groups[..groups];
        Some(NullBuffer::new(BooleanBuffer::collect_bool(groups, |g| states[g].conditions().is_some())))
            .filter(|n| n.null_count() > 0)
    }
}

/// Whether `conditions` fit in a byte's state ([`RetentionStates`]).
fn fits_in_byte(conditions: usize) -> bool {
    conditions < 8
}

impl<W: RetentionWord> GroupStates for RetentionStates<W> {
    fn empty(&self) -> Result<Self> {
        Ok(Self::new(self.conditions))
    }

    fn resize(&mut self, groups: usize) {
        self.groups.resize(groups, W::default());
    }

    fn update(&mut self, values: &[ArrayRef], group_indices: &[usize], filter: Option<&BooleanArray>) -> Result<()> {
        let conditions: Vec<&BooleanArray> = values.iter().map(|c| c.as_boolean()).collect();
        let rows = group_indices.len();
        let masks = condition_masks(&conditions, rows);
        let inputs: Vec<_> = conditions.iter().map(|c| c.nulls()).collect();
        match counting_rows(&inputs, filter) {
            None => {
                for (&g, &mask) in group_indices.iter().zip(&masks) {
                    self.groups[g] = self.groups[g].or(W::counted(mask));
                }
            }
            Some(counting) => {
                for row in counting.valid_indices() {
                    let g = group_indices[row];
                    self.groups[g] = self.groups[g].or(W::counted(masks[row]));
                }
            }
        }
        Ok(())
    }

    fn merge(&mut self, states: &[ArrayRef], group_indices: &[usize]) -> Result<()> {
        let Some(masks) = states.first().and_then(|s| s.as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>())
        else {
            return internal_err!("retention: unexpected state columns");
        };
        for (row, &g) in group_indices.iter().enumerate() {
            if masks.is_valid(row) {
                self.groups[g] = self.groups[g].or(W::counted(masks.value(row) as u32));
            }
        }
        Ok(())
    }

    fn evaluate(&self, groups: usize) -> Result<ArrayRef> {
        let n = self.conditions;
        let mut values = Vec::with_capacity(groups * n);
        let mut offsets = Vec::with_capacity(groups + 1);
        offsets.push(0i32);
        for &state in &self.groups[..groups] {
            if let Some(state) = state.conditions() {
                let first = state & 1;
                values.push(first as u8);
                values.extend((1..n).map(|k| (first & (state >> k) & 1) as u8));
            }
            offsets.push(values.len() as i32);
        }
        let nulls = self.counted(groups);
        let field = Arc::new(Field::new_list_field(DataType::UInt8, true));
        Ok(Arc::new(ListArray::new(
            field,
            OffsetBuffer::new(offsets.into()),
            Arc::new(UInt8Array::from(values)),
            nulls,
        )))
    }

    fn state(&self, groups: usize) -> Result<Vec<ArrayRef>> {
        let masks = self.groups[..groups].iter().map(|&s| s.conditions().unwrap_or(0) as i64).collect::<Vec<_>>();
        Ok(vec![Arc::new(Int64Array::new(masks.into(), self.counted(groups)))])
    }

    fn drop_first(&mut self, groups: usize) {
        self.groups.drain(..groups);
    }

    fn groups(&self) -> usize {
        self.groups.len()
    }

    fn size(&self) -> usize {
        self.groups.capacity() * std::mem::size_of::<W>()
    }
}

const SECTION: DocSection = DocSection {
    include: true,
    label: "Funnels and retention",
    description: Some(
        "Conversion funnels and retention, with the semantics of ClickHouse's windowFunnel and retention.",
    ),
};

const FUNNEL_RULES: &str = "Semantics are ClickHouse's windowFunnel, checked against ClickHouse by the test suite. \
Events are taken in timestamp order (within one timestamp, in step order); a step-1 event starts a chain (a later \
step-1 event restarts it), and an event of step k extends the chain that reached step k − 1 when its timestamp is at \
most window_seconds after that chain's step-1 event (the bound is inclusive). One row meeting several conditions \
counts for each of them (for consecutive steps too), unless the mode has strict_once. Rows with the same timestamp \
and step are taken in a fixed order, rows meeting earlier conditions first, so results do not depend on partitioning \
(ClickHouse takes them in arrival order; only strict_once with strict_deduplication can tell). Modes, comma separated: \
strict_deduplication (a repeat of a step already reached ends the search), strict_order (a row meeting no condition, \
or a step whose previous step was not reached, ends the search), strict_increase (each step strictly later than the \
previous one), strict_once (a row counts for one step of a chain), allow_reentry (with strict_order only: out-of-order \
steps are skipped instead of ending the search). A row whose timestamp or any condition is NULL does not count \
(ClickHouse skips such rows too); a group with no counting rows gives NULL (ClickHouse gives 0 on an empty table). \
The window and the mode must be constants.";

static FUNNEL_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        format!("The deepest step of a conversion funnel reached within a time window, as UINT8 from 0 to the number of conditions. {FUNNEL_RULES}"),
        "window_funnel(window_seconds, [mode,] ts, cond1, ..., condN)",
    )
    .with_argument("window_seconds", "The longest time, in seconds, from a chain's step 1 to its last step: a constant number >= 0 (fractions allowed).")
    .with_argument("mode", "Optional constant string of comma-separated options: strict_deduplication, strict_order, strict_increase, strict_once, allow_reentry.")
    .with_argument("ts", "The event time: a timestamp of any unit, with or without a time zone.")
    .with_argument("cond1, ..., condN", "1 to 32 BOOLEAN conditions, one per funnel step (integers are read as flags, non-zero true).")
    .with_sql_example(
        "SELECT user_id, window_funnel(3600, ts, event = 'page_view', event = 'add_to_cart', event = 'purchase') AS level\n\
         FROM clickstream GROUP BY user_id;\n\
         -- page_view 10:00, add_to_cart 10:20, purchase 11:05: 11:05 is more than 3600 s after 10:00, level 2",
    )
    .with_related_udf("window_funnel_times")
    .with_related_udf("retention")
    .build()
});

static TIMES_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        format!("Seconds from step 1 to each funnel step reached, as LIST<DOUBLE>, for the chain that reached window_funnel's deepest step. Element k is the time from step 1 to step k (element 1 is 0), the list is as long as the level reached (empty at level 0), so conversion times per step and drop-off are plain SQL over it. The chain is the one ClickHouse's search ends on: the latest to reach the deepest step. Takes window_funnel's arguments. {FUNNEL_RULES}"),
        "window_funnel_times(window_seconds, [mode,] ts, cond1, ..., condN)",
    )
    .with_argument("window_seconds", "The longest time, in seconds, from a chain's step 1 to its last step: a constant number >= 0.")
    .with_argument("mode", "Optional constant string of comma-separated window_funnel options.")
    .with_argument("ts", "The event time: a timestamp of any unit, with or without a time zone.")
    .with_argument("cond1, ..., condN", "1 to 32 BOOLEAN conditions, one per funnel step.")
    .with_sql_example(
        "SELECT user_id, window_funnel_times(3600, ts, event = 'page_view', event = 'add_to_cart', event = 'purchase') AS t\n\
         FROM clickstream GROUP BY user_id;\n\
         -- page_view 10:00, add_to_cart 10:20, purchase 10:50: [0, 1200, 3000]; t[3] is the time to purchase",
    )
    .with_related_udf("window_funnel")
    .build()
});

static RETENTION_DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION,
        "Retention flags, as ClickHouse's retention computes them: a LIST<UINT8> of N 0/1 values. Element 1 is whether cond1 held on some row, element k whether cond1 and condk each held on some row (not necessarily the same one). Group by user for per-user flags, then average them for cohort retention rates. A row with a NULL condition does not count (ClickHouse skips such rows too); a group with no counting rows gives NULL (ClickHouse gives a list of zeros). One condition is accepted (ClickHouse needs two). Read the flags back by index, `r[1]`, `r[2]`, ...; cxlake evaluates list indexing as one gather over all rows, not a copy per row.",
        "retention(cond1, ..., condN)",
    )
    .with_argument("cond1", "The cohort condition (for example, active on the first day): a BOOLEAN.")
    .with_argument("cond2, ..., condN", "Up to 31 more BOOLEAN conditions (for example, active on day 1, day 7).")
    .with_sql_example(
        "SELECT user_id, retention(day = DATE '2025-06-01', day = DATE '2025-06-02', day = DATE '2025-06-08') AS r\n\
         FROM clickstream GROUP BY user_id;\n\
         -- active on June 1 and 8, not June 2: [1, 0, 1]\n\
         SELECT sum(r[1]) AS cohort, sum(r[2]) AS day_1, sum(r[3]) AS day_7\n\
         FROM (SELECT user_id, retention(day = DATE '2025-06-01', day = DATE '2025-06-02', day = DATE '2025-06-08') AS r\n\
         FROM clickstream GROUP BY user_id);\n\
         -- users in the cohort, and of them those active on June 2 and on June 8",
    )
    .with_related_udf("window_funnel")
    .build()
});

/// The aggregates of this module.
pub fn all() -> Vec<Arc<AggregateUDF>> {
    vec![udaf(Kind::Funnel), udaf(Kind::Times), udaf(Kind::Retention)]
}

#[derive(Clone, Copy)]
enum Kind {
    Funnel,
    Times,
    Retention,
}

fn udaf(kind: Kind) -> Arc<AggregateUDF> {
    static UDAFS: LazyLock<[Arc<AggregateUDF>; 3]> = LazyLock::new(|| {
        [
            Arc::new(AggregateUDF::new_from_impl(WindowFunnelFunction::new(false))),
            Arc::new(AggregateUDF::new_from_impl(WindowFunnelFunction::new(true))),
            Arc::new(AggregateUDF::new_from_impl(RetentionFunction::default())),
        ]
    });
    Arc::clone(&UDAFS[kind as usize])
}

/// Expression builders for this module.
pub mod expr {
    use datafusion::logical_expr::{lit, Expr};

    use super::{udaf, Kind};

    fn funnel_args(window_seconds: f64, mode: Option<&str>, ts: Expr, conditions: Vec<Expr>) -> Vec<Expr> {
        let mut args = vec![lit(window_seconds)];
        args.extend(mode.map(lit));
        args.push(ts);
        args.extend(conditions);
        args
    }

    /// `window_funnel(window_seconds, [mode,] ts, cond1, ...)`: the deepest funnel step reached.
    pub fn window_funnel(window_seconds: f64, mode: Option<&str>, ts: Expr, conditions: Vec<Expr>) -> Expr {
        udaf(Kind::Funnel).call(funnel_args(window_seconds, mode, ts, conditions))
    }

    /// `window_funnel_times(window_seconds, [mode,] ts, cond1, ...)`: seconds from step 1 to each step.
    pub fn window_funnel_times(window_seconds: f64, mode: Option<&str>, ts: Expr, conditions: Vec<Expr>) -> Expr {
        udaf(Kind::Times).call(funnel_args(window_seconds, mode, ts, conditions))
    }

    /// `retention(cond1, ...)`: ClickHouse's retention flags.
    pub fn retention(conditions: Vec<Expr>) -> Expr {
        udaf(Kind::Retention).call(conditions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_like_clickhouse() {
        let mode = FunnelMode::parse("window_funnel", " strict_order , allow_reentry,strict_once").unwrap();
        assert!(mode.strict_order && mode.allow_reentry && mode.strict_once);
        assert!(!mode.strict_deduplication && !mode.strict_increase);
        assert_eq!(FunnelMode::parse("window_funnel", "").unwrap(), FunnelMode::default());
        let error = |text: &str| FunnelMode::parse("window_funnel", text).unwrap_err().to_string();
        assert!(error("allow_reentry").contains("requires strict_order"));
        assert!(error("strict").contains("strict_deduplication"));
        assert!(error("Strict_Order").contains("unknown mode option 'Strict_Order'"));
    }

    #[test]
    fn ties_put_rows_meeting_earlier_conditions_first() {
        // (cond1, cond2) = (true, true) < (true, false) < (false, true) < (false, false)
        let order = [0b11, 0b01, 0b10, 0b00].map(tie_order);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }

    fn search(mode: FunnelMode, conditions: usize, window: i64, rows: &[(i64, u32)]) -> (u8, Vec<i64>) {
        let config =
            FunnelConfig { name: "window_funnel", times: true, mode, window, per_second: 1, ts_index: 1, conditions };
        let (ts, masks): (Vec<i64>, Vec<u32>) = rows.iter().copied().unzip();
        Search::new(&config).run(&ts, &masks)
    }

    #[test]
    fn the_chain_that_reached_the_deepest_level_is_reported() {
        // A@0 B@10 A@50 C@120, window 100: the restart at 50 leaves step 2 on the chain from 0.
        let rows = [(0, 0b001), (10, 0b010), (50, 0b001), (120, 0b100)];
        assert_eq!(search(FunnelMode::default(), 3, 100, &rows), (2, vec![0, 10]));
        // strict_once keeps every chain: the same answer.
        let once = FunnelMode { strict_once: true, ..FunnelMode::default() };
        assert_eq!(search(once, 3, 100, &rows), (2, vec![0, 10]));
        // No events: level 0, no chain.
        assert_eq!(search(FunnelMode::default(), 3, 100, &[]), (0, vec![]));
    }

    fn two_step_funnel() -> Grouped<FunnelStates> {
        let config = FunnelConfig {
            name: "window_funnel",
            times: false,
            mode: FunnelMode::default(),
            window: 100,
            per_second: 1,
            ts_index: 1,
            conditions: 2,
        };
        Grouped(FunnelStates::new(config))
    }

    fn levels(array: ArrayRef) -> Vec<Option<u8>> {
        array.as_primitive::<datafusion::arrow::datatypes::UInt8Type>().iter().collect()
    }

    /// Groups live in shared chunks: emitting the first groups, as ordered aggregation does,
    /// must leave the later ones whole and renumbered, and states must carry them to another
    /// accumulator unchanged.
    #[test]
    fn emitting_the_first_groups_keeps_the_rest() {
        use datafusion::arrow::array::TimestampSecondArray;
        use datafusion::logical_expr::EmitTo;
        // Group 0: A@0, B@10 (level 2). Group 1: A@0, B@500 (level 1). Group 2: B@5 (level 0).
        // Group 3: A@7 (level 1). Group 4: no row (NULL). Rows arrive interleaved.
        let groups = [0, 1, 2, 3, 0, 1];
        let ts: ArrayRef = Arc::new(TimestampSecondArray::from(vec![0, 0, 5, 7, 10, 500]));
        let a: ArrayRef = Arc::new(BooleanArray::from(vec![true, true, false, true, false, false]));
        let b: ArrayRef = Arc::new(BooleanArray::from(vec![false, false, true, false, true, true]));
        let window: ArrayRef = Arc::new(Float64Array::from(vec![100.0; 6]));
        let values = [window, ts, a, b];

        let mut funnel = two_step_funnel();
        funnel.update_batch(&values, &groups, None, 5).unwrap();
        assert_eq!(levels(funnel.evaluate(EmitTo::First(2)).unwrap()), [Some(2), Some(1)]);
        assert_eq!(levels(funnel.evaluate(EmitTo::All).unwrap()), [Some(0), Some(1), None]);

        // The same groups through partial states, the first two emitted on their own.
        let mut partial = two_step_funnel();
        partial.update_batch(&values, &groups, None, 5).unwrap();
        let first = partial.state(EmitTo::First(2)).unwrap();
        let rest = partial.state(EmitTo::All).unwrap();
        let mut merged = two_step_funnel();
        merged.merge_batch(&rest, &[2, 3, 4], 5).unwrap();
        merged.merge_batch(&first, &[0, 1], 5).unwrap();
        assert_eq!(levels(merged.evaluate(EmitTo::All).unwrap()), [Some(2), Some(1), Some(0), Some(1), None]);
    }

    /// Batches of files sorted by the key (one ascending run each, or two where a repartition
    /// joined batches) are gathered a block of groups at a time; emitting the first groups
    /// mid-block must leave the rest whole and renumbered.
    #[test]
    fn sorted_batches_are_gathered_by_blocks() {
        use datafusion::arrow::array::TimestampSecondArray;
        use datafusion::logical_expr::EmitTo;
        // Group g (no rows when g % 7 == 6): A at g * 1000 when g % 3 < 2, and B at g * 1000 +
        // 10, + 500 or + 5 for g % 3 == 0, 1, 2: levels 2, 1 (B out of the window of 100), 0.
        let groups = 3 * GATHER_BLOCK;
        let expected = |g: usize| (g % 7 != 6).then_some([2, 1, 0][g % 3]);
        let listed = |keep: &dyn Fn(usize) -> bool| (0..groups).filter(|&g| g % 7 != 6 && keep(g)).collect::<Vec<_>>();
        let batch = |rows: &[usize], offset: [i64; 3], a: bool| {
            let ts = rows.iter().map(|&g| g as i64 * 1000 + offset[g % 3]).collect::<Vec<_>>();
            let values: [ArrayRef; 4] = [
                Arc::new(Float64Array::from(vec![100.0; rows.len()])),
                Arc::new(TimestampSecondArray::from(ts)),
                Arc::new(BooleanArray::from(vec![a; rows.len()])),
                Arc::new(BooleanArray::from(vec![!a; rows.len()])),
            ];
            values
        };
        let day1 = listed(&|g| g % 3 < 2);
        // Day 2 as a repartition joins two batches: even groups, then odd ones.
        let mut day2 = listed(&|g| g % 2 == 0);
        day2.extend(listed(&|g| g % 2 == 1));

        let mut funnel = two_step_funnel();
        funnel.update_batch(&batch(&day1, [0, 0, 0], true), &day1, None, groups).unwrap();
        funnel.update_batch(&batch(&day2, [10, 500, 5], false), &day2, None, groups).unwrap();
        assert!(funnel.0.by_blocks());
        let first = GATHER_BLOCK + GATHER_BLOCK / 2;
        let got = levels(funnel.evaluate(EmitTo::First(first)).unwrap());
        assert_eq!(got, (0..first).map(expected).collect::<Vec<_>>());
        assert!(funnel.0.by_blocks());
        let got = levels(funnel.evaluate(EmitTo::All).unwrap());
        assert_eq!(got, (first..groups).map(expected).collect::<Vec<_>>());
    }
}
