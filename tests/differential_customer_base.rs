//! Each customer-base metric against an independent plain-SQL formulation of the SPEC's
//! definitions (SUM(CASE WHEN ...) for the customers at the start, lost and new), on the sample
//! lake's subscriptions for every month of 2025-01..2025-06 (a calendar join: per-row periods) and
//! on generated data with NULLs, mixed timestamp units and dates, in several partitions of uneven
//! batches, at 1, 4 and 7 target partitions and small batches. Results must agree within 1e-12
//! relative error.

use std::sync::Arc;

use cxlake::arrow::array::{
    ArrayRef, Date32Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampSecondArray,
};
use cxlake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use cxlake::datafusion::datasource::MemTable;
use cxlake::datafusion::functions::core::expr_ext::FieldAccessor;
use cxlake::datafusion::prelude::col;
use cxlake::udfs::functions::{churn_rate, customer_movement, retention_rate};
use cxlake::Lake;
use cxlake_tests::{assert_batches_close, assert_close, cells, test_lake};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The four arguments as SQL expressions.
#[derive(Clone, Copy)]
struct Args<'a> {
    start: &'a str,
    end: &'a str,
    period_start: &'a str,
    period_end: &'a str,
}

/// One metric written twice: as the cxlake function (`%F%` marks where a FILTER clause goes)
/// and as plain SQL.
struct Pair {
    what: &'static str,
    metric: String,
    plain: String,
}

/// The SPEC's definitions in plain SQL. With `skip_invalid`, rows with an end before their
/// start or an empty period are left out, as `cxlake.invalid_input = 'skip'` does.
fn pairs(a: Args, skip_invalid: bool) -> Vec<Pair> {
    let Args { start: s, end: e, period_start: ps, period_end: pe } = a;
    let valid = if skip_invalid { format!("({e} IS NULL OR {e} >= {s}) AND {pe} > {ps} AND ") } else { String::new() };
    let count = |cond: String| format!("SUM(CASE WHEN {valid}{cond} THEN 1 ELSE 0 END)");
    let rows = count(format!("{s} IS NOT NULL AND {ps} IS NOT NULL AND {pe} IS NOT NULL"));
    let at_start = count(format!("{s} < {ps} AND ({e} IS NULL OR {e} >= {ps}) AND {pe} IS NOT NULL"));
    let lost = count(format!("{s} < {ps} AND {e} >= {ps} AND {e} < {pe}"));
    let new = count(format!("{ps} <= {s} AND {s} < {pe} AND ({e} IS NULL OR {e} >= {pe})"));
    let at_end = format!("({at_start} - {lost} + {new})");
    let call = |f: &str| format!("{f}({s}, {e}, {ps}, {pe})%F%");
    let movement = call("customer_movement");
    let field = |what: &'static str, name: &str, plain: &str| Pair {
        what,
        metric: format!("{movement}['{name}']"),
        plain: format!("CASE WHEN {rows} > 0 THEN {plain} END"),
    };
    vec![
        Pair {
            what: "churn_rate",
            metric: call("churn_rate"),
            plain: format!("100.0 * {lost} / NULLIF({at_start}, 0)"),
        },
        Pair {
            what: "retention_rate",
            metric: call("retention_rate"),
            plain: format!("100.0 * ({at_end} - {new}) / NULLIF({at_start}, 0)"),
        },
        field("customer_movement.at_start", "at_start", &at_start),
        field("customer_movement.new", "new", &new),
        field("customer_movement.lost", "lost", &lost),
        field("customer_movement.at_end", "at_end", &at_end),
    ]
}

/// Compares every pair over `from`: ungrouped, grouped by `key`, and grouped with a FILTER
/// clause, whose plain formulation turns the start of rows outside the filter into NULL (such
/// rows do not count). Returns how many non-NULL comparisons were made.
async fn compare(lake: &Lake, label: &str, from: &str, key: &str, filter: &str, a: Args<'_>, skip: bool) -> usize {
    let filtered_start = format!("(CASE WHEN {filter} THEN {} END)", a.start);
    let plain = pairs(a, skip);
    let filtered = pairs(Args { start: &filtered_start, ..a }, skip);
    let mut non_null = 0;
    for (pair, filtered_pair) in plain.iter().zip(&filtered) {
        let by_key = |expr: &str| format!("SELECT 0, {expr} FROM {from} GROUP BY {key} ORDER BY {key} NULLS FIRST");
        let shapes = [
            (
                format!("SELECT 0, {} FROM {from}", pair.metric.replace("%F%", "")),
                format!("SELECT 0, {} FROM {from}", pair.plain),
            ),
            (by_key(&pair.metric.replace("%F%", "")), by_key(&pair.plain)),
            (by_key(&pair.metric.replace("%F%", &format!(" FILTER (WHERE {filter})"))), by_key(&filtered_pair.plain)),
        ];
        for (metric_sql, plain_sql) in &shapes {
            let (got, want) = (cells(lake, metric_sql).await, cells(lake, plain_sql).await);
            assert_eq!(got.len(), want.len(), "{label}: row counts differ for\n{metric_sql}\n{plain_sql}");
            for (g, w) in got.iter().zip(&want) {
                assert_close(&format!("{label} {}: {metric_sql}", pair.what), g[1], w[1]);
                non_null += g[1].is_some() as usize;
            }
        }
    }
    non_null
}

const SETTINGS: [(usize, usize); 3] = [(1, 5), (4, 3), (7, 1000)];

const MONTHS: &str =
    "(SELECT unnest(generate_series(DATE '2025-01-01', DATE '2025-06-01', INTERVAL '1 month')) AS month)";

#[tokio::test]
async fn customer_base_metrics_match_plain_sql_on_the_sample_lake() {
    for (partitions, batch_size) in SETTINGS {
        let lake = test_lake(partitions, batch_size).await.unwrap();
        lake.execute(&format!(
            "CREATE VIEW subs_by_month AS SELECT s.*, month, CAST(month + INTERVAL '1 month' AS TIMESTAMP) AS next_month \
             FROM subscriptions s CROSS JOIN {MONTHS}"
        ))
        .await
        .unwrap();
        let label = format!("sample lake, {partitions} partitions, batches of {batch_size}");
        let args = Args { start: "started_at", end: "ended_at", period_start: "month", period_end: "next_month" };
        let compared = compare(&lake, &label, "subs_by_month", "month", "plan <> 'basic'", args, false).await;
        // Six pairs, each ungrouped and for six months with and without FILTER: nothing NULL.
        assert_eq!(compared, 6 * (1 + 6 + 6), "{label}: some months gave NULL");
        // Constant bounds, grouped by plan.
        let args = Args {
            start: "started_at",
            end: "ended_at",
            period_start: "TIMESTAMP '2025-03-01 00:00:00'",
            period_end: "DATE '2025-04-01'",
        };
        compare(&lake, &label, "subscriptions", "plan", "customer_id % 3 <> 0", args, false).await;
    }
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Generated customers: 12 groups (one NULL key, one group whose starts are all NULL), starts
/// in UTC milliseconds, ends in naive microseconds (30% NULL, often exactly on a month
/// boundary), per-row periods of one to three months from a DATE to a timestamp in seconds,
/// some NULL bounds; `bad_end` is `end` with about 3% of ends before their start and `bad_pe`
/// `period_end` with about 3% of empty periods. Five MemTable partitions of uneven batches.
fn generated_table(seed: u64) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int32, true),
        Field::new("k", DataType::Utf8, true),
        Field::new("s", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true),
        Field::new("e", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("bad_end", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new("ps", DataType::Date32, true),
        Field::new("pe", DataType::Timestamp(TimeUnit::Second, None), true),
        Field::new("bad_pe", DataType::Timestamp(TimeUnit::Second, None), true),
    ]));
    let month_starts: Vec<i64> = (0..30).map(|i| days_from_civil(2024 + i / 12, i % 12 + 1, 1)).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut partitions = Vec::new();
    for _ in 0..5 {
        let mut batches = Vec::new();
        for _ in 0..6 {
            let rows = rng.random_range(1..=700);
            let (mut g, mut k, mut s, mut e, mut bad_end) = (vec![], vec![], vec![], vec![], vec![]);
            let (mut ps, mut pe, mut bad_pe) = (vec![], vec![], vec![]);
            for _ in 0..rows {
                let group = (!rng.random_bool(0.03)).then(|| rng.random_range(0..11));
                g.push(group);
                k.push(group.map(|g| ["a", "b", "c"][g as usize % 3]));
                // An instant in seconds: a month boundary, a midnight, or any second.
                let instant = |rng: &mut StdRng| -> i64 {
                    match rng.random_range(0..3) {
                        0 => month_starts[rng.random_range(0..24)] * 86_400,
                        1 => (month_starts[0] + rng.random_range(0..730)) * 86_400,
                        _ => month_starts[0] * 86_400 + rng.random_range(0..730 * 86_400),
                    }
                };
                let start = instant(&mut rng);
                let start_null = group == Some(5) || rng.random_bool(0.05);
                s.push((!start_null).then_some(start * 1000));
                let end = (!rng.random_bool(0.3)).then(|| start.max(instant(&mut rng)));
                e.push(end.map(|v| v * 1_000_000));
                let broken = rng.random_bool(0.03);
                bad_end.push(if broken { Some((start - 1) * 1_000_000) } else { end.map(|v| v * 1_000_000) });
                let first = rng.random_range(6..24);
                let last = first + rng.random_range(1..=3);
                ps.push((!rng.random_bool(0.03)).then_some(month_starts[first] as i32));
                let period_end = (!rng.random_bool(0.03)).then_some(month_starts[last] * 86_400);
                pe.push(period_end);
                bad_pe.push(if rng.random_bool(0.03) { Some(month_starts[first] * 86_400) } else { period_end });
            }
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int32Array::from(g)),
                Arc::new(StringArray::from(k)),
                Arc::new(TimestampMillisecondArray::from(s).with_timezone("UTC")),
                Arc::new(TimestampMicrosecondArray::from(e)),
                Arc::new(TimestampMicrosecondArray::from(bad_end)),
                Arc::new(Date32Array::from(ps)),
                Arc::new(TimestampSecondArray::from(pe)),
                Arc::new(TimestampSecondArray::from(bad_pe)),
            ];
            batches.push(RecordBatch::try_new(Arc::clone(&schema), columns).unwrap());
        }
        partitions.push(batches);
    }
    MemTable::try_new(schema, partitions).unwrap()
}

#[tokio::test]
async fn customer_base_metrics_match_plain_sql_on_generated_data_with_nulls() {
    for (partitions, batch_size) in SETTINGS {
        let lake = test_lake(partitions, batch_size).await.unwrap();
        lake.context().register_table("gen", Arc::new(generated_table(7))).unwrap();
        let label = format!("generated, {partitions} partitions, batches of {batch_size}");
        let args = Args { start: "s", end: "e", period_start: "ps", period_end: "pe" };
        let compared = compare(&lake, &label, "gen", "g", "k <> 'b'", args, false).await;
        assert!(compared > 100, "{label}: only {compared} non-NULL comparisons");
        compare(&lake, &label, "gen", "k", "g > 3", args, false).await;
        // Constant bounds: a timestamp literal and a date.
        let constant =
            Args { period_start: "TIMESTAMP '2025-01-01 00:00:00'", period_end: "DATE '2025-04-01'", ..args };
        compare(&lake, &format!("{label}, constant bounds"), "gen", "g", "k <> 'c'", constant, false).await;
        // Invalid rows are ignored in 'skip' mode, and fail the query in 'error' mode.
        let invalid = Args { end: "bad_end", period_end: "bad_pe", ..args };
        for f in ["churn_rate", "retention_rate", "customer_movement"] {
            let sql = format!("SELECT {f}(s, bad_end, ps, bad_pe) FROM gen");
            let err = lake.execute(&sql).await.expect_err("invalid input must fail in 'error' mode");
            assert!(err.to_string().contains(&format!("{f}: ")), "{err}");
        }
        lake.execute("SET cxlake.invalid_input = 'skip'").await.unwrap();
        compare(&lake, &format!("{label}, skip"), "gen", "g", "k <> 'a'", invalid, true).await;
        lake.execute("SET cxlake.invalid_input = 'error'").await.unwrap();
    }
}

/// With keys that barely repeat, DataFusion stops aggregating partially and turns each row into
/// a state of its own (`convert_to_state`); the results must not change.
#[tokio::test]
async fn customer_base_metrics_match_plain_sql_when_partial_aggregation_is_skipped() {
    for (partitions, batch_size) in [(4, 64), (7, 1000)] {
        let lake = test_lake(partitions, batch_size).await.unwrap();
        lake.context().register_table("gen", Arc::new(generated_table(3))).unwrap();
        lake.execute("SET datafusion.execution.skip_partial_aggregation_probe_rows_threshold = 1").await.unwrap();
        lake.execute("SET datafusion.execution.skip_partial_aggregation_probe_ratio_threshold = 0.0").await.unwrap();
        lake.execute("CREATE VIEW fine AS SELECT *, CAST(date_part('epoch', s) AS BIGINT) % 211 AS fk FROM gen")
            .await
            .unwrap();
        let label = format!("skipped partial aggregation, {partitions} partitions, batches of {batch_size}");
        let args = Args { start: "s", end: "e", period_start: "ps", period_end: "pe" };
        compare(&lake, &label, "fine", "fk", "k <> 'b'", args, false).await;
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
                churn_rate(col("s"), col("e"), col("ps"), col("pe")).alias("churn"),
                retention_rate(col("s"), col("e"), col("ps"), col("pe")).alias("crr"),
                customer_movement(col("s"), col("e"), col("ps"), col("pe")).field("new").alias("new"),
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
        "SELECT g, churn_rate(s, e, ps, pe), retention_rate(s, e, ps, pe), customer_movement(s, e, ps, pe)['new'] \
         FROM gen GROUP BY g ORDER BY g NULLS FIRST",
    )
    .await;
    assert_batches_close(&built, &sql, 11);
}
