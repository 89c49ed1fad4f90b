//! A physical rule and operator that group cxlake's aggregates by one key faster than
//! DataFusion's general hash grouping.
//!
//! Metric queries group by one column far more often than by several: a channel or region
//! (a handful of short strings) or a user id (millions of integers, usually numbered densely
//! from some start). DataFusion's single-column grouping hashes every row's key with a seeded
//! hash and probes a table that compares string bytes or integer values; for a few short strings
//! that is most of a CSAT query, and for user ids it is most of a retention query.
//! [`KeyedGrouping`] replaces such an `AggregateExec` with [`KeyedAggregateExec`], which runs the
//! same accumulators with its own key lookup:
//!
//! - strings: the 16-byte view of a string of up to 12 bytes *is* the string (length and bytes,
//!   then zeros), so it is looked up as one integer in a small hash table; longer strings
//!   are looked up by their bytes;
//! - integers, dates and timestamps: when the first batch's keys are dense and not NULL, the
//!   group *is* the key minus a base (from 0 for ids that start near it), so there is no lookup
//!   at all and groups lie in key order: a file sorted by user updates the accumulators' states
//!   in the order they lie in memory. Groups between the keys seen are holes, left out of the
//!   output; the numbering holds while the keys span at most 8 M values or sixteen per key seen.
//!   Otherwise (or after a NULL, a key below the base, keys too sparse) a direct table: a slot
//!   per key between the smallest and largest seen, while the keys span at most 8 M values or
//!   four per group; a hash table beyond that (the same kind as the strings'), which becomes
//!   direct if the keys prove dense. Keys that turn sparse go back to the hash table for good.
//! - input sorted by the key (files declared in that order, or rows out of cxlake's session
//!   numbering, which come out sorted by user): a group is a run of equal keys, found by
//!   comparing each key with the one before it, and the groups a batch closes go out after it,
//!   so memory holds one open group, as in DataFusion's ordered grouping.
//!
//! `EXPLAIN ANALYZE` counts the rows of each way (`ordered_key_rows`, `direct_key_rows`,
//! `hashed_key_rows`, `sorted_key_rows`).
//!
//! `SET cxlake.keyed_grouping = false` turns the rule off (DataFusion's grouping, for comparison).
//! The rule applies when the `GROUP BY` has exactly one key of those types (no grouping sets, no
//! limit, input in no order or sorted by the key), all aggregates have a `GroupsAccumulator` and
//! no `ORDER BY` inside the call, and the query is cxlake's: at least one aggregate is a cxlake
//! function, or the rows come from cxlake's session numbering (`max(session) GROUP BY user`).
//! Plain SQL aggregates over plain rows keep DataFusion's plan, so DataFusion's own timings stay
//! DataFusion's. Under a memory limit the operator runs the `AggregateExec` it replaced, which
//! accounts for and spills its state.
//!
//! The operator delegates downcasts to the `AggregateExec` it wraps
//! ([`ExecutionPlan::downcast_delegate`]): plan serializers (a cluster's stages) send it as that
//! `AggregateExec`, which any DataFusion process can run.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use datafusion::arrow::array::{
    new_empty_array, Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, PrimitiveArray, RecordBatch,
    StringViewArray, StringViewBuilder, UInt32Array,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::kernels::cmp::distinct;
use datafusion::arrow::compute::{cast, concat, max, min, partition, take};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Int16Type, Int32Type, Int64Type, Int8Type, SchemaRef, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type,
    UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::common::{exec_err, internal_err, DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryLimit;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use datafusion::physical_expr::OrderingRequirements;
use datafusion::physical_expr::{PhysicalExpr, PhysicalExprRef};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{aggregate_expressions, AggregateExec, AggregateMode};
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::metrics::{BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, InputDistributionRequirements, InputOrderMode, PlanProperties,
};
use foldhash::fast::FixedState;

use crate::common::filter::filter_batch;
use crate::common::{prefetch, rewrite_bottom_up, CxlakeOptions};
use crate::sessions_plan::SessionNumberExec;
use futures::{StreamExt, TryStreamExt};

/// Replaces a one-key `AggregateExec` over cxlake aggregates with [`KeyedAggregateExec`].
#[derive(Debug)]
pub struct KeyedGrouping {
    /// Names of the aggregate functions that make a `GROUP BY` cxlake's.
    own: HashSet<String>,
}

impl KeyedGrouping {
    pub const NAME: &'static str = "cxlake_keyed_grouping";

    /// A rule for the aggregates named in `own`.
    pub fn new(own: impl IntoIterator<Item = String>) -> Self {
        Self { own: own.into_iter().collect() }
    }

    fn rewrite(&self, plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
        if (plan.as_ref() as &dyn std::any::Any).is::<KeyedAggregateExec>() {
            return None;
        }
        let agg = plan.downcast_ref::<AggregateExec>()?;
        let group_by = agg.group_expr();
        let [(key, _)] = group_by.expr() else { return None };
        let key_type = key.data_type(&agg.input().schema()).ok()?;
        let applies = !group_by.has_grouping_set()
            && new_group_keys(&key_type, KeyCounts::unshown()).is_ok()
            && matches!(agg.input_order_mode(), InputOrderMode::Linear | InputOrderMode::Sorted)
            && agg.limit_options().is_none()
            && agg.dynamic_expressions_produced().is_empty()
            && !agg.aggr_expr().is_empty()
            && agg.aggr_expr().iter().all(|a| a.groups_accumulator_supported() && a.order_bys().is_empty())
            && (agg.aggr_expr().iter().any(|a| self.own.contains(a.fun().name()))
                || reads_session_numbers(agg.input()));
        if !applies {
            return None;
        }
        let agg = Arc::new(agg.clone());
        Some(Arc::new(KeyedAggregateExec { agg, metrics: ExecutionPlanMetricsSet::new() }))
    }
}

/// Whether `plan` numbers sessions with cxlake's operator: rows grouped after it belong to a
/// cxlake query even when the aggregates are plain SQL (`max(session) GROUP BY user`).
fn reads_session_numbers(plan: &Arc<dyn ExecutionPlan>) -> bool {
    plan.exists(|node| Ok(node.downcast_ref::<SessionNumberExec>().is_some())).unwrap_or(false)
}

impl PhysicalOptimizerRule for KeyedGrouping {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        if !config.extensions.get::<CxlakeOptions>().is_none_or(|o| o.keyed_grouping) {
            return Ok(plan);
        }
        rewrite_bottom_up(plan, |node| Ok(self.rewrite(node)))
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The `AggregateExec` it replaced, run with cxlake's key lookup (see the module documentation).
#[derive(Debug)]
pub struct KeyedAggregateExec {
    agg: Arc<AggregateExec>,
    metrics: ExecutionPlanMetricsSet,
}

impl DisplayAs for KeyedAggregateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let keys = self.agg.group_expr().expr().iter().map(|(e, alias)| format!("{e} as {alias}"));
        let aggs = self.agg.aggr_expr().iter().map(|a| a.name().to_string());
        write!(
            f,
            "KeyedAggregateExec: mode={:?}, gby=[{}], aggr=[{}]",
            self.agg.mode(),
            keys.collect::<Vec<_>>().join(", "),
            aggs.collect::<Vec<_>>().join(", ")
        )
    }
}

impl ExecutionPlan for KeyedAggregateExec {
    fn name(&self) -> &str {
        "KeyedAggregateExec"
    }

    fn downcast_delegate(&self) -> Option<&dyn ExecutionPlan> {
        Some(self.agg.as_ref())
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.agg.properties()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.agg.input_distribution_requirements()
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        self.agg.required_input_ordering()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        self.agg.maintains_input_order()
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        self.agg.benefits_from_input_partitioning()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.agg.input()]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.agg.apply_expressions(f)
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!("KeyedAggregateExec takes one input, not {}", children.len());
        }
        let agg = &self.agg;
        let agg = AggregateExec::try_new(
            *agg.mode(),
            agg.group_expr().clone(),
            agg.aggr_expr().to_vec(),
            agg.filter_expr().to_vec(),
            children.swap_remove(0),
            agg.input_schema(),
        )?;
        Ok(Arc::new(Self { agg: Arc::new(agg), metrics: ExecutionPlanMetricsSet::new() }))
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::LowerEqual
    }

    fn metrics(&self) -> Option<MetricsSet> {
        let mut metrics = self.metrics.clone_inner();
        if let Some(inner) = self.agg.metrics() {
            for metric in inner.iter() {
                metrics.push(Arc::clone(metric));
            }
        }
        Some(metrics)
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        if !matches!(context.memory_pool().memory_limit(), MemoryLimit::Infinite) {
            return self.agg.execute(partition, context);
        }
        let agg = Arc::clone(&self.agg);
        let input = agg.input().execute(partition, Arc::clone(&context))?;
        let batch_size = context.session_config().batch_size().max(1);
        let baseline = BaselineMetrics::new(&self.metrics, partition);
        let builder = MetricBuilder::new(&self.metrics);
        let counts = KeyCounts {
            direct: builder.clone().counter("direct_key_rows", partition),
            ordered: builder.clone().counter("ordered_key_rows", partition),
            hashed: builder.clone().counter("hashed_key_rows", partition),
            sorted: builder.counter("sorted_key_rows", partition),
        };
        let schema = agg.schema();
        let table = GroupTable::new(&agg, counts)?;
        if table.streams() {
            // Input sorted by the key: the groups a batch closes go out after it.
            let state = (input, Some(table), baseline, Arc::clone(&schema));
            let output = futures::stream::try_unfold(state, |(mut input, mut table, baseline, schema)| async move {
                while let Some(open) = table.as_mut() {
                    let out = match input.next().await {
                        Some(batch) => {
                            let batch = batch?;
                            let _timer = baseline.elapsed_compute().timer();
                            open.push(&batch)?;
                            open.emit_closed(&schema)?
                        }
                        None => {
                            let _timer = baseline.elapsed_compute().timer();
                            table.take().map(|t| t.finish(&schema)).transpose()?
                        }
                    };
                    if let Some(out) = out.filter(|b| b.num_rows() > 0) {
                        baseline.record_output(out.num_rows());
                        return Ok(Some((out, (input, table, baseline, schema))));
                    }
                }
                Ok(None)
            });
            return Ok(Box::pin(RecordBatchStreamAdapter::new(agg.schema(), output)));
        }
        let out_schema = Arc::clone(&schema);
        let output = futures::stream::once(async move {
            let mut table = table;
            let mut input = input;
            while let Some(batch) = input.next().await {
                let batch = batch?;
                let _timer = baseline.elapsed_compute().timer();
                table.push(&batch)?;
            }
            let timer = baseline.elapsed_compute().timer();
            let out = table.finish(&out_schema)?;
            timer.done();
            let rows = out.num_rows();
            let chunks = (0..rows.div_ceil(batch_size)).map(move |i| {
                let start = i * batch_size;
                let batch = out.slice(start, batch_size.min(rows - start));
                baseline.record_output(batch.num_rows());
                Ok(batch)
            });
            Ok::<_, DataFusionError>(futures::stream::iter(chunks.collect::<Vec<_>>()))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, output)))
    }
}

/// Rows looked up in a direct table, numbered by key, looked up in a hash table and grouped as
/// runs of sorted input (`EXPLAIN ANALYZE` shows each).
#[derive(Clone)]
struct KeyCounts {
    direct: Count,
    ordered: Count,
    hashed: Count,
    sorted: Count,
}

impl KeyCounts {
    /// Counts that no plan shows (to check that a key type has a lookup).
    fn unshown() -> Self {
        Self { direct: Count::new(), ordered: Count::new(), hashed: Count::new(), sorted: Count::new() }
    }
}

/// One partition's groups: the key lookup and one accumulator per aggregate.
struct GroupTable {
    key: PhysicalExprRef,
    keys: Box<dyn GroupKeys>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    arguments: Vec<Vec<PhysicalExprRef>>,
    /// `FILTER (WHERE ...)` of each aggregate, applied only to raw input rows.
    filters: Vec<Option<PhysicalExprRef>>,
    /// Input rows are partial states to merge, not raw rows.
    merging: bool,
    /// Output is partial states, not final values.
    states_out: bool,
    indices: Vec<usize>,
}

impl GroupTable {
    fn new(agg: &AggregateExec, counts: KeyCounts) -> Result<Self> {
        let [(key, _)] = agg.group_expr().expr() else {
            return internal_err!("KeyedAggregateExec groups by exactly one key");
        };
        let key_type = key.data_type(&agg.input().schema())?;
        let keys = match agg.input_order_mode() {
            InputOrderMode::Sorted => Box::new(KeyRuns::new(&key_type, counts.sorted)),
            _ => new_group_keys(&key_type, counts)?,
        };
        let mode = agg.mode();
        let merging =
            matches!(mode, AggregateMode::Final | AggregateMode::FinalPartitioned | AggregateMode::PartialReduce);
        let states_out = matches!(mode, AggregateMode::Partial | AggregateMode::PartialReduce);
        let aggregates: &[Arc<AggregateFunctionExpr>] = agg.aggr_expr();
        let arguments = aggregate_expressions(aggregates, mode, 1)?;
        let filters = if merging { vec![None; aggregates.len()] } else { agg.filter_expr().to_vec() };
        let accumulators = aggregates.iter().map(|a| a.create_groups_accumulator()).collect::<Result<Vec<_>>>()?;
        Ok(Self {
            key: Arc::clone(key),
            keys,
            accumulators,
            arguments,
            filters,
            merging,
            states_out,
            indices: Vec::new(),
        })
    }

    fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let key = self.key.evaluate(batch)?.into_array(rows)?;
        self.keys.intern(&key, &mut self.indices)?;
        let groups = self.keys.len();
        for ((accumulator, arguments), filter) in self.accumulators.iter_mut().zip(&self.arguments).zip(&self.filters) {
            let values =
                arguments.iter().map(|e| e.evaluate(batch)?.into_array(rows)).collect::<Result<Vec<ArrayRef>>>()?;
            if self.merging {
                accumulator.merge_batch(&values, &self.indices, groups)?;
            } else {
                let filter = filter.as_ref().map(|f| f.evaluate(batch)?.into_array(rows)).transpose()?;
                let filter: Option<&BooleanArray> = filter.as_ref().map(|f| f.as_boolean());
                accumulator.update_batch(&values, &self.indices, filter, groups)?;
            }
        }
        Ok(())
    }

    /// The groups `emit_to` takes out, as the output batch: `keys`, then each aggregate's final
    /// value or partial state.
    fn emit(&mut self, keys: ArrayRef, emit_to: EmitTo, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut columns = vec![keys];
        for accumulator in &mut self.accumulators {
            if self.states_out {
                columns.extend(accumulator.state(emit_to)?);
            } else {
                columns.push(accumulator.evaluate(emit_to)?);
            }
        }
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }

    /// Whether groups close before the input ends (see [`GroupKeys::closed`]).
    fn streams(&self) -> bool {
        self.keys.streams()
    }

    /// The groups that take no more rows, if any, taken out of the table.
    fn emit_closed(&mut self, schema: &SchemaRef) -> Result<Option<RecordBatch>> {
        let closed = self.keys.closed();
        if closed == 0 {
            return Ok(None);
        }
        let keys = self.keys.emit_first(closed)?;
        Ok(Some(self.emit(keys, EmitTo::First(closed), schema)?))
    }

    fn finish(mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let live = self.keys.live();
        let keys = self.keys.emit()?;
        let batch = self.emit(keys, EmitTo::All, schema)?;
        match live {
            Some(live) => filter_batch(&batch, &live),
            None => Ok(batch),
        }
    }
}

/// Assigns a group index to each distinct key (NULL included): in order of first appearance, or
/// by key for dense integers (see [`IntegerTable::Ordered`]).
trait GroupKeys: Send {
    /// Replaces `indices` with the group of each row of `keys`.
    fn intern(&mut self, keys: &ArrayRef, indices: &mut Vec<usize>) -> Result<()>;
    /// Number of groups so far.
    fn len(&self) -> usize;
    /// Every group's key, in group order, of the key column's type.
    fn emit(&mut self) -> Result<ArrayRef>;
    /// Which groups hold a key, where some do not (groups numbered by key leave holes for the
    /// keys between those seen); `None` when every group does.
    fn live(&self) -> Option<BooleanBuffer> {
        None
    }
    /// Whether groups close before the input ends: the input is sorted by the key.
    fn streams(&self) -> bool {
        false
    }
    /// How many groups, the first ones, take no more rows.
    fn closed(&self) -> usize {
        0
    }
    /// The keys of the first `n` groups, which leave the table: the groups after them are
    /// numbered from 0 again.
    fn emit_first(&mut self, _n: usize) -> Result<ArrayRef> {
        internal_err!("only keys of sorted input close their groups early")
    }
}

/// Keys of input sorted by them (NULLs first or last): a group is a run of equal keys, found by
/// comparing each key with the one before it, with no lookup. Every group before a batch's last
/// one is closed and can go out; the last stays open for the next batch.
struct KeyRuns {
    /// The key of each group not yet taken out, the open one last.
    pending: ArrayRef,
    rows: Count,
}

impl KeyRuns {
    fn new(data_type: &DataType, rows: Count) -> Self {
        Self { pending: new_empty_array(data_type), rows }
    }
}

impl GroupKeys for KeyRuns {
    fn intern(&mut self, keys: &ArrayRef, indices: &mut Vec<usize>) -> Result<()> {
        indices.clear();
        if keys.is_empty() {
            return Ok(());
        }
        self.rows.add(keys.len());
        let runs = partition(std::slice::from_ref(keys))?.ranges();
        let held = self.pending.len();
        // The first run goes on with the open group when its key is the open group's.
        let goes_on = held > 0 && !distinct(&self.pending.slice(held - 1, 1), &keys.slice(0, 1))?.value(0);
        let first = held - goes_on as usize;
        indices.reserve(keys.len());
        for (i, run) in runs.iter().enumerate() {
            indices.extend(std::iter::repeat_n(first + i, run.len()));
        }
        let starts: UInt32Array = runs.iter().skip(goes_on as usize).map(|r| r.start as u32).collect();
        let new_keys = take(keys.as_ref(), &starts, None)?;
        self.pending = if held == 0 { new_keys } else { concat(&[self.pending.as_ref(), new_keys.as_ref()])? };
        Ok(())
    }

    fn len(&self) -> usize {
        self.pending.len()
    }

    fn emit(&mut self) -> Result<ArrayRef> {
        let empty = new_empty_array(self.pending.data_type());
        Ok(std::mem::replace(&mut self.pending, empty))
    }

    fn streams(&self) -> bool {
        true
    }

    fn closed(&self) -> usize {
        self.len().saturating_sub(1)
    }

    fn emit_first(&mut self, n: usize) -> Result<ArrayRef> {
        let first = self.pending.slice(0, n);
        self.pending = self.pending.slice(n, self.pending.len() - n);
        Ok(first)
    }
}

fn new_group_keys(data_type: &DataType, counts: KeyCounts) -> Result<Box<dyn GroupKeys>> {
    macro_rules! integers {
        ($t:ty) => {
            Box::new(IntegerKeys::<$t>::new(data_type.clone(), counts)) as Box<dyn GroupKeys>
        };
    }
    Ok(match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            Box::new(StringKeys::new(data_type.clone(), counts.hashed))
        }
        DataType::Int8 => integers!(Int8Type),
        DataType::Int16 => integers!(Int16Type),
        DataType::Int32 => integers!(Int32Type),
        DataType::Int64 => integers!(Int64Type),
        DataType::UInt8 => integers!(UInt8Type),
        DataType::UInt16 => integers!(UInt16Type),
        DataType::UInt32 => integers!(UInt32Type),
        DataType::UInt64 => integers!(UInt64Type),
        DataType::Date32 => integers!(Date32Type),
        DataType::Date64 => integers!(Date64Type),
        DataType::Timestamp(TimeUnit::Second, _) => integers!(TimestampSecondType),
        DataType::Timestamp(TimeUnit::Millisecond, _) => integers!(TimestampMillisecondType),
        DataType::Timestamp(TimeUnit::Microsecond, _) => integers!(TimestampMicrosecondType),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => integers!(TimestampNanosecondType),
        other => return internal_err!("KeyedAggregateExec cannot group by a {other} key"),
    })
}

/// The next group index, or an error past what a `u32` slot holds.
fn next_group(groups: usize) -> Result<u32> {
    match u32::try_from(groups) {
        Ok(g) if g != NO_GROUP => Ok(g),
        _ => exec_err!(
            "GROUP BY has more than {} groups in one partition: raise datafusion.execution.target_partitions",
            NO_GROUP
        ),
    }
}

const NO_GROUP: u32 = u32::MAX;

/// String keys. A view of at most 12 bytes holds the whole string (4 bytes of length, then the
/// bytes, then zeros, as Arrow requires), so it is the lookup key. Longer strings are looked up
/// by their bytes.
struct StringKeys {
    data_type: DataType,
    short: ShortTable,
    long: HashMap<Box<[u8]>, u32, FixedState>,
    null_group: Option<u32>,
    values: StringViewBuilder,
    groups: usize,
    rows: Count,
}

impl StringKeys {
    fn new(data_type: DataType, rows: Count) -> Self {
        Self {
            data_type,
            short: ShortTable::new(),
            long: HashMap::default(),
            null_group: None,
            values: StringViewBuilder::new(),
            groups: 0,
            rows,
        }
    }

    fn new_group(&mut self, value: Option<&str>) -> Result<u32> {
        let group = next_group(self.groups)?;
        self.values.append_option(value);
        self.groups += 1;
        Ok(group)
    }

    /// The group of the (valid) string at `i`, whose view is `view`.
    fn group_of(&mut self, array: &StringViewArray, i: usize, view: u128) -> Result<u32> {
        let len = view as u32;
        if len <= 12 {
            match self.short.find(view) {
                Ok(g) => Ok(g),
                Err(slot) => {
                    let g = self.new_group(Some(array.value(i)))?;
                    self.short.insert(slot, view, g);
                    Ok(g)
                }
            }
        } else {
            let value = array.value(i);
            if let Some(&g) = self.long.get(value.as_bytes()) {
                return Ok(g);
            }
            let g = self.new_group(Some(value))?;
            self.long.insert(value.as_bytes().into(), g);
            Ok(g)
        }
    }
}

/// Open addressing over 128-bit keys (the views of short strings, or integers), for the
/// handful to thousands of channels, regions, plans or months a metric is grouped by: a multiply-shift bucket and linear
/// probing in a table at most half full, small enough to stay in the first-level cache.
///
/// Rows come in no order of key, so a probe that sometimes needs a second step is a branch the
/// processor mispredicts on a large share of rows, which costs more than the lookup itself.
/// While there are few keys the table is therefore kept collision-free: an insert that collides
/// picks another multiplier, or a larger table (up to [`PERFECT_SLOTS`] slots), until every key
/// sits in its own first slot. Past that it probes like any open-addressing table.
struct ShortTable {
    keys: Vec<u128>,
    /// The group in each slot, [`NO_GROUP`] where empty.
    groups: Vec<u32>,
    multiplier: u64,
    shift: u32,
    len: usize,
    /// Whether every key is in its first slot, or still tried to be.
    perfect: bool,
}

/// The first slot of `key`: its halves folded, then multiply-shift.
#[inline(always)]
fn bucket_of(key: u128, multiplier: u64, shift: u32) -> usize {
    let folded = (key as u64) ^ ((key >> 64) as u64).rotate_left(32);
    (folded.wrapping_mul(multiplier) >> shift) as usize
}

/// The largest table kept collision-free (64 KiB of keys).
const PERFECT_SLOTS: usize = 4096;

/// Odd multipliers (of the golden ratio's family) tried in turn for a collision-free table.
const MULTIPLIERS: [u64; 8] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0xD6E8_FEB8_6659_FD93,
    0xFF51_AFD7_ED55_8CCD,
    0xC4CE_B9FE_1A85_EC53,
    0x8796_3A5B_5A1E_76E1,
    0xA076_1D64_78BD_642F,
];

impl ShortTable {
    fn new() -> Self {
        Self::with_slots(64, MULTIPLIERS[0])
    }

    fn with_slots(slots: usize, multiplier: u64) -> Self {
        Self {
            keys: vec![0; slots],
            groups: vec![NO_GROUP; slots],
            multiplier,
            shift: 64 - slots.trailing_zeros(),
            len: 0,
            perfect: true,
        }
    }

    #[inline(always)]
    fn bucket(&self, key: u128) -> usize {
        bucket_of(key, self.multiplier, self.shift)
    }

    /// The group of `key`, or the empty slot where it goes.
    #[inline(always)]
    fn find(&self, key: u128) -> std::result::Result<u32, usize> {
        let mask = self.keys.len() - 1;
        let mut slot = self.bucket(key);
        loop {
            let group = self.groups[slot];
            if group == NO_GROUP {
                return Err(slot);
            }
            if self.keys[slot] == key {
                return Ok(group);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// Writes the group of each row from `start` on into `out` while the rows are valid, short
    /// and already known; returns the first row that is not. The table's fields are copied to
    /// locals so that they stay in registers for the whole run.
    fn find_known<const NULLS: bool>(
        &self,
        views: &[u128],
        nulls: Option<&NullBuffer>,
        out: &mut [usize],
        start: usize,
    ) -> usize {
        let (keys, groups) = (&self.keys[..], &self.groups[..]);
        let (multiplier, shift, mask) = (self.multiplier, self.shift, self.keys.len() - 1);
        let mut i = start;
        while i < views.len() {
            let view = views[i];
            if view as u32 > 12 || (NULLS && nulls.is_some_and(|n| n.is_null(i))) {
                return i;
            }
            let mut slot = bucket_of(view, multiplier, shift);
            loop {
                let group = groups[slot];
                if group == NO_GROUP {
                    return i;
                }
                if keys[slot] == view {
                    out[i] = group as usize;
                    break;
                }
                slot = (slot + 1) & mask;
            }
            i += 1;
        }
        i
    }

    /// Puts `key` in the empty `slot` that [`Self::find`] returned.
    fn insert(&mut self, slot: usize, key: u128, group: u32) {
        let collided = slot != self.bucket(key);
        self.keys[slot] = key;
        self.groups[slot] = group;
        self.len += 1;
        if self.perfect && collided {
            *self = self.rebuilt_perfect();
        } else if self.len * 2 > self.keys.len() {
            *self = self.rebuilt(self.keys.len() * 2, self.multiplier, self.perfect);
        }
    }

    fn entries(&self) -> impl Iterator<Item = (u128, u32)> + '_ {
        self.keys.iter().zip(&self.groups).filter(|(_, &g)| g != NO_GROUP).map(|(&k, &g)| (k, g))
    }

    fn rebuilt(&self, slots: usize, multiplier: u64, perfect: bool) -> Self {
        let mut table = Self::with_slots(slots, multiplier);
        table.perfect = perfect;
        for (key, group) in self.entries() {
            if let Err(slot) = table.find(key) {
                table.keys[slot] = key;
                table.groups[slot] = group;
                table.len += 1;
            }
        }
        table
    }

    /// The same keys with none out of its first slot, or a probing table if that takes more
    /// than [`PERFECT_SLOTS`] slots.
    fn rebuilt_perfect(&self) -> Self {
        let mut slots = self.keys.len().max((self.len * 4).next_power_of_two());
        while slots <= PERFECT_SLOTS {
            for multiplier in MULTIPLIERS {
                let table = Self::with_slots(slots, multiplier);
                let mut taken = vec![false; slots];
                if self.entries().all(|(key, _)| !std::mem::replace(&mut taken[table.bucket(key)], true)) {
                    return self.rebuilt(slots, multiplier, true);
                }
            }
            slots *= 2;
        }
        self.rebuilt((self.len * 4).next_power_of_two().max(64), MULTIPLIERS[0], false)
    }
}

impl GroupKeys for StringKeys {
    fn intern(&mut self, keys: &ArrayRef, indices: &mut Vec<usize>) -> Result<()> {
        let viewed;
        let array = if keys.data_type() == &DataType::Utf8View {
            keys.as_string_view()
        } else {
            viewed = cast(keys, &DataType::Utf8View)?;
            viewed.as_string_view()
        };
        let rows = array.len();
        indices.clear();
        indices.resize(rows, 0);
        let views = array.views();
        let nulls = array.nulls().filter(|n| n.null_count() > 0);
        let mut i = 0;
        while i < rows {
            i = match nulls {
                None => self.short.find_known::<false>(views, None, indices, i),
                Some(nulls) => self.short.find_known::<true>(views, Some(nulls), indices, i),
            };
            if i == rows {
                break;
            }
            let group = if nulls.is_some_and(|n| n.is_null(i)) {
                match self.null_group {
                    Some(g) => g,
                    None => {
                        let g = self.new_group(None)?;
                        self.null_group = Some(g);
                        g
                    }
                }
            } else {
                self.group_of(array, i, views[i])?
            };
            indices[i] = group as usize;
            i += 1;
        }
        self.rows.add(array.len());
        Ok(())
    }

    fn len(&self) -> usize {
        self.groups
    }

    fn emit(&mut self) -> Result<ArrayRef> {
        let values: ArrayRef = Arc::new(self.values.finish());
        if self.data_type == DataType::Utf8View {
            Ok(values)
        } else {
            Ok(cast(&values, &self.data_type)?)
        }
    }
}

/// Native values of the integer-like key types as 64-bit lookup keys.
trait IntegerKey: Copy + Default + Send + 'static {
    fn key(self) -> i64;
    /// The native value of a lookup key (the inverse of [`IntegerKey::key`]).
    fn from_key(key: i64) -> Self;
    /// Whether `key` preserves order, so that a direct table can span the keys (not so for
    /// `u64`, whose large values wrap).
    const ORDERED: bool = true;
}

macro_rules! integer_key {
    ($($t:ty),*) => {$(
        impl IntegerKey for $t {
            fn key(self) -> i64 {
                self as i64
            }
            fn from_key(key: i64) -> Self {
                key as $t
            }
        }
    )*};
}
integer_key!(i8, i16, i32, i64, u8, u16, u32);

impl IntegerKey for u64 {
    fn key(self) -> i64 {
        self as i64
    }
    fn from_key(key: i64) -> Self {
        key as u64
    }
    const ORDERED: bool = false;
}

/// A direct table is used while it has at most this many slots per group...
const SLOTS_PER_GROUP: i128 = 4;
/// ...or this many slots in all (32 MiB), whichever is more. Empty slots are zero, so the pages
/// of a table that no key reaches are never touched and cost no memory: a key column whose values
/// fall in a few million (user ids, say) gets a direct table from its first batch, even when each
/// file holds a thin, sorted slice of them.
const MIN_DIRECT_SLOTS: i128 = 1 << 23;

/// Groups numbered by key ([`IntegerTable::Ordered`]) may be up to this many per key seen, or
/// as many as a direct table's free slots ([`MIN_DIRECT_SLOTS`]), whichever is more.
const HOLES_PER_GROUP: i128 = 16;

/// How integer keys find their group.
enum IntegerTable {
    /// A hash table (the strings' [`ShortTable`]: collision-free while the keys are few, as the
    /// months or days of a report are); `direct_tried` once a direct table was given up, so it
    /// is not tried again.
    Hashed { map: ShortTable, direct_tried: bool },
    /// `slots[key - base]` is one more than the group of `key`, or 0 where no key was seen.
    Direct { base: i64, slots: Vec<u32> },
    /// The group of `key` is `key - base`: no lookup at all, and groups numbered in key order,
    /// so that a file sorted by the key (events by user) updates the accumulators' states in
    /// the order they lie in memory instead of in the scattered order users were first seen.
    /// Groups between the keys seen are holes ([`OrderedGroups`]), left out of the output.
    /// Taken from the first batch when its keys are dense and not NULL; given up (for a direct
    /// or hash table, holes kept) for a NULL, a key below `base`, or keys too sparse.
    Ordered { base: i64 },
}

/// The groups of [`IntegerTable::Ordered`]: how many there are, and a byte per group that is
/// set once a key reached it.
///
/// A byte, not a bit: rows of a day's file sorted by user reach a new group every row or two,
/// and a word of 64 groups every few rows. Bits set in memory made each row wait for the store
/// of the row before it; bits gathered in a register per word took a mispredicted branch at
/// every new word (12% of a retention query). A byte per group is one independent store a row,
/// for eight times the bits' memory: a byte beside each accumulator's state of the group.
#[derive(Default)]
struct OrderedGroups {
    groups: usize,
    live: Vec<bool>,
    live_count: usize,
}

impl OrderedGroups {
    fn grow(&mut self, groups: usize) {
        if groups > self.groups {
            self.groups = groups;
            self.live.resize(groups, false);
        }
    }

    #[inline(always)]
    fn reach(&mut self, group: usize) {
        let slot = &mut self.live[group];
        self.live_count += !*slot as usize;
        *slot = true;
    }

    /// Marks `groups` reached.
    fn reach_all(&mut self, groups: &[usize]) {
        for &group in groups {
            self.reach(group);
        }
    }

    /// Whether `group` was reached (groups made after leaving the numbering by key always are).
    fn is_live(&self, group: usize) -> bool {
        group >= self.groups || self.live[group]
    }
}

/// How many rows ahead the direct table's slot is fetched into cache: a table of millions of
/// keys does not fit in cache, and a row's slot is only known from its key.
const PREFETCH_DISTANCE: usize = 16;

/// Integer, date and timestamp keys (see [`IntegerTable`]).
struct IntegerKeys<T: ArrowPrimitiveType> {
    data_type: DataType,
    table: IntegerTable,
    /// The key of each group, in group order (a default value at the NULL group).
    values: Vec<T::Native>,
    null_group: Option<u32>,
    /// Smallest and largest key seen.
    seen: Option<(i64, i64)>,
    /// The groups numbered by key, while the table is [`IntegerTable::Ordered`] (`values` is
    /// then empty) and after (the first `groups` of `values`, some of them holes).
    ordered: Option<OrderedGroups>,
    counts: KeyCounts,
    _type: PhantomData<fn() -> T>,
}

impl<T: ArrowPrimitiveType> IntegerKeys<T>
where
    T::Native: IntegerKey,
{
    fn new(data_type: DataType, counts: KeyCounts) -> Self {
        Self {
            data_type,
            table: IntegerTable::Hashed { map: ShortTable::new(), direct_tried: false },
            values: Vec::new(),
            null_group: None,
            seen: None,
            ordered: None,
            counts,
            _type: PhantomData,
        }
    }

    fn allowed_slots(&self, new_rows: usize) -> i128 {
        (SLOTS_PER_GROUP * (self.values.len() + new_rows) as i128).max(MIN_DIRECT_SLOTS)
    }

    /// How many groups numbering by key may make, holes included, once `new_rows` more rows
    /// are looked up. Every group costs each accumulator its state, but a day's events sorted
    /// by user touch one user id in forty (the days together most of them): so the ids of a
    /// direct table's free size from the start, and more once a sixteenth of them are seen.
    fn ordered_groups_allowed(&self, new_rows: usize) -> i128 {
        let reached = self.ordered.as_ref().map_or(0, |o| o.live_count);
        (HOLES_PER_GROUP * (reached + new_rows) as i128).max(MIN_DIRECT_SLOTS)
    }

    /// Whether `group` holds a key (groups numbered by key leave holes).
    fn is_live(&self, group: usize) -> bool {
        Some(group as u32) != self.null_group && self.ordered.as_ref().is_none_or(|o| o.is_live(group))
    }

    /// The key of each group numbered by key from `base`, holes included.
    fn ordered_values(&self, base: i64) -> Vec<T::Native> {
        let groups = self.ordered.as_ref().map_or(0, |o| o.groups);
        (0..groups as i64).map(|g| T::Native::from_key(base + g)).collect()
    }

    /// Leaves [`IntegerTable::Ordered`] for a direct table over the keys seen: the groups keep
    /// their numbers (holes included), later ones are numbered by first appearance.
    fn leave_ordered(&mut self) {
        let IntegerTable::Ordered { base } = self.table else { return };
        self.values = self.ordered_values(base);
        let mut slots = vec![0; self.values.len()];
        for (group, slot) in slots.iter_mut().enumerate() {
            if self.is_live(group) {
                *slot = group as u32 + 1;
            }
        }
        self.table = IntegerTable::Direct { base, slots };
    }

    /// Takes [`IntegerTable::Ordered`] for a first batch of keys `lo..=hi` (no NULLs) when they
    /// are dense: based at 0 when `lo` is nearer 0 than `hi` (ids numbered from 0 or 1, whose
    /// first batch from a file sorted by them starts a little above the smallest), else at `lo`.
    fn try_ordered(&mut self, lo: i64, hi: i64, rows: usize) -> bool {
        let fresh = self.values.is_empty() && self.null_group.is_none() && self.ordered.is_none();
        if !(T::Native::ORDERED && fresh && matches!(self.table, IntegerTable::Hashed { direct_tried: false, .. })) {
            return false;
        }
        let base = if lo >= 0 && lo as i128 <= hi as i128 - lo as i128 { 0 } else { lo };
        if hi as i128 - base as i128 + 1 > self.ordered_groups_allowed(rows) {
            return false;
        }
        let mut ordered = OrderedGroups::default();
        ordered.grow((hi - base) as usize + 1);
        self.ordered = Some(ordered);
        self.seen = Some((lo, hi));
        self.table = IntegerTable::Ordered { base };
        true
    }

    /// Picks the table for a batch whose keys span `lo..=hi`, before its rows are looked up:
    /// a direct table grows to cover the batch or is given up for a hash table when it would be
    /// too sparse; a hash table becomes direct once the keys seen are dense enough.
    fn prepare(&mut self, lo: i64, hi: i64, rows: usize) {
        if let IntegerTable::Ordered { base } = self.table {
            if lo >= base && (hi as i128 - base as i128) < self.ordered_groups_allowed(rows) {
                self.seen = Some(self.seen.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
                if let Some(o) = &mut self.ordered {
                    o.grow((hi - base) as usize + 1);
                }
                return;
            }
            self.leave_ordered();
        }
        let (seen_lo, seen_hi) = match self.seen {
            Some((a, b)) => (a.min(lo), b.max(hi)),
            None => (lo, hi),
        };
        self.seen = Some((seen_lo, seen_hi));
        let span = seen_hi as i128 - seen_lo as i128 + 1;
        let allowed = self.allowed_slots(rows);
        let allowed_now = self.allowed_slots(0);
        match &mut self.table {
            IntegerTable::Direct { .. } if span > allowed => {
                self.table = IntegerTable::Hashed { map: self.hash_map(), direct_tried: true };
            }
            IntegerTable::Direct { base, slots } => {
                let (old_lo, old_len) = (*base as i128, slots.len() as i128);
                let (need_lo, need_hi) = ((seen_lo as i128).min(old_lo), (seen_hi as i128).max(old_lo + old_len - 1));
                if need_lo < old_lo || need_hi >= old_lo + old_len {
                    // Twice the length (within what is allowed), so that keys that creep up or
                    // down batch by batch (files sorted by the key) do not copy the table each
                    // time; the spare slots go on the side that grew.
                    let needed = need_hi - need_lo + 1;
                    let mut len = needed.max((2 * old_len).min(allowed));
                    let mut new_lo = if need_lo < old_lo { need_hi + 1 - len } else { need_lo };
                    if new_lo < i64::MIN as i128 || new_lo + len - 1 > i64::MAX as i128 {
                        (new_lo, len) = (need_lo, needed);
                    }
                    let mut grown = vec![0; len as usize];
                    let offset = (old_lo - new_lo) as usize;
                    grown[offset..offset + slots.len()].copy_from_slice(slots);
                    *base = new_lo as i64;
                    *slots = grown;
                }
            }
            // Left above.
            IntegerTable::Ordered { .. } => {}
            IntegerTable::Hashed { direct_tried, .. } => {
                if T::Native::ORDERED && !*direct_tried && span <= allowed_now {
                    let mut slots = vec![0; span as usize];
                    for (group, value) in self.values.iter().enumerate() {
                        if self.is_live(group) {
                            slots[(value.key() - seen_lo) as usize] = group as u32 + 1;
                        }
                    }
                    self.table = IntegerTable::Direct { base: seen_lo, slots };
                }
            }
        }
    }

    /// The group of `value`, made if new, counted as `rows` rows looked up.
    fn group_of_one(&mut self, value: T::Native, rows: usize) -> Result<u32> {
        let Self { table, values, counts, ordered, .. } = self;
        match table {
            IntegerTable::Ordered { base } => {
                counts.ordered.add(rows);
                let group = (value.key() - *base) as usize;
                if let Some(o) = ordered {
                    o.reach(group);
                }
                Ok(group as u32)
            }
            IntegerTable::Direct { base, slots } => {
                counts.direct.add(rows);
                direct_group(slots, *base, values, value)
            }
            IntegerTable::Hashed { map, .. } => {
                counts.hashed.add(rows);
                hashed_group(map, values, value)
            }
        }
    }

    fn hash_map(&self) -> ShortTable {
        let mut map = ShortTable::new();
        for (group, value) in self.values.iter().enumerate() {
            if self.is_live(group) {
                if let Err(slot) = map.find(hash_key(value.key())) {
                    map.insert(slot, hash_key(value.key()), group as u32);
                }
            }
        }
        map
    }
}

impl<T: ArrowPrimitiveType> GroupKeys for IntegerKeys<T>
where
    T::Native: IntegerKey,
{
    fn intern(&mut self, keys: &ArrayRef, indices: &mut Vec<usize>) -> Result<()> {
        let array = keys.as_primitive::<T>();
        indices.clear();
        indices.reserve(array.len());
        let nulls = array.nulls().filter(|n| n.null_count() > 0).cloned();
        if nulls.is_some() {
            self.leave_ordered();
        }
        if let (Some(lo), Some(hi)) = (min(array), max(array)) {
            if nulls.is_some() || !self.try_ordered(lo.key(), hi.key(), array.len()) {
                self.prepare(lo.key(), hi.key(), array.len());
            }
            if lo.key() == hi.key() && nulls.is_none() {
                // One key in the whole batch (a join with a calendar, files sorted by the key):
                // one lookup for all its rows.
                let group = self.group_of_one(lo, array.len())?;
                indices.resize(array.len(), group as usize);
                return Ok(());
            }
        }
        let Self { table, values, null_group, counts, ordered, .. } = self;
        match table {
            IntegerTable::Ordered { base } => {
                let (base, ordered) = (*base, ordered.as_mut().expect("ordered groups"));
                indices.extend(array.values().iter().map(|&value| (value.key() - base) as usize));
                ordered.reach_all(indices);
                counts.ordered.add(array.len());
            }
            IntegerTable::Direct { base, slots } => {
                let base = *base;
                let keys = array.values();
                for (i, &value) in keys.iter().enumerate() {
                    if let Some(&ahead) = keys.get(i + PREFETCH_DISTANCE) {
                        prefetch(slots, (ahead.key().wrapping_sub(base)) as usize);
                    }
                    if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                        indices.push(null_group_of(null_group, values)? as usize);
                        continue;
                    }
                    indices.push(direct_group(slots, base, values, value)? as usize);
                }
                counts.direct.add(array.len());
            }
            IntegerTable::Hashed { map, .. } => {
                for (i, &value) in array.values().iter().enumerate() {
                    if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                        indices.push(null_group_of(null_group, values)? as usize);
                        continue;
                    }
                    indices.push(hashed_group(map, values, value)? as usize);
                }
                counts.hashed.add(array.len());
            }
        }
        Ok(())
    }

    fn len(&self) -> usize {
        match (&self.table, &self.ordered) {
            (IntegerTable::Ordered { .. }, Some(o)) => o.groups,
            _ => self.values.len(),
        }
    }

    fn live(&self) -> Option<BooleanBuffer> {
        let o = self.ordered.as_ref().filter(|o| o.live_count < o.groups)?;
        let mut live = BooleanBuffer::from(&o.live[..o.groups]);
        if self.len() > o.groups {
            let later = BooleanBuffer::new_set(self.len() - o.groups);
            live = live.iter().chain(later.iter()).collect();
        }
        Some(live)
    }

    fn emit(&mut self) -> Result<ArrayRef> {
        if let IntegerTable::Ordered { base } = self.table {
            self.values = self.ordered_values(base);
        }
        let values = ScalarBuffer::from(std::mem::take(&mut self.values));
        let nulls = self.null_group.map(|g| {
            let mut valid = vec![true; values.len()];
            valid[g as usize] = false;
            NullBuffer::from(valid)
        });
        Ok(Arc::new(PrimitiveArray::<T>::new(values, nulls).with_data_type(self.data_type.clone())))
    }
}

/// The group of `value` in a direct table based at `base` (which covers it), made if new.
#[inline(always)]
fn direct_group<V: IntegerKey>(slots: &mut [u32], base: i64, values: &mut Vec<V>, value: V) -> Result<u32> {
    let slot = &mut slots[(value.key() - base) as usize];
    if *slot == 0 {
        *slot = next_group(values.len())? + 1;
        values.push(value);
    }
    Ok(*slot - 1)
}

/// The group of `value` in a hash table, made if new.
#[inline(always)]
fn hashed_group<V: IntegerKey>(map: &mut ShortTable, values: &mut Vec<V>, value: V) -> Result<u32> {
    let key = hash_key(value.key());
    match map.find(key) {
        Ok(group) => Ok(group),
        Err(slot) => {
            let group = next_group(values.len())?;
            map.insert(slot, key, group);
            values.push(value);
            Ok(group)
        }
    }
}

/// An integer key as a [`ShortTable`] key (the table hashes the low and high halves together).
#[inline(always)]
fn hash_key(key: i64) -> u128 {
    key as u64 as u128
}

/// The NULL key's group, made on first use.
fn null_group_of<V: Default>(null_group: &mut Option<u32>, values: &mut Vec<V>) -> Result<u32> {
    if let Some(g) = *null_group {
        return Ok(g);
    }
    let g = next_group(values.len())?;
    values.push(V::default());
    *null_group = Some(g);
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Int32Array, Int64Array, StringArray, StringViewArray, TimestampMillisecondArray, UInt64Array,
    };
    use datafusion::physical_plan::metrics::Count;

    fn counts() -> KeyCounts {
        KeyCounts::unshown()
    }

    /// Interns every batch and checks that each row's group holds the row's key in the emitted
    /// keys, that it is not a hole, and that no two groups hold the same key; returns the
    /// emitted keys without the holes.
    fn intern_all(keys: &mut dyn GroupKeys, batches: &[ArrayRef]) -> ArrayRef {
        let mut rows = Vec::new();
        let mut indices = Vec::new();
        for batch in batches {
            keys.intern(batch, &mut indices).unwrap();
            assert_eq!(indices.len(), batch.len());
            rows.extend(indices.iter().enumerate().map(|(i, &g)| (batch.slice(i, 1), g)));
        }
        let groups = keys.len();
        let live = keys.live().unwrap_or_else(|| BooleanBuffer::new_set(groups));
        let emitted = keys.emit().unwrap();
        assert_eq!((emitted.len(), live.len()), (groups, groups));
        for (row, group) in rows {
            assert_eq!(emitted.slice(group, 1).to_data(), row.to_data(), "group {group}");
            assert!(live.value(group), "group {group} of a row is not a hole");
        }
        let emitted = datafusion::arrow::compute::filter(&emitted, &BooleanArray::new(live, None)).unwrap();
        let distinct: HashSet<String> = (0..emitted.len())
            .map(|g| match emitted.is_null(g) {
                true => "NULL".to_string(),
                false => format!("'{}'", datafusion::arrow::util::display::array_value_to_string(&emitted, g).unwrap()),
            })
            .collect();
        assert_eq!(distinct.len(), emitted.len(), "one group per key");
        emitted
    }

    #[test]
    fn short_long_and_null_strings() {
        let first = StringViewArray::from(vec![Some("email"), Some("email"), Some("twelve-bytes"), Some("")]);
        let second = StringViewArray::from(vec![Some("email"), None, Some("twelve-bytes!"), Some(""), None]);
        let mut keys = StringKeys::new(DataType::Utf8View, Count::new());
        let mut indices = Vec::new();
        keys.intern(&(Arc::new(first) as ArrayRef), &mut indices).unwrap();
        assert_eq!(indices, [0, 0, 1, 2]);
        keys.intern(&(Arc::new(second) as ArrayRef), &mut indices).unwrap();
        assert_eq!(indices, [0, 3, 4, 2, 3]);
        let emitted = keys.emit().unwrap();
        let emitted = emitted.as_string_view();
        let expected = [Some("email"), Some("twelve-bytes"), Some(""), None, Some("twelve-bytes!")];
        assert_eq!(emitted.iter().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn many_short_strings_grow_the_table() {
        let batch: ArrayRef = Arc::new(StringViewArray::from_iter_values((0..5000).map(|i| format!("k{}", i % 3000))));
        let mut keys = StringKeys::new(DataType::Utf8View, Count::new());
        let emitted = intern_all(&mut keys, &[batch.clone(), batch]);
        assert_eq!(emitted.len(), 3000);
    }

    #[test]
    fn few_short_strings_each_sit_in_their_first_slot() {
        let names = ["app", "web", "email", "phone", "chat", "sms", "social", "in-store", "partner", "kiosk"];
        let batch: ArrayRef = Arc::new(StringViewArray::from_iter_values((0..1000).map(|i| names[i * 7 % 10])));
        let mut keys = StringKeys::new(DataType::Utf8View, Count::new());
        let mut indices = Vec::new();
        keys.intern(&batch, &mut indices).unwrap();
        assert!(keys.short.perfect);
        for (key, _) in keys.short.entries() {
            assert_eq!(
                keys.short.find(key),
                Ok(keys.short.groups[keys.short.bucket(key)]),
                "{key:x} in its first slot"
            );
        }
        let emitted = intern_all(&mut keys, &[batch]);
        assert_eq!(emitted.len(), 10);
    }

    #[test]
    fn strings_keep_their_type() {
        let batches: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("b"), Some(""), None, Some("customer-account-17"), Some("b")])),
            Arc::new(StringArray::from(vec![Some(""), Some("customer-account-17"), Some("customer-account-18")])),
        ];
        let mut keys = StringKeys::new(DataType::Utf8, Count::new());
        let emitted = intern_all(&mut keys, &batches);
        assert_eq!(emitted.data_type(), &DataType::Utf8);
        assert_eq!(emitted.len(), 5);
    }

    #[test]
    fn dense_integers_move_to_a_direct_table_and_back_when_sparse() {
        let counts = counts();
        let mut keys = IntegerKeys::<Int64Type>::new(DataType::Int64, counts.clone());
        // 30,000 keys 1,000 apart (a span of 30 M, wider than a direct table's free size), then
        // the same keys made dense (every third integer), in a scattered order, in batches of
        // 1,000, with NULLs: sparse keys are hashed; dense ones, once seen, move to a direct table.
        let keyed = |spread: i64| -> Vec<ArrayRef> {
            (0..30)
                .map(|b| {
                    let values = (0..1000).map(|i| {
                        let n = b * 1000 + i;
                        (n % 97 != 0).then_some(1_000_000 + spread * ((n * 7919) % 30_000))
                    });
                    Arc::new(values.collect::<Int64Array>()) as ArrayRef
                })
                .collect()
        };
        let emitted = intern_all(&mut keys, &keyed(1000));
        assert!(matches!(keys.table, IntegerTable::Hashed { direct_tried: false, .. }), "sparse keys are hashed");
        // 30,000 rows, 310 of them NULL (every 97th), each other key once, and the NULL group.
        assert_eq!(emitted.len(), 30_000 - 310 + 1);
        assert_eq!((counts.direct.value(), counts.hashed.value()), (0, 30_000));

        let mut keys = IntegerKeys::<Int64Type>::new(DataType::Int64, counts.clone());
        let dense = keyed(3);
        let emitted = intern_all(&mut keys, &dense);
        assert!(matches!(keys.table, IntegerTable::Direct { .. }), "dense keys are in a direct table");
        assert_eq!(emitted.len(), 30_000 - 310 + 1);
        assert_eq!(counts.direct.value(), 30_000);

        // Keys below the table's base grow it downwards; then one far key gives it up for good.
        let mut keys = IntegerKeys::<Int64Type>::new(DataType::Int64, counts.clone());
        let mut batches = dense.clone();
        batches.push(Arc::new(Int64Array::from_iter_values(990_000..992_000)));
        batches.push(Arc::new(Int64Array::from(vec![5_000_000_000, 990_000, -3])));
        batches.push(dense[3].clone());
        let emitted = intern_all(&mut keys, &batches);
        assert_eq!(emitted.len(), 30_000 - 310 + 1 + 2000 + 2);
        assert!(matches!(keys.table, IntegerTable::Hashed { direct_tried: true, .. }));
    }

    #[test]
    fn sorted_keys_are_grouped_as_runs_and_closed_groups_leave() {
        let rows = Count::new();
        let mut runs = KeyRuns::new(&DataType::Int64, rows.clone());
        let mut indices = Vec::new();
        let keys = |array: ArrayRef| array.as_primitive::<Int64Type>().iter().collect::<Vec<_>>();
        // 1 1 2 3 3: three runs; the last (3) stays open.
        runs.intern(&(Arc::new(Int64Array::from(vec![1, 1, 2, 3, 3])) as ArrayRef), &mut indices).unwrap();
        assert_eq!((indices.clone(), runs.len(), runs.closed()), (vec![0, 0, 1, 2, 2], 3, 2));
        assert_eq!(keys(runs.emit_first(2).unwrap()), [Some(1), Some(2)]);
        // The next batch goes on with 3 (now group 0), then 4, then NULLs (sorted last).
        let next = Int64Array::from(vec![Some(3), Some(4), None, None]);
        runs.intern(&(Arc::new(next) as ArrayRef), &mut indices).unwrap();
        assert_eq!((indices.clone(), runs.len(), runs.closed()), (vec![0, 1, 2, 2], 3, 2));
        assert_eq!(keys(runs.emit_first(2).unwrap()), [Some(3), Some(4)]);
        // A batch of only the open key closes nothing; an empty one changes nothing.
        runs.intern(&(Arc::new(Int64Array::from(vec![None])) as ArrayRef), &mut indices).unwrap();
        assert_eq!((indices.clone(), runs.closed()), (vec![0], 0));
        runs.intern(&(Arc::new(Int64Array::from(Vec::<i64>::new())) as ArrayRef), &mut indices).unwrap();
        assert_eq!((indices.len(), runs.len()), (0, 1));
        assert_eq!(keys(runs.emit().unwrap()), [None]);
        assert_eq!((runs.len(), rows.value()), (0, 10));
        // A partition with no rows ends with no keys, of the key's type.
        let mut empty = KeyRuns::new(&DataType::Int64, Count::new());
        assert_eq!(empty.emit().unwrap().data_type(), &DataType::Int64);
    }

    #[test]
    fn sorted_dense_keys_are_numbered_by_key_and_holes_left_out() {
        let counts = counts();
        let batch = |keys: &[i64]| Arc::new(Int64Array::from(keys.to_vec())) as ArrayRef;
        let mut keys = IntegerKeys::<Int64Type>::new(DataType::Int64, counts.clone());
        let mut indices = Vec::new();
        // Two files sorted by user id: the first starts at 3, nearer 0 than its last key, so
        // groups are numbered from 0; the second goes back to 1.
        for (rows, groups) in
            [(vec![3, 3, 8, 20], vec![3, 3, 8, 20]), (vec![21, 40], vec![21, 40]), (vec![1, 5, 8], vec![1, 5, 8])]
        {
            keys.intern(&batch(&rows), &mut indices).unwrap();
            assert_eq!(indices, groups);
        }
        assert!(matches!(keys.table, IntegerTable::Ordered { base: 0 }));
        assert_eq!(keys.len(), 41);
        let live = keys.live().unwrap();
        assert_eq!(live.set_indices().collect::<Vec<_>>(), [1, 3, 5, 8, 20, 21, 40]);
        assert_eq!((counts.ordered.value(), counts.direct.value()), (9, 0));

        // Through intern_all: the same files, then a NULL, which leaves the numbering by key for a
        // direct table: earlier groups keep their numbers and holes stay holes (a key that was a
        // hole, 2, gets a new group).
        let mut keys = IntegerKeys::<Int64Type>::new(DataType::Int64, counts.clone());
        let with_null: ArrayRef = Arc::new(Int64Array::from(vec![Some(8), None, Some(2), Some(40)]));
        let emitted = intern_all(&mut keys, &[batch(&[3, 3, 8, 20]), batch(&[21, 40]), batch(&[1, 5, 8]), with_null]);
        assert!(matches!(keys.table, IntegerTable::Direct { base: 0, .. }));
        let expected: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(1),
            Some(3),
            Some(5),
            Some(8),
            Some(20),
            Some(21),
            Some(40),
            None,
            Some(2),
        ]));
        assert_eq!(emitted.to_data(), expected.to_data());

        // Keys far from 0 are numbered from the first batch's smallest; one below it leaves.
        let mut keys = IntegerKeys::<Int32Type>::new(DataType::Int32, counts.clone());
        let first: ArrayRef = Arc::new(Int32Array::from(vec![1000, 1001, 1003]));
        keys.intern(&first, &mut indices).unwrap();
        assert_eq!(
            (indices.as_slice(), matches!(keys.table, IntegerTable::Ordered { base: 1000 })),
            ([0, 1, 3].as_slice(), true)
        );
        let mut keys = IntegerKeys::<Int32Type>::new(DataType::Int32, counts.clone());
        let emitted = intern_all(&mut keys, &[first, Arc::new(Int32Array::from(vec![999, 1003]))]);
        assert_eq!(emitted.as_primitive::<Int32Type>().values().to_vec(), [1000, 1001, 1003, 999]);

        // Two keys 5 M apart are still numbered by key; 9 M apart, too sparse, they are hashed.
        let mut keys = IntegerKeys::<Int64Type>::new(DataType::Int64, counts.clone());
        keys.intern(&batch(&[0, 5_000_000]), &mut indices).unwrap();
        assert!(matches!(keys.table, IntegerTable::Ordered { base: 0 }));
        assert_eq!(indices, [0, 5_000_000]);
        let mut keys = IntegerKeys::<Int64Type>::new(DataType::Int64, counts.clone());
        keys.intern(&batch(&[0, 9_000_000]), &mut indices).unwrap();
        assert!(matches!(keys.table, IntegerTable::Hashed { .. }));
        assert_eq!(indices, [0, 1]);
    }

    #[test]
    fn keys_that_creep_upwards_stay_in_a_direct_table() {
        let counts = counts();
        // Numbered by key from the first batch on; with a NULL first, in a direct table.
        for first_null in [false, true] {
            let mut keys = IntegerKeys::<Int32Type>::new(DataType::Int32, counts.clone());
            let mut batches: Vec<ArrayRef> = (0..50)
                .map(|b| Arc::new(Int32Array::from_iter_values(b * 1000..b * 1000 + 1500)) as ArrayRef)
                .collect();
            if first_null {
                batches.insert(0, Arc::new(Int32Array::from(vec![None, Some(7)])));
            }
            let emitted = intern_all(&mut keys, &batches);
            assert_eq!(emitted.len(), 49 * 1000 + 1500 + first_null as usize);
        }
        let counts = (counts.ordered.value(), counts.direct.value(), counts.hashed.value());
        assert_eq!(counts, (50 * 1500, 50 * 1500 + 2, 0));
    }

    #[test]
    fn hashed_keys_move_to_a_direct_table_once_dense() {
        let counts = counts();
        let mut keys = IntegerKeys::<Int64Type>::new(DataType::Int64, counts.clone());
        let mut indices = Vec::new();
        // A first batch 9 M apart (wider than a direct table's free size) is hashed...
        keys.intern(&(Arc::new(Int64Array::from(vec![0, 9_000_000])) as ArrayRef), &mut indices).unwrap();
        assert!(matches!(keys.table, IntegerTable::Hashed { .. }));
        // ...until a quarter of the keys in between have been seen (the table is chosen before
        // each batch: 2,300,002 groups allow 9.2 M slots).
        for b in 0..23 {
            let batch = Int64Array::from_iter_values(b * 100_000 + 1..(b + 1) * 100_000 + 1);
            keys.intern(&(Arc::new(batch) as ArrayRef), &mut indices).unwrap();
        }
        assert!(matches!(keys.table, IntegerTable::Hashed { .. }));
        keys.intern(&(Arc::new(Int64Array::from(vec![9_000_000, 1, 5])) as ArrayRef), &mut indices).unwrap();
        assert!(matches!(keys.table, IntegerTable::Direct { .. }));
        assert_eq!((counts.hashed.value(), counts.direct.value()), (2_300_002, 3));
        assert_eq!(indices, [1, 2, 6]);
    }

    #[test]
    fn a_batch_of_one_key_is_one_lookup() {
        let counts = counts();
        let mut keys = IntegerKeys::<Int64Type>::new(DataType::Int64, counts.clone());
        let month = |m: i64| Arc::new(Int64Array::from(vec![m * 2_600_000_000_000; 700])) as ArrayRef;
        let emitted = intern_all(&mut keys, &[month(1), month(2), month(1), month(3)]);
        assert_eq!(emitted.len(), 3);
        // The first month alone is numbered by key; months a month apart in microseconds are
        // too sparse for that or a direct table.
        assert_eq!((counts.ordered.value(), counts.direct.value(), counts.hashed.value()), (700, 0, 2100));
    }

    #[test]
    fn large_unsigned_keys_stay_hashed() {
        let mut keys = IntegerKeys::<UInt64Type>::new(DataType::UInt64, counts());
        let batch: ArrayRef = Arc::new(UInt64Array::from_iter_values((0..5000).map(|i| u64::MAX - i % 300)));
        let emitted = intern_all(&mut keys, &[batch.clone(), batch]);
        assert_eq!(emitted.len(), 300);
        assert!(matches!(keys.table, IntegerTable::Hashed { .. }));
    }

    #[test]
    fn timestamps_keep_their_time_zone() {
        let data_type = DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into()));
        let mut keys = IntegerKeys::<TimestampMillisecondType>::new(data_type.clone(), counts());
        let batch =
            TimestampMillisecondArray::from(vec![Some(1_000), None, Some(61_000), Some(1_000)]).with_timezone("+02:00");
        let emitted = intern_all(&mut keys, &[Arc::new(batch)]);
        assert_eq!(emitted.data_type(), &data_type);
        assert_eq!(emitted.len(), 3);
    }
}
