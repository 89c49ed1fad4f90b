//! `session_id` against LAG and a running sum, and `window_funnel` against the fastest plain-SQL
//! formulation found, over a generated clickstream, side by side in one run.
//!
//! ```text
//! cargo run --release -p cxlake-benches --bin web_bench -- [--rows N] [--partitions N] [--runs N]
//! ```

mod harness;

use std::sync::Arc;

use cxlake::arrow::array::{ArrayRef, Int32Array, Int64Array, TimestampMillisecondArray};
use cxlake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use cxlake::arrow::record_batch::RecordBatch;
use cxlake::datafusion::datasource::MemTable;
use cxlake::Lake;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use harness::{parse_options, run_cases, Case};

/// Clickstream events: about 40 per user, in time order within a user, gaps of seconds to hours;
/// `event` 1 (page view, 70%), 2 (add to cart), 3 (checkout), 4 (purchase). Batches interleave
/// users, as files of a day's events would.
fn clickstream(rows: usize, partitions: usize) -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), false),
        Field::new("event", DataType::Int32, false),
    ]));
    let users = (rows / 40).max(1) as i64;
    let mut rng = SmallRng::seed_from_u64(2025);
    let mut clock: Vec<i64> = (0..users).map(|_| 1_748_736_000_000 + rng.random_range(0..86_400_000)).collect();
    let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); partitions.max(1)];
    let (mut made, mut next) = (0, 0);
    while made < rows {
        let n = (rows - made).min(8192);
        let mut user = Vec::with_capacity(n);
        let mut ts = Vec::with_capacity(n);
        let mut event = Vec::with_capacity(n);
        for _ in 0..n {
            let u = rng.random_range(0..users);
            clock[u as usize] += match rng.random_range(0..100) {
                0..80 => rng.random_range(1_000..120_000),
                80..95 => rng.random_range(120_000..1_800_000),
                _ => rng.random_range(1_800_000..86_400_000),
            };
            user.push(u + 1);
            ts.push(clock[u as usize]);
            event.push(match rng.random_range(0..100) {
                0..70 => 1,
                70..85 => 2,
                85..95 => 3,
                _ => 4,
            });
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(user)),
            Arc::new(TimestampMillisecondArray::from(ts).with_timezone("UTC")),
            Arc::new(Int32Array::from(event)),
        ];
        parts[next].push(RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch"));
        next = (next + 1) % parts.len();
        made += n;
    }
    MemTable::try_new(schema, parts).expect("table")
}

/// ClickHouse's default-mode windowFunnel in plain SQL, exact for rows meeting one condition:
/// level k's chain starts at the step-1 time carried by the latest step-(k − 1) event that
/// extended a chain, and every start only grows with time, so a running MAX carries it.
fn plain_funnel() -> String {
    "WITH l1 AS (
         SELECT user_id, ts, event,
                max(CASE WHEN event = 1 THEN ts END)
                    OVER (PARTITION BY user_id ORDER BY ts, event ROWS UNBOUNDED PRECEDING) AS s1
         FROM events),
     l2 AS (
         SELECT user_id, ts, event,
                max(CASE WHEN event = 2 AND ts <= s1 + INTERVAL '1 hour' THEN s1 END)
                    OVER (PARTITION BY user_id ORDER BY ts, event ROWS UNBOUNDED PRECEDING) AS s2,
                s1
         FROM l1),
     l3 AS (
         SELECT user_id, ts, event, s1, s2,
                max(CASE WHEN event = 3 AND ts <= s2 + INTERVAL '1 hour' THEN s2 END)
                    OVER (PARTITION BY user_id ORDER BY ts, event ROWS UNBOUNDED PRECEDING) AS s3
         FROM l2),
     levels AS (
         SELECT user_id,
                CASE WHEN bool_or(event = 4 AND ts <= s3 + INTERVAL '1 hour') THEN 4
                     WHEN max(s3) IS NOT NULL THEN 3
                     WHEN max(s2) IS NOT NULL THEN 2
                     WHEN max(s1) IS NOT NULL THEN 1 ELSE 0 END AS level
         FROM l3 GROUP BY user_id)
     SELECT level, count(*) AS users FROM levels GROUP BY level ORDER BY level"
        .to_string()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            metric: "session_id (30 min)",
            keys: "user_id",
            queries: vec![
                (
                    "cxlake",
                    "SELECT max(s), count(*) FROM (
                         SELECT session_id(ts) OVER (PARTITION BY user_id ORDER BY ts) AS s FROM events)"
                        .to_string(),
                ),
                (
                    "plain SQL",
                    "SELECT max(s), count(*) FROM (
                         SELECT sum(starts) OVER (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS s
                         FROM (SELECT user_id, ts,
                                      CASE WHEN ts - lag(ts) OVER (PARTITION BY user_id ORDER BY ts)
                                                <= INTERVAL '30 minutes' THEN 0 ELSE 1 END AS starts
                               FROM events))"
                        .to_string(),
                ),
            ],
        },
        Case {
            metric: "window_funnel (4 steps, 1 h)",
            keys: "user_id",
            queries: vec![
                (
                    "cxlake",
                    "SELECT level, count(*) AS users FROM (
                         SELECT user_id, window_funnel(3600, ts, event = 1, event = 2, event = 3, event = 4) AS level
                         FROM events GROUP BY user_id)
                     GROUP BY level ORDER BY level"
                        .to_string(),
                ),
                ("plain SQL", plain_funnel()),
            ],
        },
    ]
}

#[tokio::main]
async fn main() -> cxlake::Result<()> {
    let options = parse_options();
    let lake = Lake::builder().target_partitions(options.partitions).build().await?;
    eprintln!("generating {} rows in {} partitions...", options.rows, options.partitions);
    lake.context().register_table("events", Arc::new(clickstream(options.rows, options.partitions)))?;
    // Both formulations must give the same answer before their speed means anything.
    for case in cases() {
        let answers: Vec<String> = {
            let mut answers = Vec::new();
            for (_, sql) in &case.queries {
                let batches = lake.query(sql).await?;
                answers.push(cxlake::arrow::util::pretty::pretty_format_batches(&batches)?.to_string());
            }
            answers
        };
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "{}: the formulations disagree:\n{}",
            case.metric,
            answers.join("\n")
        );
    }
    run_cases(&lake, &options, &cases()).await
}
