//! A physical rule and operator that number sessions in one pass instead of DataFusion's window
//! machinery.
//!
//! `session_id(ts) OVER (PARTITION BY user ORDER BY ts)` is planned by DataFusion as a
//! `SortExec` (sorting batches one by one, then merging thousands of sorted runs through row
//! comparisons) under a `BoundedWindowAggExec` (which keeps state per user and calls the
//! function once per row with scalar values). With millions of users both costs dominate the
//! query. [`OnePassSessions`] replaces that pair with [`SessionNumberExec`], which
//!
//! - when the input is already ordered by (user, ts) — files that declare that order — numbers
//!   the rows as they stream through;
//! - otherwise, with an unlimited memory pool (cxlake's default), holds the partition's rows and
//!   orders them at once: a counting sort on the user key when its values are dense (user ids
//!   usually are), then a sort of each user's few (ts, row) pairs; a comparison sort of packed
//!   keys otherwise. When the rows are only the user and the timestamp (a query that counts
//!   sessions), without NULLs, the batches are not held: each row's timestamp is filed under its
//!   block of users as it arrives ([`FiledRuns`]), each block's users' timestamps are ordered in
//!   cache, and the output columns are rebuilt from them ([`UserRuns`]) rather than gathered row
//!   by row (`rebuilt_rows` in `EXPLAIN ANALYZE`). Those rows are routed to their partitions by
//!   the operator itself, past the hash repartition below it, as that repartition would route
//!   them (`exchanged_rows`);
//! - under a memory limit, lets DataFusion's `SortExec` order the rows (it spills to disk) and
//!   numbers its output.
//!
//! The rule applies only when every window expression of the operator is `session_id` over the
//! same `PARTITION BY` column and `ORDER BY` column ascending, both of integer, date or
//! timestamp type; any other window keeps DataFusion's plan. Numbering is shared with the window
//! function ([`crate::web::SessionRun`]), so both give the same session numbers.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{
    make_array, Array, ArrayData, ArrayRef, ArrowPrimitiveType, AsArray, Int64Array, RecordBatch, UInt32Array,
};
use datafusion::arrow::buffer::{Buffer, NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::{interleave_record_batch, take_record_batch, SortOptions};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Field, Int16Type, Int32Type, Int64Type, Int8Type, Schema, SchemaRef, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type,
    UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::hash_utils::create_hashes;
use datafusion::common::runtime::SpawnedTask;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{internal_err, DataFusionError, Result};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryLimit, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::window::StandardWindowExpr;
use datafusion::physical_expr::{EquivalenceProperties, LexOrdering, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::execution_plan::EmissionType;
use datafusion::physical_plan::metrics::{Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::repartition::{RepartitionExec, REPARTITION_RANDOM_STATE};
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowUDFExpr};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning, PlanProperties,
};
use futures::future::{FutureExt, Shared, TryFutureExt};
use futures::{SinkExt, StreamExt, TryStreamExt};

use crate::common::rewrite_bottom_up;
use crate::common::time::{raw_ticks, type_ticks_per_second};
use crate::web::{session_gap_ticks, SessionIdFunction, SessionRun};

/// Replaces `BoundedWindowAggExec[session_id ...] ← SortExec(user, ts)` (or the window alone
/// over input already ordered by (user, ts)) with [`SessionNumberExec`].
#[derive(Debug, Default)]
pub struct OnePassSessions;

impl OnePassSessions {
    pub const NAME: &'static str = "cxlake_one_pass_sessions";

    fn rewrite(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(window) = plan.downcast_ref::<BoundedWindowAggExec>() else { return Ok(None) };
        let Some(shape) = SessionWindow::of(window)? else { return Ok(None) };
        let child = window.input();
        let (input, partition_options, sorted) = match child.downcast_ref::<SortExec>() {
            Some(sort) => {
                let single = sort.input().output_partitioning().partition_count() <= 1;
                let keys: Vec<&PhysicalSortExpr> = sort.expr().iter().collect();
                let [p, o] = keys[..] else { return Ok(None) };
                let applies = sort.fetch().is_none()
                    && (sort.preserve_partitioning() || single)
                    && column_index(&p.expr) == Some(shape.partition)
                    && column_index(&o.expr) == Some(shape.order)
                    && o.options == shape.order_options;
                if !applies {
                    return Ok(None);
                }
                (Arc::clone(sort.input()), p.options, false)
            }
            None => {
                let Ok(keys) = window.partition_by_sort_keys() else { return Ok(None) };
                let [p] = &keys[..] else { return Ok(None) };
                if column_index(&p.expr) != Some(shape.partition) {
                    return Ok(None);
                }
                let ordering = shape.ordering(child.schema().as_ref(), p.options)?;
                if !child.equivalence_properties().ordering_satisfy(ordering)? {
                    return Ok(None);
                }
                (Arc::clone(child), p.options, true)
            }
        };
        let names = window.schema().fields()[input.schema().fields().len()..]
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>();
        let exec = SessionNumberExec::try_new(input, shape, partition_options, names, sorted)?;
        // Keep DataFusion's plan unless this one promises at least the order the window did.
        if let Some(ordering) = plan.output_ordering() {
            if !exec.properties.equivalence_properties().ordering_satisfy(ordering.clone())? {
                return Ok(None);
            }
        }
        Ok(Some(Arc::new(exec)))
    }
}

impl PhysicalOptimizerRule for OnePassSessions {
    fn optimize(&self, plan: Arc<dyn ExecutionPlan>, _config: &ConfigOptions) -> Result<Arc<dyn ExecutionPlan>> {
        rewrite_bottom_up(plan, Self::rewrite)
    }

    fn name(&self) -> &str {
        Self::NAME
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn column_index(expr: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    let any: &dyn std::any::Any = expr.as_ref();
    any.downcast_ref::<Column>().map(Column::index)
}

/// Integer, date and timestamp columns: the key types ordered here by their raw values.
fn fixed_width_key(t: &DataType) -> bool {
    use DataType::*;
    matches!(t, Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 | Date32 | Date64 | Timestamp(_, _))
}

/// What [`SessionNumberExec`] needs of the window: the input columns it partitions and orders
/// by, and each `session_id`'s timestamp column and gap.
#[derive(Debug, Clone, PartialEq)]
struct SessionWindow {
    partition: usize,
    order: usize,
    order_options: SortOptions,
    sessions: Vec<SessionColumn>,
}

/// One `session_id(ts, gap)`: the input column of `ts` and the gap in its ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SessionColumn {
    ts: usize,
    gap: i64,
}

impl SessionWindow {
    fn of(window: &BoundedWindowAggExec) -> Result<Option<Self>> {
        let schema = window.input().schema();
        let mut shape: Option<SessionWindow> = None;
        for expr in window.window_expr() {
            let Some(standard) = expr.as_any().downcast_ref::<StandardWindowExpr>() else { return Ok(None) };
            let Some(udwf) = standard.get_standard_func_expr().as_any().downcast_ref::<WindowUDFExpr>() else {
                return Ok(None);
            };
            if udwf.fun().inner().downcast_ref::<SessionIdFunction>().is_none() {
                return Ok(None);
            }
            let (Some(ts), [p], [o]) = (udwf.args().first(), expr.partition_by(), expr.order_by()) else {
                return Ok(None);
            };
            let (Some(ts), Some(partition), Some(order)) = (column_index(ts), column_index(p), column_index(&o.expr))
            else {
                return Ok(None);
            };
            let ts_type = schema.field(ts).data_type();
            if !matches!(ts_type, DataType::Timestamp(_, _))
                || !fixed_width_key(schema.field(partition).data_type())
                || !fixed_width_key(schema.field(order).data_type())
                || o.options.descending
            {
                return Ok(None);
            }
            let gap = session_gap_ticks(udwf.args().get(1), ts_type)?;
            let column = SessionColumn { ts, gap };
            match &mut shape {
                None => {
                    shape = Some(SessionWindow { partition, order, order_options: o.options, sessions: vec![column] })
                }
                Some(s) if s.partition == partition && s.order == order && s.order_options == o.options => {
                    s.sessions.push(column)
                }
                Some(_) => return Ok(None),
            }
        }
        Ok(shape)
    }

    /// The order rows are numbered in: partition key (with `partition_options`), then ts.
    fn ordering(&self, schema: &Schema, partition_options: SortOptions) -> Result<LexOrdering> {
        let key = |index: usize, options| -> Result<PhysicalSortExpr> {
            Ok(PhysicalSortExpr::new(Arc::new(Column::new(schema.field(index).name(), index)), options))
        };
        let keys = [key(self.partition, partition_options)?, key(self.order, self.order_options)?];
        LexOrdering::new(keys).ok_or_else(|| DataFusionError::Internal("session ordering is empty".into()))
    }
}

/// Numbers the sessions of each (user) partition in one pass over rows ordered by (user, ts);
/// see the module documentation for how it orders them.
#[derive(Debug)]
pub struct SessionNumberExec {
    input: Arc<dyn ExecutionPlan>,
    window: SessionWindow,
    partition_options: SortOptions,
    /// Whether the input already arrives ordered by (user, ts).
    input_sorted: bool,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    /// Rows ordered in memory (`in_memory_sorted_rows`) or by DataFusion's sort under a memory
    /// limit (`sort_exec_sorted_rows`), as `EXPLAIN ANALYZE` shows.
    metrics: ExecutionPlanMetricsSet,
    /// The rows of every output partition, when this operator routes them itself past a hash
    /// repartition below it (see [`Self::exchange_read_past`]).
    exchange: SharedExchange,
}

impl SessionNumberExec {
    /// `names` are the output names of the session columns, appended to the input's columns.
    fn try_new(
        input: Arc<dyn ExecutionPlan>,
        window: SessionWindow,
        partition_options: SortOptions,
        names: Vec<String>,
        input_sorted: bool,
    ) -> Result<Self> {
        if names.len() != window.sessions.len() {
            return internal_err!("session_id: {} output names for {} sessions", names.len(), window.sessions.len());
        }
        let input_schema = input.schema();
        let mut fields = input_schema.fields().to_vec();
        fields.extend(names.iter().map(|n| Arc::new(Field::new(n, DataType::Int64, true))));
        let schema = Arc::new(Schema::new_with_metadata(fields, input_schema.metadata().clone()));
        let ordering = window.ordering(&input_schema, partition_options)?;
        let mut eq = EquivalenceProperties::new(Arc::clone(&schema)).extend(input.equivalence_properties().clone())?;
        let emission = if input_sorted {
            eq.add_ordering(ordering);
            input.pipeline_behavior()
        } else {
            // The rows come out in a new order: what the input's order implied no longer holds.
            eq.reorder(ordering)?;
            EmissionType::Final
        };
        let properties = PlanProperties::new(eq, input.output_partitioning().clone(), emission, input.boundedness());
        let properties = Arc::new(properties);
        let metrics = ExecutionPlanMetricsSet::new();
        let exchange = SharedExchange::default();
        Ok(Self { input, window, partition_options, input_sorted, schema, properties, metrics, exchange })
    }

    /// The input and partition count of the hash repartition by user below this operator, when
    /// the in-memory way reads past it and routes the rows itself (`exchanged_rows` in
    /// `EXPLAIN ANALYZE`).
    ///
    /// The repartition copies every row into new batches for its output partition, which are
    /// then filed and dropped; routing each row straight to its partition's filed rows skips
    /// that copy and its memory. Rows go to the partitions the repartition would send them to
    /// (the same hash of the user, modulo the same count), so the output partitioning it
    /// declares holds. Only for rows that are filed ([`FiledRuns`]): the rest are held as
    /// batches anyway.
    fn exchange_read_past(&self) -> Option<(Arc<dyn ExecutionPlan>, usize)> {
        let repartition = self.input.downcast_ref::<RepartitionExec>()?;
        let Partitioning::Hash(exprs, partitions) = repartition.partitioning() else { return None };
        let [user] = &exprs[..] else { return None };
        let applies = column_index(user) == Some(self.window.partition)
            && !repartition.preserve_order()
            && Collected::fileable(&self.window, &self.input.schema());
        applies.then(|| (Arc::clone(repartition.input()), *partitions))
    }

    /// The rows of every partition, routed from `input` once per query (`context`) and shared
    /// by the partitions' streams.
    fn exchanged(
        &self,
        input: Arc<dyn ExecutionPlan>,
        partitions: usize,
        context: &Arc<TaskContext>,
        exchanged_rows: Count,
    ) -> Routing {
        let mut state = self.exchange.0.lock().expect("exchange state");
        if let Some((query, exchanged)) = state.as_ref() {
            if std::ptr::eq(query.as_ptr(), Arc::as_ptr(context)) && query.strong_count() > 0 {
                return exchanged.clone();
            }
        }
        let (window, options) = (self.window.clone(), self.partition_options);
        let routing = route_rows(input, partitions, window, options, Arc::clone(context), exchanged_rows);
        let exchanged = routing.map_ok(Arc::new).map_err(Arc::new).boxed().shared();
        *state = Some((Arc::downgrade(context), exchanged.clone()));
        exchanged
    }

    fn names(&self) -> Vec<String> {
        self.schema.fields()[self.input.schema().fields().len()..].iter().map(|f| f.name().clone()).collect()
    }

    /// The bytes a cluster codec sends for this operator (its input travels separately).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = CODEC_MAGIC.to_vec();
        let w = &self.window;
        let flags = [
            self.partition_options.descending,
            self.partition_options.nulls_first,
            w.order_options.nulls_first,
            self.input_sorted,
        ];
        for n in [w.partition as u64, w.order as u64, flags.iter().fold(0u64, |acc, &f| acc << 1 | f as u64)] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&(w.sessions.len() as u64).to_le_bytes());
        let names = self.names();
        for (s, name) in w.sessions.iter().zip(&names) {
            out.extend_from_slice(&(s.ts as u64).to_le_bytes());
            out.extend_from_slice(&s.gap.to_le_bytes());
            out.extend_from_slice(&(name.len() as u64).to_le_bytes());
        }
        for name in names {
            out.extend_from_slice(name.as_bytes());
        }
        out
    }

    /// The operator [`Self::to_bytes`] wrote, over `input`; `None` when `buf` is not one.
    pub fn from_bytes(buf: &[u8], input: Arc<dyn ExecutionPlan>) -> Result<Option<Self>> {
        let Some(mut rest) = buf.strip_prefix(CODEC_MAGIC) else { return Ok(None) };
        let bad = || DataFusionError::Internal("session_id: truncated one-pass session plan".into());
        let mut word = || -> Result<u64> {
            let (head, tail) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
            rest = tail;
            Ok(u64::from_le_bytes(*head))
        };
        let (partition, order, flags, count) = (word()? as usize, word()? as usize, word()?, word()?);
        let flag = |bit: u32| flags >> bit & 1 == 1;
        let mut sessions = Vec::new();
        let mut lengths = Vec::new();
        for _ in 0..count {
            sessions.push(SessionColumn { ts: word()? as usize, gap: word()? as i64 });
            lengths.push(word()? as usize);
        }
        let mut names = Vec::new();
        let mut text = rest;
        for len in lengths {
            let (name, tail) = text.split_at_checked(len).ok_or_else(bad)?;
            names.push(String::from_utf8(name.to_vec()).map_err(|e| DataFusionError::Internal(e.to_string()))?);
            text = tail;
        }
        let order_options = SortOptions { descending: false, nulls_first: flag(1) };
        let partition_options = SortOptions { descending: flag(3), nulls_first: flag(2) };
        let window = SessionWindow { partition, order, order_options, sessions };
        Self::try_new(input, window, partition_options, names, flag(0)).map(Some)
    }
}

const CODEC_MAGIC: &[u8] = b"cxlake.session_number.v1\0";

impl DisplayAs for SessionNumberExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let schema = self.input.schema();
        let w = &self.window;
        let gaps = w.sessions.iter().map(|s| {
            let field = schema.field(s.ts);
            let per_second = type_ticks_per_second(field.data_type(), "session_id").unwrap_or(1);
            format!("{}@{} gap {} s", field.name(), s.ts, s.gap as f64 / per_second as f64)
        });
        write!(
            f,
            "SessionNumberExec: partition={}@{}, order={}@{}, sessions=[{}], input={}",
            schema.field(w.partition).name(),
            w.partition,
            schema.field(w.order).name(),
            w.order,
            gaps.collect::<Vec<_>>().join(", "),
            if self.input_sorted { "sorted" } else { "unsorted" }
        )
    }
}

impl ExecutionPlan for SessionNumberExec {
    fn name(&self) -> &str {
        "SessionNumberExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![self.input_sorted]
    }

    fn with_new_children(self: Arc<Self>, mut children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return internal_err!("SessionNumberExec takes one input, not {}", children.len());
        }
        let input = children.swap_remove(0);
        let exec = Self::try_new(input, self.window.clone(), self.partition_options, self.names(), self.input_sorted)?;
        Ok(Arc::new(exec))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> Result<SendableRecordBatchStream> {
        let input_schema = self.input.schema();
        let counter = |name: &'static str| MetricBuilder::new(&self.metrics).counter(name, partition);
        let ordered = if self.input_sorted {
            self.input.execute(partition, context)?
        } else if !matches!(context.memory_pool().memory_limit(), MemoryLimit::Infinite) {
            let rows = counter("sort_exec_sorted_rows");
            let ordering = self.window.ordering(&input_schema, self.partition_options)?;
            let sort = SortExec::new(ordering, Arc::clone(&self.input)).with_preserve_partitioning(true);
            let sorted = sort.execute(partition, context)?.inspect_ok(move |batch| rows.add(batch.num_rows()));
            Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&input_schema), sorted))
        } else {
            let (rows, rebuilt) = (counter("in_memory_sorted_rows"), counter("rebuilt_rows"));
            let batch_size = context.session_config().batch_size();
            let (window, options, schema) = (self.window.clone(), self.partition_options, Arc::clone(&self.schema));
            let collecting: futures::future::BoxFuture<'static, Result<Collected>> = match self.exchange_read_past() {
                Some((exchange_input, partitions)) => {
                    let exchanged = self.exchanged(exchange_input, partitions, &context, counter("exchanged_rows"));
                    Box::pin(async move {
                        let collected = exchanged.await.map_err(DataFusionError::Shared)?.take(partition);
                        yield_once().await;
                        collected
                    })
                }
                None => {
                    let mut input = self.input.execute(partition, Arc::clone(&context))?;
                    let reservation =
                        MemoryConsumer::new(format!("SessionNumberExec[{partition}]")).register(context.memory_pool());
                    let mut collected = Collected::new(&window, input_schema, options, reservation);
                    Box::pin(async move {
                        while let Some(batch) = input.next().await {
                            collected.push(&batch?, None)?;
                        }
                        Ok(collected)
                    })
                }
            };
            let numbered = futures::stream::once(async move {
                let collected = collecting.await?;
                rows.add(collected.rows());
                let out = in_memory_sessions(collected, window, options, schema, batch_size, rebuilt)?;
                Ok::<_, DataFusionError>(futures::stream::iter(out))
            })
            .try_flatten();
            return Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), numbered)));
        };
        let mut numbering = Numbering::new(&self.window, Arc::clone(&self.schema));
        let out = ordered.map(move |batch| numbering.number(&batch?));
        Ok(Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), out)))
    }
}

/// Native values of the key types and their order-preserving 64-bit keys: signed values have
/// their sign bit flipped, so unsigned comparison of keys orders them as the values.
trait OrderKey: Copy + Send + Sync + 'static {
    fn order_key(self) -> u64;
    fn from_order_key(key: u64) -> Self;
}

macro_rules! order_key {
    (signed: $($t:ty),*) => {$(
        impl OrderKey for $t {
            fn order_key(self) -> u64 {
                (self as i64 as u64) ^ (1 << 63)
            }
            fn from_order_key(key: u64) -> Self {
                (key ^ (1 << 63)) as i64 as $t
            }
        }
    )*};
    (unsigned: $($t:ty),*) => {$(
        impl OrderKey for $t {
            fn order_key(self) -> u64 {
                self as u64
            }
            fn from_order_key(key: u64) -> Self {
                key as $t
            }
        }
    )*};
}
order_key!(signed: i8, i16, i32, i64);
order_key!(unsigned: u8, u16, u32, u64);

/// Runs `$body` with `$t` the Arrow type of a key column of type `$data_type` (see
/// [`fixed_width_key`]), or `$other` for any other type.
macro_rules! with_key_type {
    ($data_type:expr, $t:ident => $body:expr, $other:ident => $fallback:expr) => {
        with_key_type!(@arms $data_type, $t, $body, $other, $fallback, [
            DataType::Int8 => Int8Type,
            DataType::Int16 => Int16Type,
            DataType::Int32 => Int32Type,
            DataType::Int64 => Int64Type,
            DataType::UInt8 => UInt8Type,
            DataType::UInt16 => UInt16Type,
            DataType::UInt32 => UInt32Type,
            DataType::UInt64 => UInt64Type,
            DataType::Date32 => Date32Type,
            DataType::Date64 => Date64Type,
            DataType::Timestamp(TimeUnit::Second, _) => TimestampSecondType,
            DataType::Timestamp(TimeUnit::Millisecond, _) => TimestampMillisecondType,
            DataType::Timestamp(TimeUnit::Microsecond, _) => TimestampMicrosecondType,
            DataType::Timestamp(TimeUnit::Nanosecond, _) => TimestampNanosecondType,
        ])
    };
    (@arms $data_type:expr, $t:ident, $body:expr, $other:ident, $fallback:expr, [$($pattern:pat => $arrow:ty,)*]) => {
        match $data_type {
            $($pattern => {
                type $t = $arrow;
                $body
            })*
            $other => $fallback,
        }
    };
}

/// Order-preserving 64-bit keys of a key column's values (NULL slots hold arbitrary keys).
fn order_keys(array: &ArrayRef, descending: bool) -> Result<Vec<u64>> {
    let mask = if descending { u64::MAX } else { 0 };
    with_key_type!(
        array.data_type(),
        T => Ok(array.as_primitive::<T>().values().iter().map(|v| v.order_key() ^ mask).collect()),
        other => internal_err!("session_id: cannot order rows by a {other} key")
    )
}

/// A row to place within its partition, packed so that one integer comparison orders it: the
/// NULL rank of its ts (NULLS FIRST or LAST) in bits 96..98, the ts key in bits 32..96 and where
/// the row is held (batch, then row in the batch: see [`HeldRows`]) in bits 0..32, so equal
/// timestamps keep their input order.
type Placed = u128;

/// A partition's rows as the batches they arrived in (not copied into one): a row is addressed
/// by 32 bits, the batch number above `row_bits` and the row within the batch below.
struct HeldRows {
    batches: Vec<RecordBatch>,
    row_bits: u32,
}

impl HeldRows {
    fn new(batches: Vec<RecordBatch>) -> Result<Self> {
        let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        let longest = batches.iter().map(RecordBatch::num_rows).max().unwrap_or(1);
        let row_bits = longest.next_power_of_two().trailing_zeros();
        if row_bits >= 32 || batches.len() > 1 << (32 - row_bits) {
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            return internal_err!(
                "session_id: {rows} rows in {} batches in one partition is more than the one-pass plan holds; \
                 raise datafusion.execution.target_partitions, or set a memory limit so rows are sorted on disk",
                batches.len()
            );
        }
        Ok(Self { batches, row_bits })
    }

    fn address(&self, batch: usize, row: usize) -> u128 {
        ((batch as u128) << self.row_bits) | row as u128
    }

    /// The (batch, row) a placed row is held at.
    fn locate(&self, placed: Placed) -> (usize, usize) {
        let address = placed as u32;
        ((address >> self.row_bits) as usize, (address & ((1 << self.row_bits) - 1)) as usize)
    }

    /// The rows at `placed`, in that order, as one batch.
    fn take(&self, placed: &[Placed]) -> Result<RecordBatch> {
        let indices: Vec<(usize, usize)> = placed.iter().map(|&p| self.locate(p)).collect();
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        Ok(interleave_record_batch(&batches, &indices)?)
    }
}

/// Calls `f` with every held row's partition key (`None` for NULL) and placed value, batch by
/// batch.
fn for_each_row(
    held: &HeldRows,
    window: &SessionWindow,
    partition_options: SortOptions,
    mut f: impl FnMut(Option<u64>, Placed),
) -> Result<()> {
    let null_ts_rank: u128 = if window.order_options.nulls_first { 0 } else { 2 };
    for (b, batch) in held.batches.iter().enumerate() {
        let users = batch.column(window.partition);
        let (keys, nulls) = (order_keys(users, partition_options.descending)?, users.logical_nulls());
        let ts = batch.column(window.order);
        let (ts_keys, ts_nulls) = (order_keys(ts, false)?, ts.logical_nulls());
        for (row, (&key, &ts_key)) in keys.iter().zip(&ts_keys).enumerate() {
            let rank = if ts_nulls.as_ref().is_some_and(|n| n.is_null(row)) { null_ts_rank } else { 1 };
            let placed = rank << 96 | (ts_key as u128) << 32 | held.address(b, row);
            f(nulls.as_ref().is_none_or(|n| n.is_valid(row)).then_some(key), placed);
        }
    }
    Ok(())
}

/// The order of the held rows by (partition key, ts) as the window requires it. Each pass reads
/// the batches again instead of keeping per-row keys: memory beyond the rows is the placed rows
/// (16 bytes each) and, for dense keys, one counter per key value.
fn session_order(held: &HeldRows, window: &SessionWindow, partition_options: SortOptions) -> Result<Vec<Placed>> {
    let users = |batch: &RecordBatch| -> Result<(Vec<u64>, Option<NullBuffer>)> {
        let column = batch.column(window.partition);
        Ok((order_keys(column, partition_options.descending)?, column.logical_nulls()))
    };
    let (mut lo, mut hi, mut keyed) = (u64::MAX, 0u64, 0usize);
    for batch in &held.batches {
        let (keys, nulls) = users(batch)?;
        for (row, &key) in keys.iter().enumerate() {
            if nulls.as_ref().is_none_or(|n| n.is_valid(row)) {
                (lo, hi, keyed) = (lo.min(key), hi.max(key), keyed + 1);
            }
        }
    }
    let mut null_users = Vec::new();
    let placed = if keyed > 0 && hi - lo <= 2 * keyed as u64 + 4096 {
        // Dense keys: one bucket per key value, then each user's few rows sorted by ts.
        let buckets = (hi - lo) as usize + 1;
        let mut bounds = vec![0u32; buckets + 1];
        for batch in &held.batches {
            let (keys, nulls) = users(batch)?;
            for (row, &key) in keys.iter().enumerate() {
                if nulls.as_ref().is_none_or(|n| n.is_valid(row)) {
                    bounds[(key - lo) as usize + 1] += 1;
                }
            }
        }
        for b in 1..=buckets {
            bounds[b] += bounds[b - 1];
        }
        let mut fill = bounds.clone();
        let mut placed: Vec<Placed> = vec![0; keyed];
        for_each_row(held, window, partition_options, |key, p| match key {
            Some(key) => {
                let slot = &mut fill[(key - lo) as usize];
                placed[*slot as usize] = p;
                *slot += 1;
            }
            None => null_users.push(p),
        })?;
        for b in 0..buckets {
            let run = &mut placed[bounds[b] as usize..bounds[b + 1] as usize];
            if run.len() > 1 {
                run.sort_unstable();
            }
        }
        placed
    } else {
        let mut wide: Vec<(u64, Placed)> = Vec::with_capacity(keyed);
        for_each_row(held, window, partition_options, |key, p| match key {
            Some(key) => wide.push((key, p)),
            None => null_users.push(p),
        })?;
        wide.sort_unstable();
        wide.into_iter().map(|(_, p)| p).collect()
    };
    if null_users.is_empty() {
        return Ok(placed);
    }
    null_users.sort_unstable();
    let (first, last) = if partition_options.nulls_first { (null_users, placed) } else { (placed, null_users) };
    Ok(first.into_iter().chain(last).collect())
}

/// A block of users spans this many consecutive order keys (the low bits of a key): a block's
/// rows are ordered in buffers that stay in cache (about 16 K users of a partition, 5 events
/// each, are under 1 MiB).
const BLOCK_BITS: u32 = 15;

/// A block with fewer rows than this sorts (key, ts) pairs instead of counting into a bucket
/// per key of the block.
const SMALL_BLOCK: usize = (1 << BLOCK_BITS) / 8;

/// Rows a block files in one piece of memory: a block grows a chunk at a time, not by doubling
/// (which would leave up to half of each block's memory unused and copy it as it grows).
const CHUNK_ROWS: usize = 4096;

/// The rows of one block of users as they arrived, in chunks of [`CHUNK_ROWS`] rows: each row's
/// key below [`BLOCK_BITS`] and its timestamp.
#[derive(Default)]
struct Block {
    chunks: Vec<(Vec<u16>, Vec<i64>)>,
    rows: usize,
}

impl Block {
    fn extend(&mut self, mut low: impl Iterator<Item = u16>, mut ts: &[i64]) {
        self.rows += ts.len();
        while !ts.is_empty() {
            if self.chunks.last().is_none_or(|(_, t)| t.len() == CHUNK_ROWS) {
                self.chunks.push((Vec::with_capacity(CHUNK_ROWS), Vec::with_capacity(CHUNK_ROWS)));
            }
            let (chunk_low, chunk_ts) = self.chunks.last_mut().expect("a chunk");
            let (now, rest) = ts.split_at((CHUNK_ROWS - chunk_ts.len()).min(ts.len()));
            chunk_low.extend(low.by_ref().take(now.len()));
            chunk_ts.extend_from_slice(now);
            ts = rest;
        }
    }

    /// Each row's key below [`BLOCK_BITS`] and its timestamp, in the order filed.
    fn rows(&self) -> impl Iterator<Item = (u16, i64)> + '_ {
        self.chunks.iter().flat_map(|(low, ts)| low.iter().copied().zip(ts.iter().copied()))
    }
}

/// A partition's (user, ts) rows filed as they arrive, so that the batches they came in need
/// not be held: by block of users while the keys span few enough blocks, else as (key, ts)
/// pairs.
enum Filed {
    /// `blocks[i]` holds the keys from `(first_block + i) << BLOCK_BITS` on.
    Blocks {
        first_block: u64,
        blocks: Vec<Block>,
    },
    Pairs(Vec<(u64, i64)>),
}

/// Keys spread over more blocks than this (for `rows` rows filed) are filed as pairs: an empty
/// block costs 32 bytes.
fn most_blocks(rows: usize) -> u64 {
    4096 + rows as u64 / 8
}

/// A partition whose rows are only the partition key and the timestamp the sessions are
/// numbered by, with no NULLs, filed as it arrives ([`Filed`]); the output is rebuilt from each
/// user's sorted timestamps ([`UserRuns`]) a block at a time.
///
/// Holding the input batches and ordering all of a partition's rows at once wrote every
/// timestamp to a buffer as large as the partition and kept both: fresh memory the kernel
/// zeroes page by page (on these machines slower than the ordering itself whenever it was
/// returned between queries). Filed rows take 10 bytes each; a block is ordered in cache and
/// its memory goes to the output batches once it is out.
struct FiledRuns<T: ArrowPrimitiveType> {
    partition: usize,
    order: usize,
    /// Flips the order keys of a descending partition, so that ascending keys are the output
    /// order.
    mask: u64,
    filed: Filed,
    rows: usize,
    /// The users and timestamps of the rows of a batch routed here, gathered to be filed.
    gathered: (Vec<T::Native>, Vec<i64>),
}

impl<T: ArrowPrimitiveType> FiledRuns<T>
where
    T::Native: OrderKey,
{
    fn new(window: &SessionWindow, descending: bool) -> Self {
        let mask = if descending { u64::MAX } else { 0 };
        let filed = Filed::Blocks { first_block: 0, blocks: Vec::new() };
        let (partition, order, rows, gathered) = (window.partition, window.order, 0, (Vec::new(), Vec::new()));
        Self { partition, order, mask, filed, rows, gathered }
    }

    /// Files `batch`'s rows, or only those at `rows`; `false` (nothing filed) when the batch has
    /// a NULL user or timestamp, or the partition would pass `u32::MAX` rows.
    fn file(&mut self, batch: &RecordBatch, rows: Option<&[u32]>) -> Result<bool> {
        let (users, ts) = (batch.column(self.partition), batch.column(self.order));
        let count = rows.map_or(batch.num_rows(), <[u32]>::len);
        if users.logical_null_count() > 0 || ts.logical_null_count() > 0 || self.rows + count > u32::MAX as usize {
            return Ok(false);
        }
        let users = users.as_primitive::<T>().values();
        let (ticks, _) = raw_ticks(ts, "session_id")?;
        let Some(rows) = rows else {
            self.file_values(users, ticks.values());
            return Ok(true);
        };
        let (mut gathered_users, mut gathered_ticks) = std::mem::take(&mut self.gathered);
        gathered_users.clear();
        gathered_users.extend(rows.iter().map(|&r| users[r as usize]));
        gathered_ticks.clear();
        gathered_ticks.extend(rows.iter().map(|&r| ticks.values()[r as usize]));
        self.file_values(&gathered_users, &gathered_ticks);
        self.gathered = (gathered_users, gathered_ticks);
        Ok(true)
    }

    fn file_values(&mut self, users: &[T::Native], ticks: &[i64]) {
        let mask = self.mask;
        self.rows += users.len();
        let Filed::Blocks { first_block, blocks } = &mut self.filed else {
            let Filed::Pairs(pairs) = &mut self.filed else { unreachable!() };
            pairs.extend(users.iter().zip(ticks).map(|(v, &t)| (v.order_key() ^ mask, t)));
            return;
        };
        let mut row = 0;
        while row < users.len() {
            // Rows of a batch from a file sorted by user come in long runs of one block.
            let block = (users[row].order_key() ^ mask) >> BLOCK_BITS;
            let run = users[row..].iter().position(|v| (v.order_key() ^ mask) >> BLOCK_BITS != block);
            let end = run.map_or(users.len(), |n| row + n);
            if blocks.is_empty() {
                *first_block = block;
            }
            let last = *first_block + blocks.len() as u64;
            let span = last.max(block + 1) - (*first_block).min(block);
            if span > most_blocks(self.rows) {
                self.file_as_pairs();
                let Filed::Pairs(pairs) = &mut self.filed else { unreachable!() };
                pairs.extend(users[row..].iter().zip(&ticks[row..]).map(|(v, &t)| (v.order_key() ^ mask, t)));
                return;
            }
            if block < *first_block {
                // Room below too, so that keys arriving in descending order do not move every
                // block each time.
                let room = (blocks.len() as u64).min(most_blocks(self.rows) - span).min(block);
                let before = (*first_block - block + room) as usize;
                blocks.splice(0..0, std::iter::repeat_with(Block::default).take(before));
                *first_block = block - room;
            } else if block >= last {
                blocks.resize_with((block - *first_block) as usize + 1, Block::default);
            }
            let low_bits = (1u64 << BLOCK_BITS) - 1;
            let low = users[row..end].iter().map(|v| ((v.order_key() ^ mask) & low_bits) as u16);
            blocks[(block - *first_block) as usize].extend(low, &ticks[row..end]);
            row = end;
        }
    }

    /// Adds `other`'s rows after these: its blocks' chunks after this one's (no row is copied)
    /// while the blocks of both span few enough, else as pairs.
    fn append(&mut self, mut other: Self) {
        self.rows += other.rows;
        if let (Filed::Blocks { first_block: a, blocks: mine }, Filed::Blocks { first_block: b, blocks: theirs }) =
            (&mut self.filed, &mut other.filed)
        {
            if theirs.is_empty() {
                return;
            }
            if mine.is_empty() {
                (*a, *mine) = (*b, std::mem::take(theirs));
                return;
            }
            let (lo, hi) = ((*a).min(*b), (*a + mine.len() as u64).max(*b + theirs.len() as u64));
            if hi - lo <= most_blocks(self.rows) {
                let mut merged: Vec<Block> = std::iter::repeat_with(Block::default).take((hi - lo) as usize).collect();
                for (i, block) in mine.drain(..).enumerate() {
                    merged[(*a - lo) as usize + i] = block;
                }
                for (i, block) in theirs.drain(..).enumerate() {
                    let into = &mut merged[(*b - lo) as usize + i];
                    into.rows += block.rows;
                    into.chunks.extend(block.chunks);
                }
                (*a, *mine) = (lo, merged);
                return;
            }
        }
        self.file_as_pairs();
        other.file_as_pairs();
        if let (Filed::Pairs(mine), Filed::Pairs(theirs)) = (&mut self.filed, other.filed) {
            mine.extend(theirs);
        }
    }

    /// Turns the blocks filed so far into (key, ts) pairs.
    fn file_as_pairs(&mut self) {
        let Filed::Blocks { first_block, blocks } = &mut self.filed else { return };
        let mut pairs = Vec::with_capacity(self.rows);
        for (i, block) in blocks.iter().enumerate() {
            let high = (*first_block + i as u64) << BLOCK_BITS;
            pairs.extend(block.rows().map(|(low, t)| (high | low as u64, t)));
        }
        self.filed = Filed::Pairs(pairs);
    }

    fn memory_size(&self) -> usize {
        match &self.filed {
            Filed::Blocks { blocks, .. } => blocks.iter().map(|b| b.chunks.len() * CHUNK_ROWS * 10).sum(),
            Filed::Pairs(pairs) => pairs.capacity() * 16,
        }
    }

    /// The rows filed, as batches of `schema` (the input's two columns), for the way that
    /// gathers held rows.
    fn into_batches(mut self, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
        self.file_as_pairs();
        let Filed::Pairs(pairs) = self.filed else { unreachable!() };
        let mask = self.mask;
        let mut batches = Vec::new();
        for chunk in pairs.chunks(1 << 16) {
            let users: Vec<T::Native> = chunk.iter().map(|&(key, _)| T::Native::from_order_key(key ^ mask)).collect();
            let ts: Vec<i64> = chunk.iter().map(|&(_, t)| t).collect();
            let (users, ts) = (Buffer::from_vec(users), Buffer::from_vec(ts));
            let columns = user_and_time_columns(schema, self.partition, self.order, chunk.len(), users, ts)?;
            batches.push(RecordBatch::try_new(Arc::clone(schema), columns)?);
        }
        Ok(batches)
    }

    /// The numbered output, a block of users at a time; each block's memory is given back as it
    /// is ordered.
    fn into_output(
        self,
        window: SessionWindow,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Box<dyn Iterator<Item = Result<RecordBatch>> + Send> {
        let mask = self.mask;
        let runs: Box<dyn Iterator<Item = UserRuns> + Send> = match self.filed {
            Filed::Blocks { first_block, blocks } => Box::new(
                blocks
                    .into_iter()
                    .enumerate()
                    .filter(|(_, block)| block.rows > 0)
                    .map(move |(i, block)| UserRuns::of_block(block, (first_block + i as u64) << BLOCK_BITS, mask)),
            ),
            Filed::Pairs(pairs) => Box::new(std::iter::once(UserRuns::of_pairs(pairs, mask))),
        };
        Box::new(runs.flat_map(move |runs| RunBatches::<T>::new(runs, window.clone(), Arc::clone(&schema), batch_size)))
    }
}

/// Users' timestamps, sorted, one run after another in key order. The output columns are
/// rebuilt from these runs (the user from the run's key, the timestamps as they lie) instead of
/// gathered row by row.
struct UserRuns {
    /// Where each run ends in `ts` (a run starts where the previous one ends).
    ends: Vec<u32>,
    /// Each run's order key (see [`OrderKey`], flipped for a descending partition); `None` when
    /// the runs are one per key from `lo` on, empty for keys not seen.
    keys: Option<Vec<u64>>,
    lo: u64,
    mask: u64,
    ts: ScalarBuffer<i64>,
}

impl UserRuns {
    /// The runs of a block whose keys start at `lo`: a counting sort by key, in cache.
    fn of_block(block: Block, lo: u64, mask: u64) -> Self {
        if block.rows < SMALL_BLOCK {
            return Self::of_pairs(block.rows().map(|(low, t)| (lo | low as u64, t)).collect(), mask);
        }
        // `cursor[k]` starts where key k's run starts and, once every row is placed, is where
        // it ends.
        let mut cursor = vec![0u32; (1 << BLOCK_BITS) + 1];
        for (low, _) in &block.chunks {
            for &k in low {
                cursor[k as usize + 1] += 1;
            }
        }
        for k in 1..cursor.len() {
            cursor[k] += cursor[k - 1];
        }
        let starts = cursor.clone();
        let mut ts = vec![0i64; block.rows];
        // Whether a user's timestamp arrived before an earlier one of theirs. Rows of files in
        // time order arrive in order (the counting sort keeps it), and then no run is looked
        // at again: visiting every key's run to check it took a third of this function.
        let mut out_of_order = false;
        for (low, arrived) in &block.chunks {
            for (&k, &t) in low.iter().zip(arrived) {
                let slot = cursor[k as usize] as usize;
                ts[slot] = t;
                cursor[k as usize] += 1;
                out_of_order |= (slot > starts[k as usize] as usize) & (ts[slot.saturating_sub(1)] > t);
            }
        }
        drop(block);
        cursor.truncate(1 << BLOCK_BITS);
        if out_of_order {
            let mut start = 0;
            for &end in &cursor {
                let run = &mut ts[start..end as usize];
                if run.len() > 1 && !run.is_sorted() {
                    run.sort_unstable();
                }
                start = end as usize;
            }
        }
        Self { ends: cursor, keys: None, lo, mask, ts: ts.into() }
    }

    /// The runs of (key, ts) pairs of any keys: the pairs sorted.
    fn of_pairs(mut pairs: Vec<(u64, i64)>, mask: u64) -> Self {
        pairs.sort_unstable();
        let (mut keys, mut ends) = (Vec::new(), Vec::new());
        for (row, &(key, _)) in pairs.iter().enumerate() {
            if keys.last() != Some(&key) {
                if row > 0 {
                    ends.push(row as u32);
                }
                keys.push(key);
            }
        }
        ends.push(pairs.len() as u32);
        let ts: Vec<i64> = pairs.into_iter().map(|(_, t)| t).collect();
        Self { ends, keys: Some(keys), lo: 0, mask, ts: ts.into() }
    }

    /// The order key of run `run`.
    fn key(&self, run: usize) -> u64 {
        self.keys.as_ref().map_or(self.lo + run as u64, |keys| keys[run])
    }
}

/// The user and time columns of a two-column input, in their order in `schema`, from the raw
/// values of each (`len` of them, NULL-free).
fn user_and_time_columns(
    schema: &Schema,
    partition: usize,
    order: usize,
    len: usize,
    users: Buffer,
    ts: Buffer,
) -> Result<Vec<ArrayRef>> {
    let column = |field: usize, values: Buffer| -> Result<ArrayRef> {
        let data_type = schema.field(field).data_type().clone();
        Ok(make_array(ArrayData::builder(data_type).len(len).add_buffer(values).build()?))
    };
    let (users, ts) = (column(partition, users)?, column(order, ts)?);
    Ok(if partition < order { vec![users, ts] } else { vec![ts, users] })
}

/// The output batches of [`UserRuns`], numbered as they are cut.
struct RunBatches<T: ArrowPrimitiveType> {
    runs: UserRuns,
    window: SessionWindow,
    schema: SchemaRef,
    batch_size: usize,
    next_row: usize,
    /// The run `next_row` lies in, or one before it (runs of keys not seen are empty).
    run: usize,
    sessions: Vec<SessionRun>,
    _user: std::marker::PhantomData<fn() -> T>,
}

impl<T: ArrowPrimitiveType> RunBatches<T>
where
    T::Native: OrderKey,
{
    fn new(runs: UserRuns, window: SessionWindow, schema: SchemaRef, batch_size: usize) -> Self {
        let sessions = vec![SessionRun::default(); window.sessions.len()];
        let (next_row, run, _user) = (0, 0, std::marker::PhantomData);
        Self { runs, window, schema, batch_size, next_row, run, sessions, _user }
    }

    fn batch(&mut self, end: usize) -> Result<RecordBatch> {
        let (start, len) = (self.next_row, end - self.next_row);
        let runs = &self.runs;
        let mut users = Vec::with_capacity(len);
        let mut numbers = vec![Vec::with_capacity(len); self.sessions.len()];
        let mut row = start;
        while row < end {
            while runs.ends[self.run] as usize <= row {
                self.run += 1;
            }
            let run_start = if self.run == 0 { 0 } else { runs.ends[self.run - 1] as usize };
            let run_end = (runs.ends[self.run] as usize).min(end);
            let user = T::Native::from_order_key(runs.key(self.run) ^ runs.mask);
            users.extend(std::iter::repeat_n(user, run_end - row));
            let ticks = &runs.ts[row..run_end];
            for ((session, run), out) in self.window.sessions.iter().zip(&mut self.sessions).zip(&mut numbers) {
                if row == run_start {
                    *run = SessionRun::default();
                }
                run.number_into(ticks, session.gap, out);
            }
            row = run_end;
        }
        self.next_row = end;
        // The input's two columns in their order, then the session numbers.
        let (users, ts) = (Buffer::from_vec(users), runs.ts.slice(start, len).into_inner());
        let (partition, order) = (self.window.partition, self.window.order);
        let mut columns = user_and_time_columns(&self.schema, partition, order, len, users, ts)?;
        columns.extend(numbers.into_iter().map(|n| Arc::new(Int64Array::from(n)) as ArrayRef));
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

impl<T: ArrowPrimitiveType> Iterator for RunBatches<T>
where
    T::Native: OrderKey,
{
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let rows = self.runs.ts.len();
        (self.next_row < rows).then(|| self.batch((self.next_row + self.batch_size).min(rows)))
    }
}

/// [`FiledRuns`] of any user key type.
trait FiledRows: Send {
    fn file(&mut self, batch: &RecordBatch, rows: Option<&[u32]>) -> Result<bool>;
    /// Adds the rows of `other`, of the same key type, after these.
    fn append(&mut self, other: Box<dyn FiledRows>);
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
    fn rows(&self) -> usize;
    fn memory_size(&self) -> usize;
    fn into_batches(self: Box<Self>, schema: &SchemaRef) -> Result<Vec<RecordBatch>>;
    fn into_output(
        self: Box<Self>,
        window: SessionWindow,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;
}

impl<T: ArrowPrimitiveType> FiledRows for FiledRuns<T>
where
    T::Native: OrderKey,
{
    fn file(&mut self, batch: &RecordBatch, rows: Option<&[u32]>) -> Result<bool> {
        FiledRuns::<T>::file(self, batch, rows)
    }

    fn append(&mut self, other: Box<dyn FiledRows>) {
        let other = other.into_any().downcast::<Self>().expect("filed rows of one key type");
        FiledRuns::<T>::append(self, *other)
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }

    fn rows(&self) -> usize {
        self.rows
    }

    fn memory_size(&self) -> usize {
        FiledRuns::<T>::memory_size(self)
    }

    fn into_batches(self: Box<Self>, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
        FiledRuns::<T>::into_batches(*self, schema)
    }

    fn into_output(
        self: Box<Self>,
        window: SessionWindow,
        schema: SchemaRef,
        batch_size: usize,
    ) -> Box<dyn Iterator<Item = Result<RecordBatch>> + Send> {
        FiledRuns::<T>::into_output(*self, window, schema, batch_size)
    }
}

/// A partition's rows collected for the in-memory way: filed for rebuilding ([`FiledRuns`])
/// while the shape and every batch allow it, else held as the batches they arrived in.
struct Collected {
    filed: Option<Box<dyn FiledRows>>,
    held: Vec<RecordBatch>,
    input_schema: SchemaRef,
    /// What is kept: the filed rows or the held batches.
    reservation: MemoryReservation,
}

impl Collected {
    /// Whether rows of `input_schema` are filed for rebuilding (see [`FiledRuns`]) unless a
    /// batch has NULLs.
    fn fileable(window: &SessionWindow, input_schema: &Schema) -> bool {
        input_schema.fields().len() == 2
            && window.partition != window.order
            && window.sessions.iter().all(|s| s.ts == window.order)
    }

    fn new(
        window: &SessionWindow,
        input_schema: SchemaRef,
        partition_options: SortOptions,
        reservation: MemoryReservation,
    ) -> Self {
        let descending = partition_options.descending;
        let filed = Self::fileable(window, &input_schema)
            .then(|| -> Option<Box<dyn FiledRows>> {
                with_key_type!(
                    input_schema.field(window.partition).data_type(),
                    T => Some(Box::new(FiledRuns::<T>::new(window, descending))),
                    _other => None
                )
            })
            .flatten();
        Self { filed, held: Vec::new(), input_schema, reservation }
    }

    /// Files or holds `batch`'s rows, or only those at `rows`. The first batch that cannot be
    /// filed turns what was filed back into batches to hold.
    fn push(&mut self, batch: &RecordBatch, rows: Option<&[u32]>) -> Result<()> {
        if let Some(filed) = &mut self.filed {
            if filed.file(batch, rows)? {
                return self.reservation.try_resize(filed.memory_size());
            }
            self.hold()?;
        }
        let batch = match rows {
            None => batch.clone(),
            Some(rows) => take_record_batch(batch, &UInt32Array::from(rows.to_vec()))?,
        };
        self.reservation.try_grow(batch.get_array_memory_size())?;
        self.held.push(batch);
        Ok(())
    }

    /// Turns what was filed into batches held before any held already.
    fn hold(&mut self) -> Result<()> {
        if let Some(filed) = self.filed.take() {
            let mut held = filed.into_batches(&self.input_schema)?;
            held.append(&mut self.held);
            self.held = held;
        }
        self.reservation.try_resize(self.held.iter().map(RecordBatch::get_array_memory_size).sum())
    }

    /// Adds `other`'s rows after these: filed after filed rows, else held.
    fn append(&mut self, mut other: Collected) -> Result<()> {
        match (&mut self.filed, other.filed.take()) {
            (Some(filed), Some(more)) => {
                filed.append(more);
                let size = filed.memory_size();
                drop(other);
                self.reservation.try_resize(size)
            }
            (_, more) => {
                self.hold()?;
                if let Some(more) = more {
                    self.held.extend(more.into_batches(&self.input_schema)?);
                }
                self.held.append(&mut other.held);
                drop(other);
                self.hold()
            }
        }
    }

    fn rows(&self) -> usize {
        self.filed.as_ref().map_or_else(|| self.held.iter().map(RecordBatch::num_rows).sum(), |f| f.rows())
    }
}

/// The numbered output of a partition held in memory: rebuilt from its users' runs when its
/// rows were filed (`rebuilt` counts them), else ordered by [`session_order`] and gathered from
/// the held batches. The collected rows' reservation stays until the last batch is out.
fn in_memory_sessions(
    collected: Collected,
    window: SessionWindow,
    partition_options: SortOptions,
    schema: SchemaRef,
    batch_size: usize,
    rebuilt: Count,
) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + Send>> {
    let reservation = collected.reservation;
    if let Some(filed) = collected.filed {
        rebuilt.add(filed.rows());
        let batches = filed.into_output(window, schema, batch_size.max(1));
        return Ok(Box::new(batches.inspect(move |_| {
            let _held = &reservation;
        })));
    }
    let held = HeldRows::new(collected.held)?;
    let order = session_order(&held, &window, partition_options)?;
    let mut numbering = Numbering::new(&window, schema);
    // Taken lazily, batch by batch; the held rows stay reserved until the last one. Each take
    // checks every held batch's type and NULLs, so the output comes in at most about 64
    // batches, not thousands.
    let batch_size = batch_size.max(order.len().div_ceil(64)).max(1);
    let out = (0..order.len().div_ceil(batch_size)).map(move |chunk| {
        let _held = &reservation;
        let taken = held.take(&order[chunk * batch_size..((chunk + 1) * batch_size).min(order.len())])?;
        numbering.number(&taken)
    });
    Ok(Box::new(out))
}

/// The routing of a query's rows, shared by its partitions' streams.
type Routing = Shared<futures::future::BoxFuture<'static, Result<Arc<Exchanged>, Arc<DataFusionError>>>>;

/// The routing of the query that ran last, with its task context (a new query has another).
#[derive(Default)]
struct SharedExchange(std::sync::Mutex<Option<(std::sync::Weak<TaskContext>, Routing)>>);

impl fmt::Debug for SharedExchange {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("SharedExchange")
    }
}

/// Each output partition's rows, taken once by that partition's stream.
struct Exchanged(Vec<std::sync::Mutex<Option<Collected>>>);

impl Exchanged {
    fn take(&self, partition: usize) -> Result<Collected> {
        let taken = self.0.get(partition).and_then(|rows| rows.lock().expect("exchanged rows").take());
        taken.ok_or_else(|| DataFusionError::Internal(format!("session_id: partition {partition} executed twice")))
    }
}

/// Returns to the runtime once, rescheduled at once.
///
/// The partition whose stream finishes the routing wakes the others' streams; a runtime that
/// queues a task woken from a worker thread where only that thread runs it (tokio's "LIFO
/// slot") would run the other partitions only after this one's output is done, one core idle.
/// Yielding lets another thread take them.
async fn yield_once() {
    let mut yielded = false;
    futures::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// `value % divisor` for one divisor and many values, without a division per value (which
/// took most of the routing's time): a mask for powers of two, else the quotient from a
/// multiplication by the divisor's reciprocal (2^128 / divisor, rounded up), exact for every
/// 64-bit value, as DataFusion's repartition computes it.
#[derive(Debug, Clone, Copy)]
enum Remainder {
    Mask(u64),
    Reciprocal { divisor: u64, reciprocal: u128 },
}

impl Remainder {
    fn new(divisor: u64) -> Self {
        match divisor.is_power_of_two() {
            true => Self::Mask(divisor - 1),
            false => Self::Reciprocal { divisor, reciprocal: u128::MAX / u128::from(divisor) + 1 },
        }
    }

    fn of(self, value: u64) -> u64 {
        match self {
            Self::Mask(mask) => value & mask,
            Self::Reciprocal { divisor, reciprocal } => {
                // The high 64 bits of the 192-bit product value * reciprocal.
                let low = u128::from(value) * u128::from(reciprocal as u64);
                let high = u128::from(value) * (reciprocal >> 64);
                let carry = ((high & u128::from(u64::MAX)) + (low >> 64)) >> 64;
                value - ((high >> 64) + carry) as u64 * divisor
            }
        }
    }
}

/// Batches read ahead of the routing of each input partition.
const READ_AHEAD_BATCHES: usize = 2;

/// Reads every partition of `input` at once (a task each) and files each row with the output
/// partition a hash repartition by user into `partitions` would send it to; then each output
/// partition's rows from all inputs, in input order.
async fn route_rows(
    input: Arc<dyn ExecutionPlan>,
    partitions: usize,
    window: SessionWindow,
    options: SortOptions,
    context: Arc<TaskContext>,
    exchanged_rows: Count,
) -> Result<Exchanged> {
    let schema = input.schema();
    let mut tasks = Vec::new();
    for from in 0..input.output_partitioning().partition_count() {
        let mut stream = input.execute(from, Arc::clone(&context))?;
        let collected: Vec<Collected> = (0..partitions)
            .map(|to| {
                let consumer = MemoryConsumer::new(format!("SessionNumberExec[{from}->{to}]"));
                Collected::new(&window, Arc::clone(&schema), options, consumer.register(context.memory_pool()))
            })
            .collect();
        // Reading (waiting on the files, decoding) in a task of its own keeps it going while
        // the rows already read are routed, as a repartition's tasks and its readers did.
        let (mut send, mut read) = futures::channel::mpsc::channel(READ_AHEAD_BATCHES);
        let reader = SpawnedTask::spawn(async move {
            while let Some(batch) = stream.next().await {
                if send.send(batch).await.is_err() {
                    break;
                }
            }
        });
        let (user, exchanged_rows) = (window.partition, exchanged_rows.clone());
        tasks.push(SpawnedTask::spawn(async move {
            let _reader = reader;
            let mut collected = collected;
            let (mut hashes, mut routed) = (Vec::new(), vec![Vec::new(); partitions]);
            let remainder = Remainder::new(partitions as u64);
            while let Some(batch) = read.next().await {
                let batch = batch?;
                exchanged_rows.add(batch.num_rows());
                if partitions == 1 {
                    collected[0].push(&batch, None)?;
                    continue;
                }
                hashes.clear();
                hashes.resize(batch.num_rows(), 0);
                create_hashes([batch.column(user)], REPARTITION_RANDOM_STATE.random_state(), &mut hashes)?;
                routed.iter_mut().for_each(Vec::clear);
                for (row, &hash) in hashes.iter().enumerate() {
                    routed[remainder.of(hash) as usize].push(row as u32);
                }
                for (rows, to) in routed.iter().zip(&mut collected) {
                    if !rows.is_empty() {
                        to.push(&batch, Some(rows))?;
                    }
                }
            }
            Ok::<_, DataFusionError>(collected)
        }));
    }
    let mut merged: Option<Vec<Collected>> = None;
    for task in tasks {
        let collected = task.join_unwind().await.map_err(|e| DataFusionError::External(Box::new(e)))??;
        match &mut merged {
            None => merged = Some(collected),
            Some(merged) => {
                for (into, more) in merged.iter_mut().zip(collected) {
                    into.append(more)?;
                }
            }
        }
    }
    // An input of no partitions leaves every partition empty.
    let merged = merged.unwrap_or_else(|| {
        let consumer = |to| MemoryConsumer::new(format!("SessionNumberExec[->{to}]")).register(context.memory_pool());
        (0..partitions).map(|to| Collected::new(&window, Arc::clone(&schema), options, consumer(to))).collect()
    });
    Ok(Exchanged(merged.into_iter().map(|c| std::sync::Mutex::new(Some(c))).collect()))
}

/// Session numbers for batches of rows ordered by (partition key, ts), carried across batches.
struct Numbering {
    partition: usize,
    sessions: Vec<SessionColumn>,
    runs: Vec<SessionRun>,
    /// The last row's partition key (`None` for a NULL key), once a row has been seen.
    last_key: Option<Option<u64>>,
    schema: SchemaRef,
}

impl Numbering {
    fn new(window: &SessionWindow, schema: SchemaRef) -> Self {
        Self {
            partition: window.partition,
            sessions: window.sessions.clone(),
            runs: vec![SessionRun::default(); window.sessions.len()],
            last_key: None,
            schema,
        }
    }

    fn number(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let users = batch.column(self.partition);
        let keys = order_keys(users, false)?;
        let nulls = users.logical_nulls();
        let mut starts = Vec::with_capacity(batch.num_rows());
        for (row, &key) in keys.iter().enumerate() {
            let key = nulls.as_ref().is_none_or(|n| n.is_valid(row)).then_some(key);
            starts.push(self.last_key != Some(key));
            self.last_key = Some(key);
        }
        let mut columns = batch.columns().to_vec();
        for (session, run) in self.sessions.iter().zip(&mut self.runs) {
            let (ticks, _) = raw_ticks(batch.column(session.ts), "session_id")?;
            columns.push(Arc::new(run.number(&ticks, session.gap, Some(&starts))) as ArrayRef);
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::TimestampSecondArray;

    fn batch(users: Vec<Option<i64>>, ts: Vec<Option<i64>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("u", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), true),
        ]));
        let columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(users)), Arc::new(TimestampSecondArray::from(ts))];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    fn window(nulls_first: bool) -> SessionWindow {
        SessionWindow {
            partition: 0,
            order: 1,
            order_options: SortOptions { descending: false, nulls_first },
            sessions: vec![SessionColumn { ts: 1, gap: 10 }],
        }
    }

    /// The input positions (over all batches) of the rows in session order, read back through
    /// [`HeldRows::take`] from an `id` column added to the batches.
    fn rows_in_order(batches: Vec<RecordBatch>, window: &SessionWindow, options: SortOptions) -> Vec<i64> {
        let mut next = 0;
        let with_ids = batches
            .into_iter()
            .map(|b| {
                let ids = Int64Array::from_iter_values(next..next + b.num_rows() as i64);
                next += b.num_rows() as i64;
                let mut fields = b.schema().fields().to_vec();
                fields.push(Arc::new(Field::new("id", DataType::Int64, false)));
                let mut columns = b.columns().to_vec();
                columns.push(Arc::new(ids));
                RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
            })
            .collect();
        let held = HeldRows::new(with_ids).unwrap();
        let order = session_order(&held, window, options).unwrap();
        let taken = held.take(&order).unwrap();
        taken.column(2).as_primitive::<Int64Type>().values().to_vec()
    }

    #[test]
    fn orders_dense_and_sparse_keys_with_nulls_where_asked() {
        // Rows 0..7: users 3, 1, NULL, 3, 1, 3, NULL; ts with one NULL in user 3.
        let dense = batch(
            vec![Some(3), Some(1), None, Some(3), Some(1), Some(3), None],
            vec![Some(50), Some(20), Some(5), None, Some(10), Some(40), Some(1)],
        );
        let asc_last = SortOptions { descending: false, nulls_first: false };
        // user 1: ts 10 (row 4), 20 (row 1); user 3: 40 (5), 50 (0), NULL (3); NULL users: 1 (6), 5 (2).
        assert_eq!(rows_in_order(vec![dense.clone()], &window(false), asc_last), vec![4, 1, 5, 0, 3, 6, 2]);
        // NULL ts first within the partition, NULL users first, users descending.
        let desc_first = SortOptions { descending: true, nulls_first: true };
        assert_eq!(rows_in_order(vec![dense.clone()], &window(true), desc_first), vec![6, 2, 3, 5, 0, 4, 1]);
        // The same rows over several batches of uneven length: addressed by (batch, row).
        let split = vec![dense.slice(0, 3), dense.slice(3, 0), dense.slice(3, 1), dense.slice(4, 3)];
        let rows = rows_in_order(split, &window(false), asc_last);
        assert_eq!(rows, vec![4, 1, 5, 0, 3, 6, 2]);
        // Keys too far apart for buckets take the comparison sort and give the same order.
        let sparse = batch(
            vec![Some(3_000_000_000_000), Some(-7), Some(3_000_000_000_000), Some(-7)],
            vec![Some(9), Some(8), Some(2), Some(8)],
        );
        assert_eq!(rows_in_order(vec![sparse], &window(false), asc_last), vec![1, 3, 2, 0]);
    }

    /// (user, ts, session) of an output row.
    type NumberedRow = (Option<i32>, Option<i64>, Option<i64>);

    /// Every output row of a partition held in memory, and how many rows
    /// were rebuilt from user runs.
    fn numbered_in_memory(batches: Vec<RecordBatch>, descending: bool, batch_size: usize) -> (Vec<NumberedRow>, usize) {
        numbered_from_inputs(vec![batches], descending, batch_size)
    }

    /// [`numbered_in_memory`] of rows collected from several inputs, each on its own, then
    /// joined in input order (as the routing joins each input's rows of a partition).
    fn numbered_from_inputs(
        inputs: Vec<Vec<RecordBatch>>,
        descending: bool,
        batch_size: usize,
    ) -> (Vec<NumberedRow>, usize) {
        use datafusion::execution::memory_pool::{MemoryPool, UnboundedMemoryPool};
        let input = inputs[0][0].schema();
        let (users, ts) = (input.index_of("u").unwrap(), input.index_of("ts").unwrap());
        let window = SessionWindow {
            partition: users,
            order: ts,
            order_options: SortOptions { descending: false, nulls_first: false },
            sessions: vec![SessionColumn { ts, gap: 15 }],
        };
        let mut fields = input.fields().to_vec();
        fields.push(Arc::new(Field::new("s", DataType::Int64, true)));
        let schema = Arc::new(Schema::new(fields));
        let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        let rebuilt = Count::new();
        let options = SortOptions { descending, nulls_first: false };
        let mut joined: Option<Collected> = None;
        for batches in inputs {
            let reservation = MemoryConsumer::new("test").register(&pool);
            let mut collected = Collected::new(&window, Arc::clone(&input), options, reservation);
            for batch in batches {
                collected.push(&batch, None).unwrap();
            }
            match &mut joined {
                None => joined = Some(collected),
                Some(joined) => joined.append(collected).unwrap(),
            }
        }
        let collected = joined.unwrap();
        let out = in_memory_sessions(collected, window, options, schema, batch_size, rebuilt.clone()).unwrap();
        let mut rows = Vec::new();
        for batch in out {
            let batch = batch.unwrap();
            let u = batch.column(users).as_primitive::<Int32Type>();
            let t = batch.column(ts).as_primitive::<TimestampSecondType>();
            let s = batch.column(2).as_primitive::<Int64Type>();
            rows.extend((0..batch.num_rows()).map(|r| {
                (
                    u.is_valid(r).then(|| u.value(r)),
                    t.is_valid(r).then(|| t.value(r)),
                    s.is_valid(r).then(|| s.value(r)),
                )
            }));
        }
        (rows, rebuilt.value())
    }

    #[test]
    fn two_column_partitions_are_rebuilt_from_user_runs() {
        use datafusion::arrow::array::Int32Array;
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), true),
            Field::new("u", DataType::Int32, true),
        ]));
        let batch = |ts: Vec<Option<i64>>, users: Vec<Option<i32>>| {
            let columns: Vec<ArrayRef> =
                vec![Arc::new(TimestampSecondArray::from(ts)), Arc::new(Int32Array::from(users))];
            RecordBatch::try_new(Arc::clone(&schema), columns).unwrap()
        };
        let batches = vec![
            batch(vec![Some(100), Some(50), Some(10), Some(60)], vec![Some(5), Some(3), Some(5), Some(3)]),
            batch(vec![Some(7), Some(30), Some(200)], vec![Some(-2), Some(5), Some(3)]),
        ];
        // Gap 15. User -2: 7 (1). User 3: 50, 60 (1, 1), 200 (2). User 5: 10 (1), 30 (2), 100 (3).
        let ascending = vec![
            (Some(-2), Some(7), Some(1)),
            (Some(3), Some(50), Some(1)),
            (Some(3), Some(60), Some(1)),
            (Some(3), Some(200), Some(2)),
            (Some(5), Some(10), Some(1)),
            (Some(5), Some(30), Some(2)),
            (Some(5), Some(100), Some(3)),
        ];
        for batch_size in [1, 2, 3, 8192] {
            assert_eq!(numbered_in_memory(batches.clone(), false, batch_size), (ascending.clone(), 7), "{batch_size}");
        }
        // Users descending: the runs in the other order, each still by ts.
        let descending: Vec<_> = [4, 5, 6, 1, 2, 3, 0].iter().map(|&i| ascending[i]).collect();
        assert_eq!(numbered_in_memory(batches.clone(), true, 2), (descending.clone(), 7));
        // A NULL user takes the gathering way and numbers the same.
        let mut with_null = batches.clone();
        with_null.push(batch(vec![Some(1)], vec![None]));
        let mut expected = ascending.clone();
        expected.push((None, Some(1), Some(1)));
        assert_eq!(numbered_in_memory(with_null, false, 3), (expected, 0));
        // Keys too far apart for a bucket each are ordered by sorting (key, ts) pairs.
        let mut sparse = batches.clone();
        sparse.push(batch(vec![Some(1)], vec![Some(1 << 30)]));
        let mut expected = ascending.clone();
        expected.push((Some(1 << 30), Some(1), Some(1)));
        for batch_size in [1, 3, 8192] {
            assert_eq!(numbered_in_memory(sparse.clone(), false, batch_size), (expected.clone(), 8), "{batch_size}");
        }
        let mut descending_sparse = vec![(Some(1 << 30), Some(1), Some(1))];
        descending_sparse.extend(descending);
        assert_eq!(numbered_in_memory(sparse, true, 2), (descending_sparse, 8));
    }

    /// (user, ts) rows numbered the plain way: sorted by user (in the partition's direction)
    /// then ts, a new session where the user changes or ts moves more than the gap (15).
    fn numbered_plainly(rows: &[(i32, i64)], descending: bool) -> Vec<NumberedRow> {
        let mut sorted = rows.to_vec();
        sorted.sort_by_key(|&(u, t)| (if descending { -(u as i64) } else { u as i64 }, t));
        let mut out: Vec<NumberedRow> = Vec::new();
        for (i, &(u, t)) in sorted.iter().enumerate() {
            let session = match i.checked_sub(1).map(|p| sorted[p]) {
                Some((pu, pt)) if pu == u => out[i - 1].2.unwrap() + (t - pt > 15) as i64,
                _ => 1,
            };
            out.push((Some(u), Some(t), Some(session)));
        }
        out
    }

    /// `rows` as batches of `ts, u` of `size` rows each.
    fn user_batches(rows: &[(i32, i64)], size: usize) -> Vec<RecordBatch> {
        use datafusion::arrow::array::Int32Array;
        let schema = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), true),
            Field::new("u", DataType::Int32, true),
        ]));
        rows.chunks(size)
            .map(|chunk| {
                let ts = TimestampSecondArray::from_iter_values(chunk.iter().map(|r| r.1));
                let users = Int32Array::from_iter_values(chunk.iter().map(|r| r.0));
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(ts), Arc::new(users)]).unwrap()
            })
            .collect()
    }

    #[test]
    fn blocks_of_users_number_as_sorting_all_rows_does() {
        // A small linear congruential generator: the same rows every run.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |below: u64| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % below
        };
        // Users over five blocks of keys (the fifth nearly empty, so ordered by sorting pairs),
        // about 8 events each within 200 s, gaps around the session gap of 15 s; days of files
        // sorted by user, arriving from the last day to the first.
        let mut days: Vec<Vec<(i32, i64)>> = (0..3)
            .map(|day| {
                let mut rows = Vec::new();
                for i in 0..45_040 {
                    let (users, spread) = if i < 45_000 { (4 << BLOCK_BITS, 200) } else { (9, 50) };
                    let user = next(users) as i32 + if i < 45_000 { 7 } else { (4 << BLOCK_BITS) + 3 };
                    rows.push((user, day * 1000 + next(spread) as i64));
                }
                rows.sort_unstable();
                rows
            })
            .collect();
        days.reverse();
        let rows: Vec<(i32, i64)> = days.concat();
        for descending in [false, true] {
            let expected = numbered_plainly(&rows, descending);
            for (size, batch_size) in [(8192, 8192), (1000, 7)] {
                let got = numbered_in_memory(user_batches(&rows, size), descending, batch_size);
                assert_eq!(got, (expected.clone(), rows.len()), "descending {descending}, batches of {size}");
            }
        }
        // In no order at all; a first batch of high keys, the lowest block filed last.
        let mut shuffled = rows.clone();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, next(i as u64 + 1) as usize);
        }
        shuffled.sort_by_key(|&(u, _)| u < (1 << BLOCK_BITS));
        let got = numbered_in_memory(user_batches(&shuffled, 4096), false, 8192);
        assert_eq!(got, (numbered_plainly(&rows, false), rows.len()));
        // Days arriving in time order: each user's runs are in order as placed.
        let in_time_order: Vec<(i32, i64)> = days.iter().rev().flatten().copied().collect();
        let got = numbered_in_memory(user_batches(&in_time_order, 8192), false, 8192);
        assert_eq!(got, (numbered_plainly(&rows, false), rows.len()));
        // Users arriving from the highest key down: the blocks grow below many times.
        let mut falling = rows.clone();
        falling.sort_by_key(|&(u, _)| std::cmp::Reverse(u));
        let got = numbered_in_memory(user_batches(&falling, 1000), false, 8192);
        assert_eq!(got, (numbered_plainly(&rows, false), rows.len()));
        // Keys that spread over too many blocks part-way: the blocks filed turn into pairs.
        let mut spread = rows.clone();
        spread.push((1 << 30, 5));
        spread.push((-(1 << 30), 9));
        let got = numbered_in_memory(user_batches(&spread, 8192), true, 8192);
        assert_eq!(got, (numbered_plainly(&spread, true), spread.len()));
        // A NULL user part-way: the rows filed go back to batches, gathered the other way.
        let mut with_null = user_batches(&rows, 8192);
        with_null.insert(3, batch_with_null_user());
        let (got, rebuilt) = numbered_in_memory(with_null, false, 8192);
        let mut expected = numbered_plainly(&rows, false);
        expected.push((None, Some(1), Some(1)));
        assert_eq!((got, rebuilt), (expected, 0));
    }

    #[test]
    fn rows_filed_from_several_inputs_join_in_input_order() {
        // Users over two blocks; the first input has each user's earlier events, so that joined
        // in input order each user's runs arrive in time order.
        let early: Vec<(i32, i64)> =
            (0..20_000).map(|i: i32| ((i * 7) % (2 << BLOCK_BITS), i64::from(i % 5) * 10)).collect();
        let late: Vec<(i32, i64)> =
            (0..20_000).map(|i: i32| ((i * 11) % (2 << BLOCK_BITS), 100 + i64::from(i % 3) * 20)).collect();
        let all: Vec<(i32, i64)> = early.iter().chain(&late).copied().collect();
        let expected = (numbered_plainly(&all, false), all.len());
        // Blocks joined with blocks; inputs over other blocks; an input with nothing filed.
        let got = numbered_from_inputs(vec![user_batches(&early, 4096), user_batches(&late, 4096)], false, 8192);
        assert_eq!(got, expected);
        let (low, high): (Vec<_>, Vec<_>) = all.iter().partition(|&&(u, _)| u < (1 << BLOCK_BITS));
        let got = numbered_from_inputs(vec![user_batches(&high, 1000), user_batches(&low, 1000)], true, 8192);
        assert_eq!(got, (numbered_plainly(&all, true), all.len()));
        let empty = vec![user_batches(&all[..1], 1)[0].slice(0, 0)];
        let got = numbered_from_inputs(vec![empty, user_batches(&early, 4096), user_batches(&late, 4096)], false, 7);
        assert_eq!(got, expected);
        // Blocks too far apart once joined are joined as pairs, with pairs too.
        let far = vec![(1 << 30, 5), (1 << 30, 100)];
        let mut with_far = all.clone();
        with_far.extend(&far);
        let expected = (numbered_plainly(&with_far, false), with_far.len());
        let inputs = vec![user_batches(&early, 4096), user_batches(&far, 1), user_batches(&late, 4096)];
        assert_eq!(numbered_from_inputs(inputs, false, 8192), expected);
        let spread = vec![(-(1 << 30), 1), (1 << 30, 5), (1 << 30, 100)];
        let mut with_spread = all.clone();
        with_spread.extend(&spread);
        let inputs = vec![user_batches(&spread, 3), user_batches(&early, 4096), user_batches(&late, 4096)];
        assert_eq!(
            numbered_from_inputs(inputs, false, 8192),
            (numbered_plainly(&with_spread, false), with_spread.len())
        );
        // A NULL in one input: every input's rows are gathered instead.
        let inputs = vec![user_batches(&early, 4096), vec![batch_with_null_user()], user_batches(&late, 4096)];
        let (rows, rebuilt) = numbered_from_inputs(inputs, false, 8192);
        let mut expected = numbered_plainly(&all, false);
        expected.push((None, Some(1), Some(1)));
        assert_eq!((rows, rebuilt), (expected, 0));
    }

    #[tokio::test]
    async fn an_input_of_no_partitions_routes_no_rows_to_each_partition() {
        use datafusion::physical_plan::empty::EmptyExec;
        let schema = user_batches(&[(0, 0)], 1)[0].schema();
        let input: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(Arc::clone(&schema)).with_partitions(0));
        let window = SessionWindow {
            partition: 1,
            order: 0,
            order_options: SortOptions { descending: false, nulls_first: false },
            sessions: vec![SessionColumn { ts: 0, gap: 15 }],
        };
        let options = SortOptions { descending: false, nulls_first: false };
        let context = Arc::new(TaskContext::default());
        let exchanged = route_rows(input, 3, window, options, context, Count::new()).await.unwrap();
        for partition in 0..3 {
            assert_eq!(exchanged.take(partition).unwrap().rows(), 0);
        }
        assert!(exchanged.take(0).is_err(), "a partition's rows are taken once");
    }

    fn batch_with_null_user() -> RecordBatch {
        use datafusion::arrow::array::Int32Array;
        let schema = user_batches(&[(0, 0)], 1)[0].schema();
        let columns: Vec<ArrayRef> =
            vec![Arc::new(TimestampSecondArray::from(vec![1])), Arc::new(Int32Array::from(vec![None]))];
        RecordBatch::try_new(schema, columns).unwrap()
    }

    #[test]
    fn remainders_without_division_are_the_remainders() {
        let mut value = 0x9e37_79b9_7f4a_7c15u64;
        for divisor in [1, 2, 3, 5, 7, 8, 12, 16, 31, 100, 1 << 20, (1 << 32) + 1, u64::MAX / 3, u64::MAX] {
            let remainder = Remainder::new(divisor);
            for edge in [0, 1, divisor - 1, divisor, divisor.wrapping_add(1), u64::MAX - 1, u64::MAX] {
                assert_eq!(remainder.of(edge), edge % divisor, "{edge} % {divisor}");
            }
            for _ in 0..10_000 {
                value = value.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                assert_eq!(remainder.of(value), value % divisor, "{value} % {divisor}");
            }
        }
    }

    #[test]
    fn numbering_goes_on_across_batches_and_restarts_per_user() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("u", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), true),
            Field::new("s", DataType::Int64, true),
        ]));
        let mut numbering = Numbering::new(&window(false), schema);
        // Gap 10: user 1 at 0, 10 (same), 21 (new); the second batch goes on with user 1 at 25,
        // then user 2 starts at 1 even though its ts is close; NULL ts keeps NULL.
        let first =
            numbering.number(&batch(vec![Some(1), Some(1), Some(1)], vec![Some(0), Some(10), Some(21)])).unwrap();
        let second = numbering
            .number(&batch(vec![Some(1), Some(2), Some(2), None], vec![Some(25), Some(26), None, Some(3)]))
            .unwrap();
        let sessions = |b: &RecordBatch| b.column(2).as_primitive::<Int64Type>().iter().collect::<Vec<_>>();
        assert_eq!(sessions(&first), vec![Some(1), Some(1), Some(2)]);
        assert_eq!(sessions(&second), vec![Some(2), Some(1), None, Some(1)]);
    }

    #[test]
    fn the_cluster_bytes_give_back_the_same_operator() {
        use datafusion::physical_plan::displayable;
        use datafusion::physical_plan::empty::EmptyExec;
        let input: Arc<dyn ExecutionPlan> = Arc::new(EmptyExec::new(batch(vec![], vec![]).schema()));
        let mut shape = window(true);
        shape.sessions.push(SessionColumn { ts: 1, gap: 7 });
        let options = SortOptions { descending: true, nulls_first: false };
        let names = vec!["first".to_string(), "second, with a comma".to_string()];
        let exec = SessionNumberExec::try_new(Arc::clone(&input), shape.clone(), options, names, true).unwrap();
        let back = SessionNumberExec::from_bytes(&exec.to_bytes(), input.clone()).unwrap().unwrap();
        assert_eq!((&back.window, back.partition_options, back.input_sorted), (&shape, options, true));
        assert_eq!(back.schema, exec.schema);
        assert_eq!(displayable(&back).one_line().to_string(), displayable(&exec).one_line().to_string());
        // Other operators' bytes are not read as this one; cut-off bytes are an error.
        assert!(SessionNumberExec::from_bytes(b"ballista", input.clone()).unwrap().is_none());
        let bytes = exec.to_bytes();
        assert!(SessionNumberExec::from_bytes(&bytes[..bytes.len() - 3], input).is_err());
    }
}
