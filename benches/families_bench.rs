//! The rate, helpdesk-duration and customer-base functions against their plain-SQL formulations,
//! grouped by a low-cardinality string key, side by side in one run.
//!
//! ```text
//! cargo run --release -p cxlake-benches --bin families_bench -- [--rows N] [--partitions N] [--runs N]
//! ```

mod harness;

use std::sync::Arc;

use cxlake::arrow::array::{ArrayRef, BooleanArray, Int32Array, StringArray, TimestampMillisecondArray};
use cxlake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use cxlake::arrow::record_batch::RecordBatch;
use cxlake::datafusion::datasource::MemTable;
use cxlake::Lake;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use harness::{parse_options, run_cases, Case};

/// Events with a channel key, a BOOLEAN and a 0/1 INT flag (2% NULL), and a start and end
/// timestamp in milliseconds (end 0–2 days after start, 10% NULL: still open), starts spread
/// over 2024–2025.
fn events(rows: usize, partitions: usize) -> MemTable {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("channel", DataType::Utf8, false),
        Field::new("flag", DataType::Boolean, true),
        Field::new("flag01", DataType::Int32, true),
        Field::new("started_at", ts.clone(), true),
        Field::new("ended_at", ts, true),
    ]));
    const CHANNELS: [&str; 5] = ["email", "web", "app", "phone", "chat"];
    const START: i64 = 1_704_067_200_000; // 2024-01-01
    const TWO_YEARS_MS: i64 = 2 * 365 * 86_400_000;
    let mut rng = SmallRng::seed_from_u64(2025);
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions.max(1)];
    let (mut made, mut next) = (0, 0);
    while made < rows {
        let n = (rows - made).min(8192);
        let flag: Vec<Option<bool>> = (0..n).map(|_| (!rng.random_bool(0.02)).then(|| rng.random_bool(0.3))).collect();
        let flag01: Vec<Option<i32>> = flag.iter().map(|f| f.map(i32::from)).collect();
        let start: Vec<i64> = (0..n).map(|_| START + rng.random_range(0..TWO_YEARS_MS)).collect();
        let end: Vec<Option<i64>> =
            start.iter().map(|s| (!rng.random_bool(0.1)).then(|| s + rng.random_range(0..2 * 86_400_000))).collect();
        let channel: Vec<&str> = (0..n).map(|_| CHANNELS[rng.random_range(0..CHANNELS.len())]).collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(channel)),
            Arc::new(BooleanArray::from(flag)),
            Arc::new(Int32Array::from(flag01)),
            Arc::new(TimestampMillisecondArray::from(start).with_timezone("UTC")),
            Arc::new(TimestampMillisecondArray::from(end).with_timezone("UTC")),
        ];
        parts[next].push(RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch"));
        next = (next + 1) % parts.len();
        made += n;
    }
    MemTable::try_new(schema, parts).expect("table")
}

fn cases() -> Vec<Case> {
    let by_channel = |select: &str| format!("SELECT channel, {select} FROM events GROUP BY channel");
    let mut cases = Vec::new();
    let share = "100.0 * SUM(CASE WHEN flag THEN 1 ELSE 0 END) / COUNT(flag)";
    for rate in ["conversion_rate", "feedback_response_rate", "referral_rate"] {
        cases.push(Case {
            metric: rate,
            keys: "channel",
            queries: vec![("cxlake", by_channel(&format!("{rate}(flag)"))), ("plain SQL", by_channel(share))],
        });
    }
    cases.push(Case {
        metric: "participation_rate (0/1 INT)",
        keys: "channel",
        queries: vec![
            ("cxlake", by_channel("participation_rate(flag01)")),
            ("plain SQL", by_channel("100.0 * SUM(CASE WHEN flag01 = 1 THEN 1 ELSE 0 END) / COUNT(flag01)")),
        ],
    });
    let mean_seconds = "AVG(CAST(ended_at AS BIGINT) - CAST(started_at AS BIGINT)) / 1000.0";
    for duration in ["first_response_time", "avg_response_time", "resolution_time", "wait_time"] {
        cases.push(Case {
            metric: duration,
            keys: "channel",
            queries: vec![
                ("cxlake", by_channel(&format!("{duration}(started_at, ended_at)"))),
                ("plain SQL", by_channel(mean_seconds)),
            ],
        });
    }
    let period = "started_at, ended_at, TIMESTAMP '2025-01-01T00:00:00Z', TIMESTAMP '2025-02-01T00:00:00Z'";
    let at_start = "started_at < TIMESTAMP '2025-01-01T00:00:00Z' \
                    AND (ended_at IS NULL OR ended_at >= TIMESTAMP '2025-01-01T00:00:00Z')";
    let lost = format!("{at_start} AND ended_at < TIMESTAMP '2025-02-01T00:00:00Z'");
    let new = "started_at >= TIMESTAMP '2025-01-01T00:00:00Z' AND started_at < TIMESTAMP '2025-02-01T00:00:00Z' \
               AND (ended_at IS NULL OR ended_at >= TIMESTAMP '2025-02-01T00:00:00Z')";
    let count = |condition: &str| format!("SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)");
    cases.push(Case {
        metric: "churn_rate",
        keys: "channel",
        queries: vec![
            ("cxlake", by_channel(&format!("churn_rate({period})"))),
            ("plain SQL", by_channel(&format!("100.0 * {} / NULLIF({}, 0)", count(&lost), count(at_start)))),
        ],
    });
    cases.push(Case {
        metric: "retention_rate",
        keys: "channel",
        queries: vec![
            ("cxlake", by_channel(&format!("retention_rate({period})"))),
            (
                "plain SQL",
                by_channel(&format!(
                    "100.0 * ({} - {}) / NULLIF({}, 0)",
                    count(at_start),
                    count(&lost),
                    count(at_start)
                )),
            ),
        ],
    });
    cases.push(Case {
        metric: "customer_movement",
        keys: "channel",
        queries: vec![
            ("cxlake", by_channel(&format!("customer_movement({period})"))),
            (
                "plain SQL",
                by_channel(&format!(
                    "named_struct('at_start', {s}, 'new', {n}, 'lost', {l}, 'at_end', {s} - {l} + {n})",
                    s = count(at_start),
                    n = count(new),
                    l = count(&lost)
                )),
            ),
        ],
    });
    cases
}

#[tokio::main]
async fn main() -> cxlake::Result<()> {
    let options = parse_options();
    let lake = Lake::builder().target_partitions(options.partitions).build().await?;
    eprintln!("generating {} rows in {} partitions...", options.rows, options.partitions);
    lake.context().register_table("events", Arc::new(events(options.rows, options.partitions)))?;
    run_cases(&lake, &options, &cases()).await
}
