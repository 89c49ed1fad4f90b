//! Micro-benchmarks of each aggregate's `GroupsAccumulator`: `update_batch` over a million rows
//! and `merge_batch` over the partial states of those rows, per input type. They call the
//! accumulators as DataFusion's grouped aggregation does (8,192-row batches with group indices),
//! without Parquet, planning or hashing of keys, so a regression in a kernel shows on its own.
//!
//! ```sh
//! cargo bench -p cxlake-benches --features criterion --bench kernels [-- FILTER]
//! ```

use std::hint::black_box;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Decimal128Array, Float64Array, Int32Array, Int64Array, Int8Array,
    TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{AggregateUDF, EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateExprBuilder;
use datafusion::physical_expr::expressions::{col, lit};
use datafusion::physical_expr::PhysicalExpr;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

const ROWS: usize = 1 << 20;
const BATCH: usize = 8192;

/// One benchmark: a function over generated columns, with its constant arguments.
struct Case {
    label: &'static str,
    function: &'static str,
    /// Leading constant arguments (window_funnel's window) and trailing ones (churn_rate's period).
    leading: Vec<ScalarValue>,
    trailing: Vec<ScalarValue>,
    columns: Vec<ArrayRef>,
    groups: usize,
}

fn rng() -> SmallRng {
    SmallRng::seed_from_u64(0xBE4C)
}

fn scores(max: i64) -> Vec<Option<i64>> {
    let mut r = rng();
    (0..ROWS).map(|_| (r.random::<f64>() >= 0.02).then(|| r.random_range(0..=max))).collect()
}

/// Millisecond instants over a year, and ends a lognormal-ish delay later (10% NULL).
fn intervals() -> (Vec<i64>, Vec<Option<i64>>) {
    let mut r = rng();
    let start: Vec<i64> = (0..ROWS).map(|_| 1_735_689_600_000 + r.random_range(0..365 * 86_400_000_i64)).collect();
    let end = start
        .iter()
        .map(|s| (r.random::<f64>() >= 0.1).then(|| s + (r.random::<f64>().powi(3) * 86_400_000.0) as i64))
        .collect();
    (start, end)
}

fn flags(share: f64, seed: u64) -> ArrayRef {
    let mut r = SmallRng::seed_from_u64(seed);
    Arc::new(BooleanArray::from((0..ROWS).map(|_| r.random::<f64>() < share).collect::<Vec<_>>()))
}

fn cases() -> Vec<Case> {
    let s10 = scores(10);
    let survey = |label, function, column: ArrayRef| Case {
        label,
        function,
        leading: vec![],
        trailing: vec![],
        columns: vec![column],
        groups: 1000,
    };
    let (start, end) = intervals();
    let ms = |v: Vec<Option<i64>>| -> ArrayRef { Arc::new(TimestampMillisecondArray::from(v)) };
    let period = |ms: i64| ScalarValue::TimestampMillisecond(Some(ms), None);
    // Events: sorted time within a user, users spread over groups as window_funnel sees them.
    let mut r = rng();
    let mut t = 1_735_689_600_000_000_i64;
    let event_ts: ArrayRef = Arc::new(TimestampMicrosecondArray::from(
        (0..ROWS)
            .map(|_| {
                t += r.random_range(0..600_000_000);
                t
            })
            .collect::<Vec<_>>(),
    ));
    vec![
        survey("nps/int8", "nps", Arc::new(Int8Array::from_iter(s10.iter().map(|v| v.map(|v| v as i8))))),
        survey("nps/int32", "nps", Arc::new(Int32Array::from_iter(s10.iter().map(|v| v.map(|v| v as i32))))),
        survey("nps/int64", "nps", Arc::new(Int64Array::from(s10.clone()))),
        survey("nps/float64", "nps", Arc::new(Float64Array::from_iter(s10.iter().map(|v| v.map(|v| v as f64))))),
        survey(
            "nps/decimal(4,1)",
            "nps",
            Arc::new(
                Decimal128Array::from_iter(s10.iter().map(|v| v.map(|v| i128::from(v) * 10)))
                    .with_precision_and_scale(4, 1)
                    .unwrap(),
            ),
        ),
        survey(
            "csat/int32",
            "csat",
            Arc::new(Int32Array::from_iter(scores(4).iter().map(|v| v.map(|v| v as i32 + 1)))),
        ),
        survey("ces/int32", "ces", Arc::new(Int32Array::from_iter(scores(6).iter().map(|v| v.map(|v| v as i32 + 1))))),
        survey(
            "ces/float64",
            "ces",
            Arc::new(Float64Array::from_iter(scores(6).iter().map(|v| v.map(|v| v as f64 + 1.0)))),
        ),
        survey("conversion_rate/boolean", "conversion_rate", flags(0.3, 1)),
        survey(
            "conversion_rate/int32",
            "conversion_rate",
            Arc::new(Int32Array::from_iter(scores(1).iter().map(|v| v.map(|v| v as i32)))),
        ),
        Case {
            label: "first_response_time/timestamp(ms)",
            function: "first_response_time",
            leading: vec![],
            trailing: vec![],
            columns: vec![ms(start.iter().copied().map(Some).collect()), ms(end.clone())],
            groups: 1000,
        },
        Case {
            label: "first_response_time/timestamp(ns, UTC)",
            function: "first_response_time",
            leading: vec![],
            trailing: vec![],
            columns: vec![
                Arc::new(
                    TimestampNanosecondArray::from_iter_values(start.iter().map(|v| v * 1_000_000))
                        .with_timezone("UTC"),
                ),
                Arc::new(
                    TimestampNanosecondArray::from_iter(end.iter().map(|v| v.map(|v| v * 1_000_000)))
                        .with_timezone("UTC"),
                ),
            ],
            groups: 1000,
        },
        Case {
            label: "churn_rate/timestamp(ms)",
            function: "churn_rate",
            leading: vec![],
            trailing: vec![period(1_748_736_000_000), period(1_751_328_000_000)],
            columns: vec![ms(start.iter().map(|s| Some(s - 200 * 86_400_000)).collect()), ms(end)],
            groups: 1000,
        },
        Case {
            label: "window_funnel/4 steps",
            function: "window_funnel",
            leading: vec![ScalarValue::Int64(Some(3600))],
            trailing: vec![],
            columns: vec![event_ts, flags(0.4, 2), flags(0.3, 3), flags(0.15, 4), flags(0.08, 5)],
            groups: 100_000,
        },
        Case {
            label: "retention/3 conditions",
            function: "retention",
            leading: vec![],
            trailing: vec![],
            columns: vec![flags(0.3, 6), flags(0.2, 7), flags(0.1, 8)],
            groups: 100_000,
        },
    ]
}

/// Creates a fresh accumulator, as each partition's aggregation does.
type MakeAccumulator = Box<dyn Fn() -> Box<dyn GroupsAccumulator>>;

/// The accumulator DataFusion would create for `case`, and its input columns cast to the types
/// the function's coercion asks for (the cast belongs to the plan, not to the kernel).
fn prepare(case: &Case) -> (MakeAccumulator, Vec<ArrayRef>) {
    let udf: Arc<AggregateUDF> = cxlake::udfs::all_aggregates()
        .into_iter()
        .find(|u| u.name() == case.function)
        .unwrap_or_else(|| panic!("no aggregate named {}", case.function));
    let mut types: Vec<DataType> = case.leading.iter().map(ScalarValue::data_type).collect();
    types.extend(case.columns.iter().map(|c| c.data_type().clone()));
    types.extend(case.trailing.iter().map(ScalarValue::data_type));
    let coerced = udf.coerce_types(&types).unwrap_or(types);
    let first = case.leading.len();
    let columns: Vec<ArrayRef> = case
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| arrow::compute::cast(c, &coerced[first + i]).expect("coercible"))
        .collect();
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| Field::new(format!("c{i}"), c.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let mut args: Vec<Arc<dyn PhysicalExpr>> = case.leading.iter().map(|v| lit(v.clone())).collect();
    for i in 0..columns.len() {
        args.push(col(&format!("c{i}"), &schema).unwrap());
    }
    args.extend(case.trailing.iter().map(|v| lit(v.clone())));
    let expr = AggregateExprBuilder::new(udf, args).schema(schema).alias(case.label).build().expect("aggregate builds");
    assert!(expr.groups_accumulator_supported(), "{} has no GroupsAccumulator", case.function);
    (Box::new(move || expr.create_groups_accumulator().unwrap()), columns)
}

/// Constant arguments arrive as columns of the batch's length, as DataFusion evaluates them.
fn batches(case: &Case, columns: &[ArrayRef]) -> Vec<(Vec<ArrayRef>, Vec<usize>)> {
    let mut r = rng();
    (0..ROWS / BATCH)
        .map(|b| {
            let offset = b * BATCH;
            let mut values: Vec<ArrayRef> = case.leading.iter().map(|v| v.to_array_of_size(BATCH).unwrap()).collect();
            values.extend(columns.iter().map(|c| c.slice(offset, BATCH)));
            values.extend(case.trailing.iter().map(|v| v.to_array_of_size(BATCH).unwrap()));
            let groups = (0..BATCH).map(|_| r.random_range(0..case.groups)).collect();
            (values, groups)
        })
        .collect()
}

fn kernels(c: &mut Criterion) {
    for case in cases() {
        let (create, columns) = prepare(&case);
        let input = batches(&case, &columns);
        let mut group = c.benchmark_group(case.label);
        group.throughput(Throughput::Elements(ROWS as u64));
        group.bench_function("update_batch", |b| {
            b.iter_batched(
                &create,
                |mut acc| {
                    for (values, groups) in &input {
                        acc.update_batch(values, groups, None, case.groups).unwrap();
                    }
                    acc
                },
                BatchSize::LargeInput,
            )
        });
        // Partial states as the partial aggregation of each batch would emit them.
        let states: Vec<(Vec<ArrayRef>, Vec<usize>)> = input
            .iter()
            .map(|(values, groups)| {
                let mut acc = create();
                acc.update_batch(values, groups, None, case.groups).unwrap();
                (acc.state(EmitTo::All).unwrap(), (0..case.groups).collect())
            })
            .collect();
        let state_rows: usize = states.iter().map(|(s, _)| s[0].len()).sum();
        group.throughput(Throughput::Elements(state_rows as u64));
        group.bench_function("merge_batch", |b| {
            b.iter_batched(
                &create,
                |mut acc| {
                    for (state, groups) in &states {
                        acc.merge_batch(state, groups, case.groups).unwrap();
                    }
                    black_box(acc.evaluate(EmitTo::All).unwrap())
                },
                BatchSize::LargeInput,
            )
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(2));
    targets = kernels
}
criterion_main!(benches);
