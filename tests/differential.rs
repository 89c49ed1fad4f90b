//! Each survey metric against an independent plain-SQL formulation (CASE WHEN / COUNT / SUM),
//! on the sample lake and on generated data with NULLs, at 1, 4 and 7 target partitions and
//! small batches. Results must agree within 1e-12 relative error.

use std::sync::Arc;

use cxlake::arrow::array::{ArrayRef, Decimal128Array, Float32Array, Float64Array, Int32Array, Int8Array, StringArray};
use cxlake::arrow::datatypes::{DataType, Field, Schema};
use cxlake::arrow::record_batch::RecordBatch;
use cxlake::datafusion::datasource::MemTable;
use cxlake::datafusion::functions::core::expr_ext::FieldAccessor;
use cxlake::datafusion::prelude::{col, lit};
use cxlake::udfs::functions::{ces, csat, iqs, nps, nps_ci, nps_counts};
use cxlake::Lake;
use cxlake_tests::{assert_batches_close, assert_close, cells, test_lake};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const Z95: &str = "1.959963984540054";

/// One metric written twice: as the cxlake function and as plain SQL. `%F%` in `metric` marks
/// where a FILTER clause goes.
struct Pair {
    what: &'static str,
    metric: &'static str,
    plain: String,
}

fn pairs(score: &str, sat: &str, effort: &str, quality: &str, weight: &str) -> Vec<Pair> {
    let n = format!("COUNT({score})");
    let prom = format!("SUM(CASE WHEN {score} >= 9 THEN 1 WHEN {score} IS NOT NULL THEN 0 END)");
    let det = format!("SUM(CASE WHEN {score} <= 6 THEN 1 WHEN {score} IS NOT NULL THEN 0 END)");
    let p = format!("(CAST({prom} AS DOUBLE) / NULLIF({n}, 0))");
    let d = format!("(CAST({det} AS DOUBLE) / NULLIF({n}, 0))");
    let nps_plain = format!("100.0 * ({p} - {d})");
    let se = format!("100.0 * sqrt(({p} + {d} - ({p} - {d}) * ({p} - {d})) / {n})");
    vec![
        Pair { what: "nps", metric: format!("nps({score})%F%").leak(), plain: nps_plain.clone() },
        Pair {
            what: "nps_counts.promoters",
            metric: format!("nps_counts({score})%F%['promoters']").leak(),
            plain: prom.clone(),
        },
        Pair {
            what: "nps_counts.passives",
            metric: format!("nps_counts({score})%F%['passives']").leak(),
            plain: format!("SUM(CASE WHEN {score} IN (7, 8) THEN 1 WHEN {score} IS NOT NULL THEN 0 END)"),
        },
        Pair {
            what: "nps_counts.detractors",
            metric: format!("nps_counts({score})%F%['detractors']").leak(),
            plain: det.clone(),
        },
        Pair {
            what: "nps_counts.responses",
            metric: format!("nps_counts({score})%F%['responses']").leak(),
            plain: format!("NULLIF({n}, 0)"),
        },
        Pair {
            what: "nps_ci.lower",
            metric: format!("nps_ci({score})%F%['lower']").leak(),
            plain: format!("CASE WHEN {n} > 0 THEN greatest(-100.0, {nps_plain} - {Z95} * {se}) END"),
        },
        Pair {
            what: "nps_ci.upper",
            metric: format!("nps_ci({score})%F%['upper']").leak(),
            plain: format!("CASE WHEN {n} > 0 THEN least(100.0, {nps_plain} + {Z95} * {se}) END"),
        },
        Pair {
            what: "csat",
            metric: format!("csat({sat})%F%").leak(),
            plain: format!("100.0 * SUM(CASE WHEN {sat} >= 4 THEN 1 ELSE 0 END) / NULLIF(COUNT({sat}), 0)"),
        },
        Pair {
            what: "csat(threshold 3)",
            metric: format!("csat({sat}, 3)%F%").leak(),
            plain: format!("100.0 * SUM(CASE WHEN {sat} >= 3 THEN 1 ELSE 0 END) / NULLIF(COUNT({sat}), 0)"),
        },
        Pair {
            what: "ces",
            metric: format!("ces({effort})%F%").leak(),
            plain: format!("CAST(SUM({effort}) AS DOUBLE) / NULLIF(COUNT({effort}), 0)"),
        },
        Pair {
            what: "iqs",
            metric: format!("iqs({quality}, {weight})%F%").leak(),
            plain: format!(
                "CAST(SUM({quality} * {weight}) AS DOUBLE) / NULLIF(SUM(CASE WHEN {quality} IS NOT NULL THEN {weight} END), 0)"
            ),
        },
    ]
}

/// The inputs of one comparison: score, satisfaction, effort, quality and weight columns.
type Inputs<'a> = [&'a str; 5];

fn pairs_of(inputs: Inputs, wrap: impl Fn(&str) -> String) -> Vec<Pair> {
    let [score, sat, effort, quality, weight] = inputs.map(wrap);
    pairs(&score, &sat, &effort, &quality, &weight)
}

/// Compares every pair over `table`: ungrouped, grouped by `key`, and grouped with a FILTER
/// clause, whose plain formulation feeds the metric `CASE WHEN filter THEN column END` (rows
/// outside the filter become NULLs, which do not count).
async fn compare(
    lake: &Lake,
    label: &str,
    table: &str,
    key: &str,
    filter: &str,
    inputs: Inputs<'_>,
    only: Option<&str>,
) {
    let plain = pairs_of(inputs, |c| c.to_string());
    let filtered = pairs_of(inputs, |c| format!("CASE WHEN {filter} THEN {c} END"));
    for (pair, filtered_pair) in plain.iter().zip(&filtered) {
        if only.is_some_and(|o| o != pair.what) {
            continue;
        }
        let by_key =
            |expr: &str| format!("SELECT {key}, {expr} FROM {table} GROUP BY {key} ORDER BY {key} NULLS FIRST");
        let shapes = [
            (
                format!("SELECT 0, {} FROM {table}", pair.metric.replace("%F%", "")),
                format!("SELECT 0, {} FROM {table}", pair.plain),
            ),
            (by_key(&pair.metric.replace("%F%", "")), by_key(&pair.plain)),
            (by_key(&pair.metric.replace("%F%", &format!(" FILTER (WHERE {filter})"))), by_key(&filtered_pair.plain)),
        ];
        for (metric_sql, plain_sql) in &shapes {
            let (got, want) = (cells(lake, metric_sql).await, cells(lake, plain_sql).await);
            assert_eq!(got.len(), want.len(), "{label}: row counts differ for\n{metric_sql}\n{plain_sql}");
            for (g, w) in got.iter().zip(&want) {
                assert_close(&format!("{label} {}: {metric_sql}", pair.what), g[1], w[1]);
            }
        }
    }
}

/// Generated answers: 20 groups (one NULL key, one group with only NULL scores), every score
/// type, about 10% NULLs, in several MemTable partitions of uneven batches.
fn generated_table(seed: u64) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Int32, true),
        Field::new("ch", DataType::Utf8, true),
        Field::new("s8", DataType::Int8, true),
        Field::new("sf", DataType::Float32, true),
        Field::new("sd", DataType::Decimal128(5, 1), true),
        Field::new("sat", DataType::Int32, true),
        Field::new("eff", DataType::Float64, true),
        Field::new("q", DataType::Float64, true),
        Field::new("w", DataType::Float64, true),
    ]));
    let mut rng = StdRng::seed_from_u64(seed);
    let mut partitions = Vec::new();
    for _ in 0..5 {
        let mut batches = Vec::new();
        for _ in 0..6 {
            let rows = rng.random_range(1..=700);
            let maybe = |v: f64, rng: &mut StdRng| (!rng.random_bool(0.1)).then_some(v);
            let g: Vec<Option<i32>> =
                (0..rows).map(|_| (!rng.random_bool(0.03)).then(|| rng.random_range(0..19))).collect();
            let nulls_only = |i: usize| g[i] == Some(7);
            let score: Vec<Option<f64>> = (0..rows)
                .map(|i| if nulls_only(i) { None } else { maybe(rng.random_range(0..=10) as f64, &mut rng) })
                .collect();
            let sat: Vec<Option<i32>> =
                (0..rows).map(|_| maybe(rng.random_range(1..=5) as f64, &mut rng).map(|v| v as i32)).collect();
            let eff: Vec<Option<f64>> = (0..rows).map(|_| maybe(rng.random_range(1.0..7.0), &mut rng)).collect();
            let q: Vec<Option<f64>> = (0..rows).map(|_| maybe(rng.random_range(0.0..100.0), &mut rng)).collect();
            let w: Vec<Option<f64>> =
                (0..rows).map(|_| maybe(rng.random_range(0..4) as f64 * 0.25, &mut rng)).collect();
            let ch: Vec<Option<&str>> =
                g.iter().map(|g| g.map(|g| ["app", "web", "email", "phone"][g as usize % 4])).collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(Int32Array::from(g.clone())),
                Arc::new(StringArray::from(ch)),
                Arc::new(Int8Array::from(score.iter().map(|v| v.map(|v| v as i8)).collect::<Vec<_>>())),
                Arc::new(Float32Array::from(score.iter().map(|v| v.map(|v| v as f32)).collect::<Vec<_>>())),
                Arc::new(
                    Decimal128Array::from(score.iter().map(|v| v.map(|v| v as i128 * 10)).collect::<Vec<_>>())
                        .with_precision_and_scale(5, 1)
                        .unwrap(),
                ),
                Arc::new(Int32Array::from(sat)),
                Arc::new(Float64Array::from(eff)),
                Arc::new(Float64Array::from(q)),
                Arc::new(Float64Array::from(w)),
            ];
            batches.push(RecordBatch::try_new(Arc::clone(&schema), columns).unwrap());
        }
        partitions.push(batches);
    }
    MemTable::try_new(schema, partitions).unwrap()
}

const SETTINGS: [(usize, usize); 3] = [(1, 5), (4, 3), (7, 1000)];

#[tokio::test]
async fn survey_metrics_match_plain_sql_on_the_sample_lake() {
    for (partitions, batch_size) in SETTINGS {
        let lake = test_lake(partitions, batch_size).await.unwrap();
        let label = format!("sample lake, {partitions} partitions, batches of {batch_size}");
        let survey = ["score", "satisfaction", "effort", "score", "1"];
        compare(&lake, &label, "surveys", "channel", "region <> 'EMEA'", survey, None).await;
        let qa = ["score", "score", "score", "score", "weight"];
        compare(&lake, &label, "qa_reviews", "criterion", "score > 50", qa, Some("iqs")).await;
    }
}

#[tokio::test]
async fn survey_metrics_match_plain_sql_on_generated_data_with_nulls() {
    for (partitions, batch_size) in SETTINGS {
        let lake = test_lake(partitions, batch_size).await.unwrap();
        lake.context().register_table("gen", Arc::new(generated_table(7))).unwrap();
        let label = format!("generated, {partitions} partitions, batches of {batch_size}");
        for score in ["s8", "sf", "sd"] {
            let inputs = [score, "sat", "eff", "q", "w"];
            compare(&lake, &format!("{label}, score {score}"), "gen", "g", "q > 30", inputs, None).await;
        }
        // A string key, as in the benchmark.
        compare(&lake, &label, "gen", "ch", "sat <> 3", ["s8", "sat", "eff", "q", "w"], None).await;
    }
}

/// With keys that barely repeat, DataFusion stops aggregating partially and turns each row into
/// a state of its own (`convert_to_state`); the results must not change.
#[tokio::test]
async fn survey_metrics_match_plain_sql_when_partial_aggregation_is_skipped() {
    for (partitions, batch_size) in [(4, 64), (7, 1000)] {
        let lake = test_lake(partitions, batch_size).await.unwrap();
        lake.context().register_table("gen", Arc::new(generated_table(3))).unwrap();
        lake.execute("SET datafusion.execution.skip_partial_aggregation_probe_rows_threshold = 1").await.unwrap();
        lake.execute("SET datafusion.execution.skip_partial_aggregation_probe_ratio_threshold = 0.0").await.unwrap();
        lake.execute("CREATE VIEW fine AS SELECT *, CAST(q * 10 AS INT) % 211 AS k FROM gen").await.unwrap();
        let label = format!("skipped partial aggregation, {partitions} partitions, batches of {batch_size}");
        compare(&lake, &label, "fine", "k", "sat <> 2", ["s8", "sat", "eff", "q", "w"], None).await;
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
                nps(col("s8")).alias("nps"),
                nps_counts(col("s8")).field("detractors").alias("det"),
                nps_ci(col("s8"), Some(lit(0.9))).field("upper").alias("upper"),
                csat(col("sat"), Some(lit(3))).alias("csat"),
                ces(col("eff")).alias("ces"),
                iqs(col("q"), col("w")).alias("iqs"),
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
        "SELECT g, nps(s8), nps_counts(s8)['detractors'], nps_ci(s8, 0.9)['upper'], csat(sat, 3), ces(eff), iqs(q, w) \
         FROM gen GROUP BY g ORDER BY g NULLS FIRST",
    )
    .await;
    assert_batches_close(&built, &sql, 19);
}
