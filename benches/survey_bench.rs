//! Survey metrics against their plain-SQL formulation and against the floor, side by side in
//! one run.
//!
//! For each of `nps`, `csat` and `ces`, ungrouped and grouped by low-cardinality string keys,
//! three queries run over the same in-memory rows: the cxlake function, the CASE WHEN
//! formulation a user would otherwise write, and `count(x), sum(x)` — the least any aggregate
//! over the column can cost. Runs are interleaved round-robin and the median is reported, so
//! noise from a shared machine hits all three alike; the figures that matter are the ratios.
//!
//! ```text
//! cargo run --release -p cxlake-benches --bin survey_bench -- [--rows N] [--partitions N] [--runs N]
//! ```

mod harness;

use std::sync::Arc;

use cxlake::arrow::array::{ArrayRef, Int32Array, StringArray};
use cxlake::arrow::datatypes::{DataType, Field, Schema};
use cxlake::arrow::record_batch::RecordBatch;
use cxlake::datafusion::datasource::MemTable;
use cxlake::Lake;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use harness::{parse_options, run_cases, Case};

/// Survey answers: NPS 0–10, satisfaction 1–5, effort 1–7 (INT, about 2% NULL each), with
/// channel (5 values) and region (4 values) keys, in `partitions` partitions of 8192-row batches.
fn answers(rows: usize, partitions: usize) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("channel", DataType::Utf8, false),
        Field::new("region", DataType::Utf8, false),
        Field::new("score", DataType::Int32, true),
        Field::new("satisfaction", DataType::Int32, true),
        Field::new("effort", DataType::Int32, true),
    ]));
    const CHANNELS: [&str; 5] = ["email", "web", "app", "phone", "chat"];
    const REGIONS: [&str; 4] = ["NA", "EMEA", "APAC", "LATAM"];
    let mut rng = SmallRng::seed_from_u64(2025);
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions.max(1)];
    let mut made = 0;
    let mut next = 0;
    while made < rows {
        let n = (rows - made).min(8192);
        let answer = |max: i32, rng: &mut SmallRng| -> Vec<Option<i32>> {
            (0..n).map(|_| (!rng.random_bool(0.02)).then(|| rng.random_range(0..=max))).collect()
        };
        let score = answer(10, &mut rng);
        let satisfaction: Vec<Option<i32>> = answer(4, &mut rng).into_iter().map(|v| v.map(|v| v + 1)).collect();
        let effort: Vec<Option<i32>> = answer(6, &mut rng).into_iter().map(|v| v.map(|v| v + 1)).collect();
        let channel: Vec<&str> = (0..n).map(|_| CHANNELS[rng.random_range(0..CHANNELS.len())]).collect();
        let region: Vec<&str> = (0..n).map(|_| REGIONS[rng.random_range(0..REGIONS.len())]).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(channel)),
            Arc::new(StringArray::from(region)),
            Arc::new(Int32Array::from(score)),
            Arc::new(Int32Array::from(satisfaction)),
            Arc::new(Int32Array::from(effort)),
        ];
        parts[next].push(RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch"));
        next = (next + 1) % parts.len();
        made += n;
    }
    MemTable::try_new(schema, parts).expect("table")
}

fn cases() -> Vec<Case> {
    let metrics: [(&str, &str, String); 3] = [
        (
            "nps",
            "nps(score)",
            "100.0 * (SUM(CASE WHEN score >= 9 THEN 1 ELSE 0 END) - SUM(CASE WHEN score <= 6 THEN 1 ELSE 0 END)) \
             / COUNT(score)"
                .into(),
        ),
        (
            "csat",
            "csat(satisfaction)",
            "100.0 * SUM(CASE WHEN satisfaction >= 4 THEN 1 ELSE 0 END) / COUNT(satisfaction)".into(),
        ),
        ("ces", "ces(effort)", "CAST(SUM(effort) AS DOUBLE) / COUNT(effort)".into()),
    ];
    let floors = [("nps", "score"), ("csat", "satisfaction"), ("ces", "effort")];
    let mut cases = Vec::new();
    for keys in ["", "channel", "channel, region"] {
        for (metric, call, plain) in &metrics {
            let column = floors.iter().find(|(m, _)| m == metric).map(|(_, c)| *c).unwrap_or("score");
            let query = |select: &str| {
                if keys.is_empty() {
                    format!("SELECT {select} FROM answers")
                } else {
                    format!("SELECT {keys}, {select} FROM answers GROUP BY {keys}")
                }
            };
            cases.push(Case {
                metric,
                keys,
                queries: vec![
                    ("cxlake", query(call)),
                    ("CASE WHEN", query(plain)),
                    ("floor", query(&format!("count({column}), sum({column})"))),
                ],
            });
        }
    }
    cases
}

#[tokio::main]
async fn main() -> cxlake::Result<()> {
    let options = parse_options();
    let lake = Lake::builder().target_partitions(options.partitions).build().await?;
    eprintln!("generating {} rows in {} partitions...", options.rows, options.partitions);
    lake.context().register_table("answers", Arc::new(answers(options.rows, options.partitions)))?;
    run_cases(&lake, &options, &cases()).await
}
