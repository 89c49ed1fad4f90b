//! Each rate and helpdesk duration against an independent plain-SQL formulation, on the sample
//! lake and on generated data with NULLs (several timestamp units and zones), at 1, 4 and 7
//! target partitions and small batches: ungrouped, grouped, and grouped with FILTER.
//!
//! Rates must agree within 1e-12 relative error. Durations too: the plain formulation averages
//! integer nanosecond differences (`AVG` of BIGINT sums them as f64) and divides once by 1e9,
//! while the functions sum per-row seconds; both round each of at most ~30,000 terms of similar
//! magnitude once, so the relative gap stays around 1e-15 per term, far below 1e-12.

use std::sync::Arc;

use cxlake::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, Int64Array, Int8Array, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray, TimestampSecondArray, UInt64Array,
};
use cxlake::arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use cxlake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use cxlake::arrow::record_batch::RecordBatch;
use cxlake::datafusion::datasource::MemTable;
use cxlake::datafusion::prelude::col;
use cxlake::udfs::functions::{
    avg_response_time, conversion_rate, feedback_response_rate, first_response_time, participation_rate, referral_rate,
    resolution_time, wait_time,
};
use cxlake::Lake;
use cxlake_tests::{assert_batches_close, assert_close, cells, test_lake};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The plain-SQL rate: `truth` is the SQL predicate for a true flag.
fn plain_rate(flag: &str, truth: &str) -> String {
    format!("100.0 * SUM(CASE WHEN {truth} THEN 1 ELSE 0 END) / NULLIF(COUNT({flag}), 0)")
}

/// Nanoseconds since the epoch as BIGINT. Arrow casts keep the UTC-based value when a zone is
/// dropped, so zoned and naive columns alike give the instant's nanoseconds.
fn ns(ts: &str) -> String {
    format!("CAST(arrow_cast({ts}, 'Timestamp(Nanosecond, None)') AS BIGINT)")
}

/// The plain-SQL duration mean, in seconds; `filter` wraps the difference in a CASE.
fn plain_duration(start: &str, end: &str, filter: Option<&str>) -> String {
    let diff = format!("{} - {}", ns(end), ns(start));
    match filter {
        None => format!("AVG({diff}) / 1e9"),
        Some(f) => format!("AVG(CASE WHEN {f} THEN {diff} END) / 1e9"),
    }
}

/// One metric call and its plain formulations (without and with the FILTER predicate).
struct Case {
    metric: String,
    plain: String,
    filtered_plain: String,
}

fn rate(function: &str, flag: &str, truth: &str, filter: &str) -> Case {
    Case {
        metric: format!("{function}({flag})"),
        plain: plain_rate(flag, truth),
        filtered_plain: plain_rate(&format!("CASE WHEN {filter} THEN {flag} END"), &format!("({filter}) AND {truth}")),
    }
}

fn duration(function: &str, start: &str, end: &str, filter: &str) -> Case {
    Case {
        metric: format!("{function}({start}, {end})"),
        plain: plain_duration(start, end, None),
        filtered_plain: plain_duration(start, end, Some(filter)),
    }
}

/// Compares a case over `table`: ungrouped, grouped by `key`, and grouped with FILTER.
async fn compare(lake: &Lake, label: &str, table: &str, key: &str, filter: &str, case: &Case) {
    let by_key = |expr: &str| format!("SELECT {key}, {expr} FROM {table} GROUP BY {key} ORDER BY {key} NULLS FIRST");
    let shapes = [
        (format!("SELECT 0, {} FROM {table}", case.metric), format!("SELECT 0, {} FROM {table}", case.plain)),
        (by_key(&case.metric), by_key(&case.plain)),
        (by_key(&format!("{} FILTER (WHERE {filter})", case.metric)), by_key(&case.filtered_plain)),
    ];
    for (metric_sql, plain_sql) in &shapes {
        let (got, want) = (cells(lake, metric_sql).await, cells(lake, plain_sql).await);
        assert_eq!(got.len(), want.len(), "{label}: row counts differ for\n{metric_sql}\n{plain_sql}");
        assert!(!got.is_empty(), "{label}: no rows for {metric_sql}");
        for (g, w) in got.iter().zip(&want) {
            assert_close(&format!("{label}: {metric_sql}"), g[1], w[1]);
        }
    }
}

const SETTINGS: [(usize, usize); 3] = [(1, 5), (4, 3), (7, 1000)];

#[tokio::test]
async fn rates_match_plain_sql_on_the_sample_lake() {
    for (partitions, batch_size) in SETTINGS {
        let lake = test_lake(partitions, batch_size).await.unwrap();
        let label = format!("sample lake, {partitions} partitions, batches of {batch_size}");
        let cases = [
            (
                "survey_invitations",
                "channel",
                "channel <> 'email'",
                rate("feedback_response_rate", "responded", "responded", "channel <> 'email'"),
            ),
            (
                "customers",
                "region",
                "plan = 'premium'",
                rate("referral_rate", "made_referral", "made_referral", "plan = 'premium'"),
            ),
            (
                "customers",
                "plan",
                "region <> 'NA'",
                rate("participation_rate", "loyalty_member", "loyalty_member = 1", "region <> 'NA'"),
            ),
            (
                "clickstream",
                "device",
                "referrer <> 'social'",
                rate("conversion_rate", "converted", "converted", "referrer <> 'social'"),
            ),
        ];
        for (table, key, filter, case) in &cases {
            compare(&lake, &label, table, key, filter, case).await;
        }
    }
}

#[tokio::test]
async fn durations_match_plain_sql_on_the_sample_lake() {
    for (partitions, batch_size) in SETTINGS {
        let lake = test_lake(partitions, batch_size).await.unwrap();
        let label = format!("sample lake, {partitions} partitions, batches of {batch_size}");
        let complaint = "type = 'complaint'";
        let cases = [
            // ms UTC start, ns UTC end with sub-millisecond precision.
            ("tickets", "channel", complaint, ("first_response_time", "created_at", "first_response_at")),
            // ms UTC start, naive ns end.
            ("tickets", "priority", complaint, ("resolution_time", "created_at", "resolved_at")),
            // ms UTC start, us UTC end.
            ("tickets", "channel", "priority <> 'low'", ("wait_time", "queued_at", "answered_at")),
            ("ticket_replies", "agent_id", "agent_id % 2 = 0", ("avg_response_time", "requested_at", "responded_at")),
        ];
        for (table, key, filter, (function, start, end)) in cases {
            let case = duration(function, start, end, filter);
            compare(&lake, &label, table, key, filter, &case).await;
        }
    }
}

/// Generated rows: 20 groups `g` (one NULL key; group 7 has only NULL flags and NULL ends), a
/// FILTER column `k` independent of the group, ~10% NULLs, flags as BOOLEAN, Int8, Int64 and
/// UInt64, starts in ms (UTC) and s (no zone), ends in ns (+02:00), us (-08:00) and ms (no
/// zone), never before their start, in several MemTable partitions of uneven batches. NULL
/// slots hold garbage (true flags, the flag 5, ends before their starts), which must be ignored.
fn generated_table(seed: u64) -> MemTable {
    let ms_utc = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int32, true),
        Field::new("k", DataType::Int32, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("i8", DataType::Int8, true),
        Field::new("i64", DataType::Int64, true),
        Field::new("u64", DataType::UInt64, true),
        Field::new("start_ms", ms_utc, true),
        Field::new("start_s", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("end_ns", DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())), true),
        Field::new("end_us", DataType::Timestamp(TimeUnit::Microsecond, Some("-08:00".into())), true),
        Field::new("end_ms", DataType::Timestamp(TimeUnit::Millisecond, None), true),
    ]));
    let mut rng = StdRng::seed_from_u64(seed);
    let base_ms: i64 = 1_735_689_600_000; // 2025-01-01T00:00:00Z
    let mut partitions = Vec::new();
    for _ in 0..5 {
        let mut batches = Vec::new();
        for _ in 0..6 {
            let rows = rng.random_range(1..=700);
            let g: Vec<Option<i32>> =
                (0..rows).map(|_| (!rng.random_bool(0.03)).then(|| rng.random_range(0..19))).collect();
            let k: Vec<Option<i32>> =
                (0..rows).map(|_| (!rng.random_bool(0.05)).then(|| rng.random_range(0..10))).collect();
            let empty = |i: usize| g[i] == Some(7);
            let (mut flag, mut flag_valid) = (Vec::new(), Vec::new());
            let (mut start_ms, mut start_valid) = (Vec::new(), Vec::new());
            let (mut end_ns, mut end_valid) = (Vec::new(), Vec::new());
            for i in 0..rows {
                let valid = !empty(i) && !rng.random_bool(0.1);
                flag_valid.push(valid);
                flag.push(if valid { rng.random_bool(0.3) } else { true });
                let s = base_ms + rng.random_range(0..15_552_000_000);
                start_ms.push(s);
                start_valid.push(!rng.random_bool(0.1));
                // Gaps from 0 to ~2 days with nanosecond detail; NULL ends hold an end a day early.
                let valid = !empty(i) && !rng.random_bool(0.1);
                let gap = if valid { rng.random_range(0..172_800_000_000_000i64) } else { -86_400_000_000_000 };
                end_ns.push(s * 1_000_000 + gap);
                end_valid.push(valid);
            }
            let nulls = |valid: &[bool]| Some(NullBuffer::from(valid.to_vec()));
            let int_flags = || flag.iter().zip(&flag_valid).map(|(f, v)| if *v { *f as i64 } else { 5 });
            let ticks = |div: i64| ScalarBuffer::from(end_ns.iter().map(|v| v.div_euclid(div)).collect::<Vec<_>>());
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int32Array::from(g.clone())),
                Arc::new(Int32Array::from(k)),
                Arc::new(BooleanArray::new(BooleanBuffer::from(flag.clone()), nulls(&flag_valid))),
                Arc::new(Int8Array::new(int_flags().map(|v| v as i8).collect(), nulls(&flag_valid))),
                Arc::new(Int64Array::new(int_flags().collect(), nulls(&flag_valid))),
                Arc::new(UInt64Array::new(int_flags().map(|v| v as u64).collect(), nulls(&flag_valid))),
                Arc::new(
                    TimestampMillisecondArray::new(ScalarBuffer::from(start_ms.clone()), nulls(&start_valid))
                        .with_timezone("UTC"),
                ),
                // Truncating a start to whole seconds only moves it earlier.
                Arc::new(TimestampSecondArray::new(
                    start_ms.iter().map(|v| v.div_euclid(1000)).collect(),
                    nulls(&start_valid),
                )),
                Arc::new(TimestampNanosecondArray::new(ticks(1), nulls(&end_valid)).with_timezone("+02:00")),
                // Truncating an end to microseconds or milliseconds keeps it at or after a
                // millisecond start.
                Arc::new(TimestampMicrosecondArray::new(ticks(1000), nulls(&end_valid)).with_timezone("-08:00")),
                Arc::new(TimestampMillisecondArray::new(ticks(1_000_000), nulls(&end_valid))),
            ];
            batches.push(RecordBatch::try_new(Arc::clone(&schema), columns).unwrap());
        }
        partitions.push(batches);
    }
    MemTable::try_new(schema, partitions).unwrap()
}

fn generated_cases(filter: &str) -> Vec<Case> {
    let mut cases = vec![
        rate("conversion_rate", "b", "b", filter),
        rate("feedback_response_rate", "i8", "i8 = 1", filter),
        rate("referral_rate", "i64", "i64 = 1", filter),
        rate("participation_rate", "u64", "u64 = 1", filter),
    ];
    for (function, start, end) in [
        ("resolution_time", "start_ms", "end_ns"),
        ("first_response_time", "start_s", "end_us"),
        ("wait_time", "start_ms", "end_us"),
        ("avg_response_time", "start_s", "end_ns"),
        ("resolution_time", "start_s", "end_ms"),
        ("wait_time", "start_ms", "end_ms"),
    ] {
        cases.push(duration(function, start, end, filter));
    }
    cases
}

#[tokio::test]
async fn rates_and_durations_match_plain_sql_on_generated_data_with_nulls() {
    for (partitions, batch_size) in SETTINGS {
        let lake = test_lake(partitions, batch_size).await.unwrap();
        lake.context().register_table("gen", Arc::new(generated_table(7))).unwrap();
        let label = format!("generated, {partitions} partitions, batches of {batch_size}");
        let filter = "k % 3 <> 1";
        for case in generated_cases(filter) {
            compare(&lake, &label, "gen", "g", filter, &case).await;
        }
    }
}

/// With keys that barely repeat, DataFusion stops aggregating partially and turns each row into
/// a state of its own (`convert_to_state`); the results must not change.
#[tokio::test]
async fn rates_and_durations_match_plain_sql_when_partial_aggregation_is_skipped() {
    for (partitions, batch_size) in [(4, 64), (7, 1000)] {
        let lake = test_lake(partitions, batch_size).await.unwrap();
        lake.context().register_table("gen", Arc::new(generated_table(3))).unwrap();
        lake.execute("SET datafusion.execution.skip_partial_aggregation_probe_rows_threshold = 1").await.unwrap();
        lake.execute("SET datafusion.execution.skip_partial_aggregation_probe_ratio_threshold = 0.0").await.unwrap();
        lake.execute("CREATE VIEW fine AS SELECT *, CAST(start_s AS BIGINT) % 211 AS key FROM gen").await.unwrap();
        let label = format!("skipped partial aggregation, {partitions} partitions, batches of {batch_size}");
        let filter = "k <> 2";
        for case in generated_cases(filter) {
            compare(&lake, &label, "fine", "key", filter, &case).await;
        }
    }
}

#[tokio::test]
async fn expression_builders_match_sql() {
    let lake = test_lake(4, 64).await.unwrap();
    lake.context().register_table("gen", Arc::new(generated_table(11))).unwrap();
    let df = lake.context().table("gen").await.unwrap();
    let built = df
        .aggregate(
            vec![col("g")],
            vec![
                conversion_rate(col("b")).alias("c"),
                feedback_response_rate(col("i8")).alias("f"),
                referral_rate(col("i64")).alias("r"),
                participation_rate(col("u64")).alias("p"),
                first_response_time(col("start_ms"), col("end_ns")).alias("frt"),
                avg_response_time(col("start_s"), col("end_us")).alias("art"),
                resolution_time(col("start_ms"), col("end_ms")).alias("rt"),
                wait_time(col("start_s"), col("end_ns")).alias("wt"),
            ],
        )
        .unwrap()
        .sort(vec![col("g").sort(true, true)])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let sql = cells(
        &lake,
        "SELECT g, conversion_rate(b), feedback_response_rate(i8), referral_rate(i64), participation_rate(u64), \
         first_response_time(start_ms, end_ns), avg_response_time(start_s, end_us), resolution_time(start_ms, end_ms), \
         wait_time(start_s, end_ns) FROM gen GROUP BY g ORDER BY g NULLS FIRST",
    )
    .await;
    assert_batches_close(&built, &sql, 19);
}
