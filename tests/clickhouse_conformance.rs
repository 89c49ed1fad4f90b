//! `window_funnel` and `retention` against ClickHouse itself (the `chdb` package: embedded
//! ClickHouse, installed by `scripts/test` from `scripts/requirements.txt`).
//!
//! A randomized event log — several thousand users; timestamp ties; rows meeting several
//! conditions or none; gaps inside and far outside the windows; NULL timestamps and conditions —
//! is written to one Parquet file. ClickHouse computes `windowFunnel` for every mode and the
//! combinations it accepts, at several windows and condition counts, and `retention`; cxlake
//! computes the same on the same file at 1 and 4 partitions, and at 3 with partial aggregation
//! skipped, and every per-user result must be identical.
//!
//! ClickHouse's windowFunnel takes unsigned integer, Date or DateTime timestamps, so it gets the
//! timestamp as UInt64 milliseconds and the window in milliseconds; cxlake reads the
//! millisecond timestamp column itself with the window in (fractional) seconds.
//!
//! One deliberate difference, from cxlake's NULL rule: a user none of whose rows counts (every
//! row has a NULL timestamp or condition) gets NULL from cxlake, where ClickHouse's `retention`
//! gives a list of zeros (its windowFunnel gives NULL too). The test checks such users have no
//! complete row in ClickHouse's eyes.

use std::collections::BTreeMap;
use std::sync::Arc;

use cxlake::arrow::array::{ArrayRef, BooleanArray, Int64Array, TimestampMillisecondArray};
use cxlake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use cxlake::arrow::record_batch::RecordBatch;
use cxlake::datafusion::parquet::arrow::ArrowWriter;
use cxlake::Lake;
use cxlake_tests::{render_rows, run_reference_python};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

const USERS: i64 = 4000;
const CONDITIONS: usize = 4;

/// Modes and combinations ClickHouse accepts ('' is the default mode).
const MODES: &[&str] = &[
    "",
    "strict_deduplication",
    "strict_order",
    "strict_increase",
    "strict_once",
    "strict_order,allow_reentry",
    "strict_deduplication,strict_order",
    "strict_deduplication,strict_increase",
    "strict_order,strict_increase",
    "strict_once,strict_order",
    "strict_once,strict_increase",
    "strict_once,strict_deduplication",
    "strict_once,strict_order,allow_reentry",
    "strict_deduplication,strict_order,strict_increase,strict_once",
];

/// Windows in seconds: zero (same-instant chains only), sub-second, and 1 min to 1 h.
const WINDOWS: &[f64] = &[0.0, 0.5, 60.0, 600.0, 3600.0];

/// The event log: per user a few to a few dozen events, rows shuffled across users.
fn event_log(seed: u64) -> RecordBatch {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rows: Vec<(i64, Option<i64>, [Option<bool>; CONDITIONS])> = Vec::new();
    for user in 1..=USERS {
        let events = rng.random_range(0..=24);
        let mut t: i64 = 1_748_736_000_000 + rng.random_range(0..86_400_000i64 * 20);
        for _ in 0..events {
            // Ties are frequent; most gaps fit the windows, some are far outside.
            t += match rng.random_range(0..100) {
                0..20 => 0,
                20..30 => rng.random_range(1..1000),
                30..75 => 1000 * rng.random_range(1..180),
                75..92 => 1000 * rng.random_range(180..1800),
                _ => 1000 * rng.random_range(1800..14_400),
            };
            let mut conditions = [Some(false); CONDITIONS];
            // Mostly the funnel's order, a row meeting no condition in about one in five.
            let primary = rng.random_range(0..CONDITIONS + 1);
            if primary < CONDITIONS {
                conditions[primary] = Some(true);
            }
            if rng.random_bool(0.12) {
                conditions[rng.random_range(0..CONDITIONS)] = Some(true);
            }
            for c in conditions.iter_mut() {
                if rng.random_bool(0.015) {
                    *c = None;
                }
            }
            let ts = (!rng.random_bool(0.02)).then_some(t);
            rows.push((user, ts, conditions));
        }
    }
    rows.shuffle(&mut rng);
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(rows.iter().map(|r| r.0).collect::<Int64Array>()),
        Arc::new(rows.iter().map(|r| r.1).collect::<TimestampMillisecondArray>().with_timezone("UTC")),
    ];
    let mut fields = vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())), true),
    ];
    for k in 0..CONDITIONS {
        columns.push(Arc::new(rows.iter().map(|r| r.2[k]).collect::<BooleanArray>()));
        fields.push(Field::new(format!("c{}", k + 1), DataType::Boolean, true));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("event log batch")
}

fn write_parquet(batch: &RecordBatch, path: &std::path::Path) {
    let file = std::fs::File::create(path).expect("create parquet file");
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None).expect("parquet writer");
    // Several row groups, so that cxlake reads the file in several partitions.
    for offset in (0..batch.num_rows()).step_by(8192) {
        writer.write(&batch.slice(offset, 8192.min(batch.num_rows() - offset))).expect("write parquet");
    }
    writer.close().expect("close parquet");
}

/// One result column: a funnel (window, mode, number of conditions) or retention.
struct Column {
    cxlake: String,
    clickhouse: String,
}

fn columns() -> Vec<Column> {
    let conditions = |n: usize| (1..=n).map(|k| format!("c{k}")).collect::<Vec<_>>().join(", ");
    let mut columns = Vec::new();
    for &window in WINDOWS {
        for mode in MODES {
            for n in [CONDITIONS, 2] {
                let (mode_sql, mode_params) = if mode.is_empty() {
                    (String::new(), String::new())
                } else {
                    (format!("'{mode}', "), mode.split(',').map(|m| format!(", '{m}'")).collect())
                };
                columns.push(Column {
                    cxlake: format!("window_funnel({window}, {mode_sql}ts, {})", conditions(n)),
                    clickhouse: format!(
                        "windowFunnel({}{mode_params})(toUInt64(toUnixTimestamp64Milli(ts)), {})",
                        (window * 1000.0) as u64,
                        conditions(n)
                    ),
                });
            }
        }
    }
    for mode in ["", "strict_order", "strict_once"] {
        let (mode_sql, mode_params) = if mode.is_empty() {
            (String::new(), String::new())
        } else {
            (format!("'{mode}', "), format!(", '{mode}'"))
        };
        columns.push(Column {
            cxlake: format!("window_funnel(600, {mode_sql}ts, c1)"),
            clickhouse: format!("windowFunnel(600000{mode_params})(toUInt64(toUnixTimestamp64Milli(ts)), c1)"),
        });
    }
    // ClickHouse takes 2 to 32 retention conditions (cxlake also accepts 1). 7 conditions fill
    // cxlake's one-byte retention state and 8 take the wide one; past c4 the conditions are the
    // columns negated.
    let retention_conditions = |n: usize| {
        let columns = (1..=CONDITIONS).map(|k| format!("c{k}"));
        columns.clone().chain(columns.map(|c| format!("NOT {c}"))).take(n).collect::<Vec<_>>().join(", ")
    };
    for n in [2, 3, CONDITIONS, 7, 8] {
        columns.push(Column {
            cxlake: format!("retention({})", retention_conditions(n)),
            clickhouse: format!("retention({})", retention_conditions(n)),
        });
    }
    columns
}

const CLICKHOUSE_SCRIPT: &str = r#"
import sys
import chdb
print(chdb.query(sys.argv[1], "TSV").data(), end="")
"#;

/// Per user, every cell as text without blanks (`[1, 0]` and `[1,0]` compare equal).
type Results = BTreeMap<i64, Vec<String>>;

fn parse_clickhouse(tsv: &str) -> Results {
    tsv.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut cells = line.split('\t');
            let user = cells.next().and_then(|u| u.parse().ok()).expect("user id");
            let cells = cells.map(|c| if c == "\\N" { "NULL".to_string() } else { c.replace(' ', "") }).collect();
            (user, cells)
        })
        .collect()
}

/// cxlake's results at `partitions`; with `skip_partial`, DataFusion skips partial aggregation
/// (every row becomes a state of its own, merged in the final aggregation).
async fn cxlake_results(path: &str, sql: &str, partitions: usize, skip_partial: bool) -> Results {
    let lake =
        Lake::builder().table("events", path).target_partitions(partitions).batch_size(1000).build().await.unwrap();
    if skip_partial {
        lake.execute("SET datafusion.execution.skip_partial_aggregation_probe_rows_threshold = 1").await.unwrap();
        lake.execute("SET datafusion.execution.skip_partial_aggregation_probe_ratio_threshold = 0.0").await.unwrap();
    }
    let output = lake.execute(sql).await.unwrap_or_else(|e| panic!("{sql}\n{e}"));
    render_rows(&output.batches)
        .unwrap()
        .into_iter()
        .map(|row| {
            let user = row[0].parse().expect("user id");
            (user, row[1..].iter().map(|c| c.replace(' ', "")).collect())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn window_funnel_and_retention_match_clickhouse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.parquet");
    let log = event_log(20251124);
    write_parquet(&log, &path);
    let path = path.to_str().unwrap();
    // The same rows sorted by user, as event files often are: cxlake then gathers each user's
    // events a block of users at a time (batches whose users ascend) instead of all at once.
    let sorted_path = dir.path().join("events_by_user.parquet");
    let by_user = cxlake::arrow::compute::sort_to_indices(log.column(0), None, None).unwrap();
    let sorted = log.columns().iter().map(|c| cxlake::arrow::compute::take(c, &by_user, None).unwrap()).collect();
    write_parquet(&RecordBatch::try_new(log.schema(), sorted).unwrap(), &sorted_path);
    let sorted_path = sorted_path.to_str().unwrap();
    let columns = columns();

    // Complete rows (no NULL anywhere), to tell users with no counting row apart.
    let complete = format!(
        "countIf(ts IS NOT NULL AND {})",
        (1..=CONDITIONS).map(|k| format!("c{k} IS NOT NULL")).collect::<Vec<_>>().join(" AND ")
    );
    // ClickHouse takes rows with equal timestamps in arrival order (which only matters for
    // strict_once with strict_deduplication); it gets them, in one thread, in cxlake's fixed tie
    // order: rows meeting earlier conditions first.
    let ties = (1..=CONDITIONS).map(|k| format!("c{k} DESC")).collect::<Vec<_>>().join(", ");
    let clickhouse_sql = format!(
        "SELECT user_id, {}, {complete} FROM (SELECT * FROM file('{path}', Parquet) \
         ORDER BY user_id, ts, {ties}) GROUP BY user_id ORDER BY user_id SETTINGS max_threads = 1, query_plan_remove_redundant_sorting = 0",
        columns.iter().map(|c| c.clickhouse.as_str()).collect::<Vec<_>>().join(", ")
    );
    let clickhouse = parse_clickhouse(&run_reference_python(CLICKHOUSE_SCRIPT, &[&clickhouse_sql]));
    assert!(clickhouse.len() as i64 > USERS * 9 / 10, "ClickHouse returned {} users", clickhouse.len());

    let retention_columns: Vec<bool> = columns.iter().map(|c| c.cxlake.starts_with("retention")).collect();
    let select = |chosen: &[usize]| {
        format!(
            "SELECT user_id, {} FROM events GROUP BY user_id ORDER BY user_id",
            chosen.iter().map(|&i| columns[i].cxlake.as_str()).collect::<Vec<_>>().join(", ")
        )
    };
    let every_column: Vec<usize> = (0..columns.len()).collect();
    // Funnel columns alone are aggregated in one phase (input rows repartitioned by user, no
    // partial states); with retention beside them, in DataFusion's two phases.
    let funnel_columns: Vec<usize> = every_column.iter().copied().filter(|&i| !retention_columns[i]).collect();
    let lake = Lake::builder().table("events", path).target_partitions(4).build().await.unwrap();
    let explained = lake.execute(&format!("EXPLAIN {}", select(&funnel_columns))).await.unwrap();
    let funnel_plan = format!("{:?}", render_rows(&explained.batches).unwrap());
    assert!(funnel_plan.contains("mode=SinglePartitioned") && !funnel_plan.contains("mode=Partial"), "{funnel_plan}");
    let mut differences = Vec::new();
    for (file, partitions, skip_partial, chosen) in [
        (path, 1, false, &every_column),
        (path, 4, false, &every_column),
        (path, 3, true, &every_column),
        (path, 4, false, &funnel_columns),
        (sorted_path, 1, false, &every_column),
        (sorted_path, 4, false, &funnel_columns),
    ] {
        let cxlake = cxlake_results(file, &select(chosen), partitions, skip_partial).await;
        assert_eq!(cxlake.keys().collect::<Vec<_>>(), clickhouse.keys().collect::<Vec<_>>(), "the same users");
        let mut compared = 0;
        for (user, theirs) in &clickhouse {
            let ours = &cxlake[user];
            let no_complete_row = theirs.last().map(String::as_str) == Some("0");
            for (j, &i) in chosen.iter().enumerate() {
                let column = &columns[i];
                let expected = if retention_columns[i] && no_complete_row && ours[j] == "NULL" {
                    // cxlake's NULL for no counting row; ClickHouse must show zeros.
                    assert!(
                        theirs[i].chars().all(|c| matches!(c, '[' | ']' | ',' | '0')),
                        "user {user}: {}",
                        theirs[i]
                    );
                    "NULL"
                } else {
                    theirs[i].as_str()
                };
                compared += 1;
                if ours[j] != expected {
                    differences.push(format!(
                        "user {user}, {} ({file}, partitions {partitions}): cxlake {} vs ClickHouse {} ({})",
                        column.cxlake, ours[j], expected, column.clickhouse
                    ));
                }
            }
        }
        assert!(compared > 100_000, "compared only {compared} results");
    }
    assert!(
        differences.is_empty(),
        "{} differences, first ones:\n{}",
        differences.len(),
        differences.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// `window_funnel_times` describes the chain `window_funnel` counts: as many steps as the level,
/// starting at 0, never decreasing (never increasing strictly under strict_increase), within
/// the window.
#[tokio::test(flavor = "multi_thread")]
async fn window_funnel_times_follow_the_level() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.parquet");
    write_parquet(&event_log(7), &path);
    let lake = Lake::builder()
        .table("events", path.to_str().unwrap())
        .target_partitions(3)
        .batch_size(500)
        .build()
        .await
        .unwrap();
    for mode in MODES {
        let args = format!("600, '{mode}', ts, c1, c2, c3, c4");
        let step = if mode.contains("strict_increase") { ">" } else { ">=" };
        let sql = format!(
            "SELECT count(*) AS users,
                    count(*) FILTER (WHERE (level IS DISTINCT FROM CAST(cardinality(t) AS TINYINT UNSIGNED))
                                       OR (level > 0 AND t[1] <> 0)
                                       OR (level > 1 AND NOT (t[2] {step} t[1]))
                                       OR (level > 2 AND NOT (t[3] {step} t[2]))
                                       OR (level > 3 AND NOT (t[4] {step} t[3]))
                                       OR (level > 0 AND t[level] > 600)) AS bad
             FROM (SELECT user_id, window_funnel({args}) AS level, window_funnel_times({args}) AS t
                   FROM events GROUP BY user_id)"
        );
        let rows = render_rows(&lake.execute(&sql).await.unwrap_or_else(|e| panic!("{sql}\n{e}")).batches).unwrap();
        assert_eq!(rows[0][1], "0", "mode '{mode}': {} of {} users", rows[0][1], rows[0][0]);
        assert!(rows[0][0].parse::<i64>().unwrap() > USERS * 9 / 10);
    }
}
