//! The web analytics functions against plain SQL on the sample lake's clickstream (110,925
//! events), at 1, 4 and 7 target partitions with uneven batch sizes, and with partial aggregation
//! skipped:
//!
//! - `session_id` against the LAG-and-running-sum formulation, row by row, at several gaps;
//! - the same through each way the one-pass session plan orders rows: in memory, through
//!   DataFusion's sort under a memory limit, and not at all over a file declared in (user, ts) order;
//!   over only (user_id, ts), with sparse and with dense ids, per user (rows, sessions, sums of
//!   session numbers plain and weighted by time);
//! - `pages_per_session`, `avg_session_duration` and `stickiness` against COUNT(DISTINCT ...),
//!   MIN/MAX per session and distinct (user, day) pairs, ungrouped, grouped and with FILTER.
//!
//! Counts must agree exactly and means within 1e-12 relative error.

use std::collections::BTreeMap;

use cxlake::Lake;
use cxlake_tests::{assert_close, cells, test_lake};

/// Sessions numbered both ways, with the row count and the number of rows where they differ.
async fn compare_sessions(lake: &Lake, gap: u32, label: &str) {
    compare_sessions_of(lake, "clickstream", gap, label).await
}

async fn compare_sessions_of(lake: &Lake, table: &str, gap: u32, label: &str) {
    let sql = format!(
        "WITH ours AS (
             SELECT event_id, session_id(ts, {gap}) OVER (PARTITION BY user_id ORDER BY ts) AS s FROM {table}),
         marked AS (
             SELECT event_id, user_id, ts,
                    CASE WHEN ts - lag(ts) OVER (PARTITION BY user_id ORDER BY ts) <= INTERVAL '{gap} seconds'
                         THEN 0 ELSE 1 END AS starts
             FROM {table}),
         plain AS (
             SELECT event_id, sum(starts) OVER (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS s
             FROM marked)
         SELECT count(*), count(*) FILTER (WHERE ours.s <> plain.s), count(DISTINCT ours.s)
         FROM ours JOIN plain USING (event_id)"
    );
    let result = cells(lake, &sql).await;
    let (rows, differing) = (result[0][0], result[0][1]);
    assert_eq!(rows, Some(110_925.0), "{label}: gap {gap}");
    assert_eq!(differing, Some(0.0), "{label}: gap {gap}: rows whose session differs");
    assert!(result[0][2].unwrap() > 1.0, "{label}: gap {gap}: more than one session number");
}

/// `session_id` over only (user_id, ts), the shape whose output columns are rebuilt from each
/// user's sorted timestamps (`rebuilt_rows`), against the LAG formulation: per user the rows, the
/// sessions, the sum of session numbers and of session number times the second of the event,
/// so a row numbered as another row's session shows.
async fn compare_rebuilt_sessions(lake: &Lake, table: &str, gap: u32, label: &str) {
    let per_user = |from: &str| {
        format!(
            "SELECT user_id, count(*) AS n, max(s) AS m, sum(s) AS t,
                    sum(s * (CAST(ts AS BIGINT) / 1000000 - 1700000000)) AS w
             FROM {from} GROUP BY user_id"
        )
    };
    let (ours, plain) = (per_user("ours"), per_user("plain"));
    let sql = format!(
        "WITH ours AS (
             SELECT user_id, ts, session_id(ts, {gap}) OVER (PARTITION BY user_id ORDER BY ts) AS s FROM {table}),
         marked AS (
             SELECT user_id, ts,
                    CASE WHEN ts - lag(ts) OVER (PARTITION BY user_id ORDER BY ts) <= INTERVAL '{gap} seconds'
                         THEN 0 ELSE 1 END AS starts
             FROM {table}),
         plain AS (
             SELECT user_id, ts, sum(starts) OVER (PARTITION BY user_id ORDER BY ts ROWS UNBOUNDED PRECEDING) AS s
             FROM marked),
         a AS ({ours}),
         b AS ({plain})
         SELECT sum(a.n), count(*) FILTER (WHERE a.n <> b.n OR a.m <> b.m OR a.t <> b.t OR a.w <> b.w), max(a.m)
         FROM a JOIN b USING (user_id)"
    );
    let result = cells(lake, &sql).await;
    assert_eq!(result[0][0], Some(110_925.0), "{label}: gap {gap}");
    assert_eq!(result[0][1], Some(0.0), "{label}: gap {gap}: users whose sessions differ");
    assert!(result[0][2].unwrap() > 1.0, "{label}: gap {gap}: a user with more than one session");
}

/// Every cell of `sql` by its first column (the group key, rendered as a number).
async fn by_key(lake: &Lake, sql: &str) -> BTreeMap<i64, Vec<Option<f64>>> {
    cells(lake, sql).await.into_iter().map(|row| (row[0].map_or(-1, |k| k as i64), row[1..].to_vec())).collect()
}

async fn compare(lake: &Lake, label: &str, metric: &str, plain: &str) -> usize {
    let ours = by_key(lake, metric).await;
    let theirs = by_key(lake, plain).await;
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>(), "{label}: the same groups");
    let mut compared = 0;
    for (key, row) in &ours {
        for (i, (a, b)) in row.iter().zip(&theirs[key]).enumerate() {
            assert_close(&format!("{label}: group {key}, column {i}"), *a, *b);
            compared += a.is_some() as usize;
        }
    }
    compared
}

/// The clickstream with 30-minute sessions, and group keys as numbers: the day of June and the
/// device (1 mobile, 2 desktop, 3 tablet); `k` is 0 for the ungrouped comparison.
const SESSIONS: &str = "WITH s AS (
    SELECT user_id, ts, event, CAST(date_part('day', day) AS BIGINT) AS d,
           CASE device WHEN 'mobile' THEN 1 WHEN 'desktop' THEN 2 ELSE 3 END AS dev,
           session_id(ts) OVER (PARTITION BY user_id ORDER BY ts) AS session
    FROM clickstream)";

async fn compare_aggregates(lake: &Lake, label: &str) -> usize {
    let mut compared = 0;
    for key in ["CAST(0 AS BIGINT)", "d", "dev"] {
        let label = format!("{label}, GROUP BY {key}");
        // pages_per_session: page views over distinct (user, session), with a struct key.
        let metric = format!(
            "{SESSIONS} SELECT {key} AS k,
                    pages_per_session(named_struct('user', user_id, 'session', session)),
                    pages_per_session(named_struct('user', user_id, 'session', session)) FILTER (WHERE event = 'page_view')
             FROM s GROUP BY {key}"
        );
        let plain = format!(
            "{SESSIONS} SELECT {key} AS k,
                    CAST(count(*) AS DOUBLE) / count(DISTINCT user_id * 100000 + session),
                    CAST(count(*) FILTER (WHERE event = 'page_view') AS DOUBLE)
                      / NULLIF(count(DISTINCT CASE WHEN event = 'page_view' THEN user_id * 100000 + session END), 0)
             FROM s GROUP BY {key}"
        );
        compared += compare(lake, &format!("{label}: pages_per_session"), &metric, &plain).await;

        // avg_session_duration: mean of per-session (max − min) in seconds, string keys.
        let metric = format!(
            "{SESSIONS} SELECT {key} AS k,
                    avg_session_duration(CAST(user_id AS VARCHAR) || '/' || CAST(session AS VARCHAR), ts),
                    avg_session_duration(CAST(user_id AS VARCHAR) || '/' || CAST(session AS VARCHAR), ts)
                        FILTER (WHERE event <> 'purchase')
             FROM s GROUP BY {key}"
        );
        let plain = format!(
            "{SESSIONS}, per_session AS (
                 SELECT {key} AS k, user_id, session,
                        (max(CAST(arrow_cast(ts, 'Timestamp(Microsecond, None)') AS BIGINT))
                          - min(CAST(arrow_cast(ts, 'Timestamp(Microsecond, None)') AS BIGINT))) AS us,
                        (max(CASE WHEN event <> 'purchase' THEN CAST(arrow_cast(ts, 'Timestamp(Microsecond, None)') AS BIGINT) END)
                          - min(CASE WHEN event <> 'purchase' THEN CAST(arrow_cast(ts, 'Timestamp(Microsecond, None)') AS BIGINT) END)) AS us_filtered
                 FROM s GROUP BY {key}, user_id, session)
             SELECT k, CAST(sum(us) AS DOUBLE) / count(us) / 1e6, CAST(sum(us_filtered) AS DOUBLE) / count(us_filtered) / 1e6
             FROM per_session GROUP BY k"
        );
        compared += compare(lake, &format!("{label}: avg_session_duration"), &metric, &plain).await;

        // stickiness: distinct (user, day) pairs over (days in the span × distinct users), in UTC
        // and in New York time.
        for (zone, local) in [
            ("UTC", "ts".to_string()),
            ("America/New_York", "arrow_cast(ts, 'Timestamp(Microsecond, Some(\"America/New_York\"))')".to_string()),
        ] {
            let metric = format!(
                "{SESSIONS} SELECT {key} AS k, stickiness(user_id, {local}),
                        stickiness(user_id, {local}) FILTER (WHERE event = 'purchase')
                 FROM s GROUP BY {key}"
            );
            let local_day = format!("CAST(date_part('epoch', CAST({local} AS DATE)) / 86400 AS BIGINT)");
            let plain = format!(
                "{SESSIONS}, pairs AS (SELECT DISTINCT {key} AS k, user_id, {local_day} AS day, event = 'purchase' AS bought FROM s),
                 all_pairs AS (SELECT DISTINCT k, user_id, day FROM pairs),
                 bought AS (SELECT DISTINCT k, user_id, day FROM pairs WHERE bought),
                 a AS (SELECT k, 100.0 * count(*) / ((max(day) - min(day) + 1) * count(DISTINCT user_id)) AS v
                       FROM all_pairs GROUP BY k),
                 b AS (SELECT k, 100.0 * count(*) / ((max(day) - min(day) + 1) * count(DISTINCT user_id)) AS v
                       FROM bought GROUP BY k)
                 SELECT a.k, a.v, b.v FROM a LEFT JOIN b ON a.k = b.k"
            );
            compared += compare(lake, &format!("{label}: stickiness ({zone})"), &metric, &plain).await;
        }
    }
    compared
}

#[tokio::test(flavor = "multi_thread")]
async fn web_functions_match_plain_sql() {
    for (partitions, batch_size, skip_partial) in [(1, 8192, false), (4, 1000, false), (7, 257, false), (3, 999, true)]
    {
        let lake = test_lake(partitions, batch_size).await.unwrap();
        if skip_partial {
            // Every row a state of its own, merged in the final aggregation.
            lake.execute("SET datafusion.execution.skip_partial_aggregation_probe_rows_threshold = 1").await.unwrap();
            lake.execute("SET datafusion.execution.skip_partial_aggregation_probe_ratio_threshold = 0.0")
                .await
                .unwrap();
        }
        let label =
            format!("{partitions} partitions, batches of {batch_size}, partial aggregation skipped: {skip_partial}");
        for gap in [60, 600, 1800, 7200] {
            compare_sessions(&lake, gap, &label).await;
        }
        let compared = compare_aggregates(&lake, &label).await;
        assert!(compared > 150, "{label}: only {compared} non-NULL comparisons");
    }
}

/// The text of every cell of `EXPLAIN [ANALYZE]` for `sql`.
async fn plan_text(lake: &Lake, explain: &str) -> String {
    use cxlake::arrow::util::display::array_value_to_string;
    let output = lake.execute(explain).await.unwrap();
    let mut text = String::new();
    for batch in &output.batches {
        for column in batch.columns() {
            for row in 0..batch.num_rows() {
                text += &array_value_to_string(column, row).unwrap();
                text.push('\n');
            }
        }
    }
    text
}

/// Sessions over only (user_id, ts), so the window's input has no other column.
const TWO_COLUMN_SESSIONS: &str =
    "SELECT user_id, ts, session_id(ts) OVER (PARTITION BY user_id ORDER BY ts) AS s FROM {table}";

const ONE_SESSION_QUERY: &str =
    "SELECT count(*), max(s) FROM (SELECT session_id(ts) OVER (PARTITION BY user_id ORDER BY ts) AS s FROM {table})";

/// `session_id` is planned as one `SessionNumberExec` in place of DataFusion's sort and window,
/// and each of its three ways of ordering rows numbers sessions as the LAG formulation does: in
/// memory (no memory limit, the default), through DataFusion's sort (under a memory limit), and
/// not at all when the files declare the (user_id, ts) order.
#[tokio::test(flavor = "multi_thread")]
async fn one_pass_sessions_order_rows_every_way() {
    let query = ONE_SESSION_QUERY.replace("{table}", "clickstream");
    for (limit, path, other) in [
        (None, "in_memory_sorted_rows", "sort_exec_sorted_rows"),
        (Some(256 << 20), "sort_exec_sorted_rows", "in_memory_sorted_rows"),
    ] {
        let mut builder = Lake::builder().with_sample_lake().target_partitions(3).batch_size(1000);
        if let Some(bytes) = limit {
            builder = builder.memory_limit(bytes);
        }
        let lake = builder.build().await.unwrap();
        let label = format!("memory limit {limit:?}");
        let plan = plan_text(&lake, &format!("EXPLAIN {query}")).await;
        assert!(plan.contains("SessionNumberExec") && plan.contains("input=unsorted"), "{label}: {plan}");
        assert!(!plan.contains("BoundedWindowAggExec") && !plan.contains("SortExec"), "{label}: {plan}");
        let analyzed = plan_text(&lake, &format!("EXPLAIN ANALYZE {query}")).await;
        assert!(
            analyzed.contains(&format!("{path}=")) && !analyzed.contains(&format!("{other}=")),
            "{label}: {analyzed}"
        );
        for gap in [60, 1800] {
            compare_sessions(&lake, gap, &label).await;
        }
        if limit.is_none() {
            // Only (user_id, ts): rebuilt from each block of users' sorted timestamps, the rows
            // routed to their partitions by the operator itself, past the hash repartition.
            let two_columns = TWO_COLUMN_SESSIONS.replace("{table}", "clickstream");
            let analyzed =
                plan_text(&lake, &format!("EXPLAIN ANALYZE SELECT count(*), max(s) FROM ({two_columns})")).await;
            for metric in ["rebuilt_rows", "exchanged_rows"] {
                assert!(
                    analyzed.contains(&format!("{metric}=110925")) || analyzed.contains(&format!("{metric}=110.9 K")),
                    "{metric}: {analyzed}"
                );
            }
            // The routed rows are where DataFusion's hash repartition puts them: a join by user
            // of each side's partition i alone (nothing repartitions the sessions again) still
            // finds every user.
            let joined = format!(
                "WITH a AS (SELECT user_id, count(*) AS n, max(s) AS m FROM ({two_columns}) GROUP BY user_id),
                      b AS (SELECT user_id, count(*) AS n, count(DISTINCT ts) AS d FROM clickstream GROUP BY user_id)
                 SELECT count(*), sum(a.n), sum(b.n), min(a.m) FROM a JOIN b USING (user_id)"
            );
            lake.execute("SET datafusion.optimizer.hash_join_single_partition_threshold = 0").await.unwrap();
            lake.execute("SET datafusion.optimizer.hash_join_single_partition_threshold_rows = 0").await.unwrap();
            let plan = plan_text(&lake, &format!("EXPLAIN ANALYZE {joined}")).await;
            let sessions_side = &plan[plan.find("HashJoinExec: mode=Partitioned").expect(&plan)..];
            let sessions_side = &sessions_side[sessions_side.find("KeyedAggregateExec").expect(&plan)..];
            assert!(
                sessions_side.contains("mode=SinglePartitioned")
                    && sessions_side.find("RepartitionExec") > sessions_side.find("exchanged_rows=11"),
                "{plan}"
            );
            let users = cells(&lake, "SELECT count(DISTINCT user_id) FROM clickstream").await[0][0];
            assert_eq!(cells(&lake, &joined).await[0][..3], [users, Some(110_925.0), Some(110_925.0)]);
            lake.execute("RESET datafusion.optimizer.hash_join_single_partition_threshold").await.unwrap();
            lake.execute("RESET datafusion.optimizer.hash_join_single_partition_threshold_rows").await.unwrap();
            lake.execute(
                "CREATE TABLE dense_clicks AS
                 SELECT CAST(dense_rank() OVER (ORDER BY user_id) AS BIGINT) AS user_id, ts FROM clickstream",
            )
            .await
            .unwrap();
            // Plain aggregates grouped by user over the numbered rows, which come out sorted by
            // user, are grouped as runs by cxlake's grouping (a query over sessions is cxlake's).
            let per_user = format!(
                "EXPLAIN ANALYZE SELECT count(*), sum(m) FROM (SELECT user_id, max(s) AS m FROM ({two_columns}) GROUP BY user_id)"
            );
            let analyzed = plan_text(&lake, &per_user).await;
            assert!(
                analyzed.contains("KeyedAggregateExec")
                    && analyzed.contains("sorted_key_rows=")
                    && !analyzed.contains("sorted_key_rows=0"),
                "{analyzed}"
            );
            let dense = TWO_COLUMN_SESSIONS.replace("{table}", "dense_clicks");
            let analyzed = plan_text(&lake, &format!("EXPLAIN ANALYZE SELECT count(*), max(s) FROM ({dense})")).await;
            assert!(
                analyzed.contains("rebuilt_rows=110925") || analyzed.contains("rebuilt_rows=110.9 K"),
                "{analyzed}"
            );
            for gap in [60, 1800] {
                compare_rebuilt_sessions(&lake, "clickstream", gap, "sparse ids").await;
                compare_rebuilt_sessions(&lake, "dense_clicks", gap, "dense ids").await;
            }
        }
    }

    // One file sorted by (user_id, ts), declared so, read as one partition: numbered as it streams.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sorted.parquet");
    let lake = Lake::builder().with_sample_lake().target_partitions(1).batch_size(777).build().await.unwrap();
    lake.execute(&format!(
        "COPY (SELECT event_id, user_id, ts FROM clickstream ORDER BY user_id, ts) TO '{}' STORED AS PARQUET",
        file.display()
    ))
    .await
    .unwrap();
    lake.execute(&format!(
        "CREATE EXTERNAL TABLE sorted_clicks STORED AS PARQUET WITH ORDER (user_id ASC, ts ASC) LOCATION '{}'",
        file.display()
    ))
    .await
    .unwrap();
    let query = ONE_SESSION_QUERY.replace("{table}", "sorted_clicks");
    let plan = plan_text(&lake, &format!("EXPLAIN {query}")).await;
    assert!(plan.contains("SessionNumberExec") && plan.contains("input=sorted"), "{plan}");
    assert!(!plan.contains("SortExec"), "declared order, no sort: {plan}");
    for gap in [60, 1800] {
        compare_sessions_of(&lake, "sorted_clicks", gap, "declared order").await;
    }
}

#[tokio::test]
async fn expression_builders_match_sql() {
    use cxlake::datafusion::functions::core::expr_fn::named_struct;
    use cxlake::datafusion::logical_expr::ExprFunctionExt;
    use cxlake::datafusion::prelude::{col, lit};
    use cxlake::udfs::functions::{
        avg_session_duration, pages_per_session, retention, session_id, stickiness, window_funnel, window_funnel_times,
    };
    use cxlake_tests::render_rows;

    let lake = test_lake(3, 1000).await.unwrap();
    let session = session_id(col("ts"), Some(1800.0))
        .partition_by(vec![col("user_id")])
        .order_by(vec![col("ts").sort(true, false)])
        .build()
        .unwrap()
        .alias("session");
    let key = named_struct(vec![lit("user"), col("user_id"), lit("session"), col("session")]);
    let steps = || {
        vec![col("event").eq(lit("page_view")), col("event").eq(lit("add_to_cart")), col("event").eq(lit("purchase"))]
    };
    let built = lake
        .context()
        .table("clickstream")
        .await
        .unwrap()
        .window(vec![session])
        .unwrap()
        .aggregate(
            vec![col("device")],
            vec![
                pages_per_session(key.clone()).alias("pages"),
                avg_session_duration(key, col("ts")).alias("duration"),
                stickiness(col("user_id"), col("ts")).alias("sticky"),
                window_funnel(600.0, Some("strict_order"), col("ts"), steps()).alias("level"),
                window_funnel_times(600.0, None, col("ts"), steps()).alias("times"),
                retention(steps()).alias("retention"),
            ],
        )
        .unwrap()
        .sort(vec![col("device").sort(true, true)])
        .unwrap()
        .collect()
        .await
        .unwrap();
    let sql = lake
        .execute(
            "WITH s AS (SELECT *, session_id(ts, 1800) OVER (PARTITION BY user_id ORDER BY ts) AS session FROM clickstream)
             SELECT device,
                    pages_per_session(named_struct('user', user_id, 'session', session)),
                    avg_session_duration(named_struct('user', user_id, 'session', session), ts),
                    stickiness(user_id, ts),
                    window_funnel(600, 'strict_order', ts, event = 'page_view', event = 'add_to_cart', event = 'purchase'),
                    window_funnel_times(600, ts, event = 'page_view', event = 'add_to_cart', event = 'purchase'),
                    retention(event = 'page_view', event = 'add_to_cart', event = 'purchase')
             FROM s GROUP BY device ORDER BY device",
        )
        .await
        .unwrap();
    let (built, sql) = (render_rows(&built).unwrap(), render_rows(&sql.batches).unwrap());
    assert_eq!(built.len(), 3, "one row per device");
    assert_eq!(built, sql);
}
