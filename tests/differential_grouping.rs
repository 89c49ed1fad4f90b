//! cxlake's one-key grouping (`KeyedAggregateExec`, udfs/src/grouping_plan.rs) against
//! DataFusion's own grouping of the same rows: `nps` (with and without FILTER) and `count(*)`
//! grouped by keys of every type the operator takes, against the same NPS in plain SQL, which
//! DataFusion groups itself. 200,000 generated rows, at 1, 3 and 4 target partitions with uneven
//! batch sizes, and under a memory limit (where DataFusion's aggregate runs instead).
//!
//! Keys: dense integers (numbered by key, holes left out; direct table), sorted ids from 0 (as
//! event files sorted by user hold them), sparse integers, integers with NULLs, unsigned integers
//! past `i64::MAX`, strings (short, long, empty, 12 bytes, NULL) as `Utf8`, `LargeUtf8` and
//! `Utf8View`, timestamps without and with a time zone, dates. Files sorted by the key (either
//! direction, NULLs first or last) and declared so are grouped as runs of equal keys.

use std::collections::BTreeMap;

use cxlake::arrow::datatypes::DataType;
use cxlake::Lake;
use cxlake_tests::render_rows;

const TABLE: &str = r#"CREATE TABLE keyed AS SELECT
    value AS v,
    CASE WHEN value % 13 = 0 THEN NULL ELSE value * 7 % 11 END AS score,
    CAST(1000000 + value * 37 % 50000 AS BIGINT) AS dense,
    CAST(value / 3 AS BIGINT) AS sorted_user,
    (value % 997) * 1000003 AS sparse,
    CAST(CASE WHEN value % 17 = 0 THEN NULL ELSE value % 5000 END AS INT) AS nullable_int,
    CAST(value % 300 AS BIGINT UNSIGNED) + CAST(18000000000000000000 AS BIGINT UNSIGNED) AS huge,
    arrow_cast(CASE value % 7 WHEN 0 THEN 'email' WHEN 1 THEN 'chat' WHEN 2 THEN 'phone'
        WHEN 3 THEN 'web-self-service-portal' WHEN 4 THEN NULL WHEN 5 THEN '' ELSE 'twelve-bytes' END, 'Utf8')
        AS short_text,
    arrow_cast('plan-' || (value % 40), 'LargeUtf8') AS large_text,
    arrow_cast(CASE WHEN value % 2 = 0 THEN 'c' || (value % 700) ELSE 'customer-account-' || (value % 700) END,
        'Utf8View') AS mixed_view,
    to_timestamp_seconds(1700000000 + value % 3000 * 60) AS minute,
    arrow_cast(to_timestamp_seconds(1700000000 + value % 3000 * 60), 'Timestamp(Millisecond, Some("+02:00"))')
        AS minute_tz,
    CAST(to_timestamp_seconds(1700000000 + value % 400 * 86400) AS DATE) AS day
FROM generate_series(0, 199999)"#;

const KEYS: [(&str, &str); 11] = [
    ("dense", "Int64"),
    ("sorted_user", "Int64"),
    ("sparse", "Int64"),
    ("nullable_int", "Int32"),
    ("huge", "UInt64"),
    ("short_text", "Utf8"),
    ("large_text", "LargeUtf8"),
    ("mixed_view", "Utf8View"),
    ("minute", "Timestamp(s)"),
    ("minute_tz", "Timestamp(ms, \"+02:00\")"),
    ("day", "Date32"),
];

fn metric_sql(key: &str) -> String {
    format!("SELECT {key}, nps(score), count(*), nps(score) FILTER (WHERE v % 3 = 0) FROM keyed GROUP BY {key}")
}

fn plain_sql(key: &str) -> String {
    let nps = |extra: &str| {
        format!(
            "100.0 * (count(*) FILTER (WHERE score >= 9{extra}) - count(*) FILTER (WHERE score <= 6{extra})) \
             / NULLIF(count(score) FILTER (WHERE true{extra}), 0)"
        )
    };
    format!("SELECT {key}, {}, count(*), {} FROM keyed GROUP BY {key}", nps(""), nps(" AND v % 3 = 0"))
}

/// The result of `sql` by its rendered first column, with the first column's type.
async fn by_key(lake: &Lake, sql: &str) -> (BTreeMap<String, Vec<String>>, DataType) {
    let output = lake.execute(sql).await.unwrap();
    let data_type = output.batches[0].schema().field(0).data_type().clone();
    let rows = render_rows(&output.batches).unwrap();
    let count = rows.len();
    let rows: BTreeMap<_, _> = rows.into_iter().map(|mut row| (row.remove(0), row)).collect();
    assert_eq!(rows.len(), count, "{sql}: one row per key");
    (rows, data_type)
}

async fn plan_text(lake: &Lake, sql: &str) -> String {
    format!("{:?}", render_rows(&lake.execute(sql).await.unwrap().batches).unwrap())
}

/// Each of the plan's counts of rows whose keys went the `name` way (`ordered`, `direct`,
/// `hashed`, `sorted`), as rendered: one per `KeyedAggregateExec`, each read whole.
fn key_row_counts<'a>(analyzed: &'a str, name: &str) -> Vec<&'a str> {
    let pattern = format!("{name}_key_rows=");
    analyzed.split(&pattern).skip(1).filter_map(|rest| rest.split([',', ']']).next()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn keyed_grouping_matches_datafusion_grouping_for_every_key_type() {
    for (partitions, batch_size, memory_limit) in
        [(1, 8192, None), (3, 1000, None), (4, 64, None), (3, 1000, Some(512 << 20))]
    {
        let mut builder = Lake::builder().target_partitions(partitions).batch_size(batch_size);
        if let Some(bytes) = memory_limit {
            builder = builder.memory_limit(bytes);
        }
        let lake = builder.build().await.unwrap();
        lake.execute(TABLE).await.unwrap();
        let label = format!("{partitions} partitions, batches of {batch_size}, memory limit {memory_limit:?}");
        for (key, type_name) in KEYS {
            let metric = metric_sql(key);
            let plain = plain_sql(key);
            let (ours, our_type) = by_key(&lake, &metric).await;
            let (theirs, their_type) = by_key(&lake, &plain).await;
            assert_eq!(our_type, their_type, "{label}: {key}: key type");
            assert_eq!(format!("{our_type}"), type_name, "{label}: {key}: the table's key type");
            assert!(ours.len() > 1, "{label}: {key}: several groups");
            assert_eq!(ours, theirs, "{label}: {key}");

            let plan = plan_text(&lake, &format!("EXPLAIN {metric}")).await;
            assert!(plan.contains("KeyedAggregateExec"), "{label}: {key}: {plan}");
            let plan = plan_text(&lake, &format!("EXPLAIN {plain}")).await;
            assert!(!plan.contains("KeyedAggregateExec"), "plain SQL keeps DataFusion's grouping: {plan}");

            let analyzed = plan_text(&lake, &format!("EXPLAIN ANALYZE {metric}")).await;
            let looked_up = analyzed.contains("direct_key_rows=") || analyzed.contains("hashed_key_rows=");
            assert_eq!(looked_up, memory_limit.is_none(), "{label}: {key}: which grouping ran: {analyzed}");
        }
    }
}

/// Dense integer keys without NULLs are numbered by key, with NULLs looked up in a direct table;
/// sparse ones in a hash table.
#[tokio::test(flavor = "multi_thread")]
async fn dense_integer_keys_are_numbered_by_key_or_looked_up_in_a_direct_table() {
    let lake = Lake::builder().target_partitions(2).batch_size(1000).build().await.unwrap();
    lake.execute(TABLE).await.unwrap();
    // How many of the plan's counts of `name` rows are 0.
    let counts = |analyzed: &str, name: &str| key_row_counts(analyzed, name).iter().filter(|&&n| n == "0").count();
    let zeros = |analyzed: &str| (counts(analyzed, "ordered"), counts(analyzed, "direct"), counts(analyzed, "hashed"));
    // Ids sorted from 0: both aggregates (partial and final) number by key, nothing else.
    let analyzed = plan_text(&lake, &format!("EXPLAIN ANALYZE {}", metric_sql("sorted_user"))).await;
    assert_eq!(zeros(&analyzed), (0, 2, 2), "{analyzed}");
    // Keys from 1,000,000 in no order: numbered by key from a first batch's smallest until a
    // smaller one comes, then in a direct table; never hashed.
    let analyzed = plan_text(&lake, &format!("EXPLAIN ANALYZE {}", metric_sql("dense"))).await;
    assert_eq!(zeros(&analyzed).2, 2, "{analyzed}");
    // NULLs: a direct table once one comes (in both aggregates).
    let analyzed = plan_text(&lake, &format!("EXPLAIN ANALYZE {}", metric_sql("nullable_int"))).await;
    assert_eq!((zeros(&analyzed).1, zeros(&analyzed).2), (0, 2), "{analyzed}");
    let analyzed = plan_text(&lake, &format!("EXPLAIN ANALYZE {}", metric_sql("huge"))).await;
    assert_eq!(zeros(&analyzed), (2, 2, 0), "{analyzed}");
}

/// Input sorted by the key (a file declared in that order) is grouped as runs of equal keys, the
/// groups a batch closes going out after it: integers, NULLs first and last, strings, dates, both
/// directions, through the partial and the final aggregate, against DataFusion's grouping of the
/// unsorted rows.
#[tokio::test(flavor = "multi_thread")]
async fn sorted_input_is_grouped_as_runs_of_equal_keys() {
    let dir = tempfile::tempdir().unwrap();
    let orders = [
        ("sorted_user", "ASC NULLS LAST"),
        ("nullable_int", "ASC NULLS LAST"),
        ("nullable_int", "DESC NULLS FIRST"),
        ("short_text", "ASC NULLS FIRST"),
        ("short_text", "DESC NULLS LAST"),
        ("day", "DESC NULLS LAST"),
    ];
    for (partitions, batch_size) in [(1, 8192), (3, 1000), (4, 64)] {
        let lake = Lake::builder().target_partitions(partitions).batch_size(batch_size).build().await.unwrap();
        lake.execute(TABLE).await.unwrap();
        for (i, (key, order)) in orders.into_iter().enumerate() {
            let label = format!("{partitions} partitions, batches of {batch_size}: {key} {order}");
            let file = dir.path().join(format!("{partitions}-{i}.parquet"));
            let file = file.display();
            lake.execute(&format!("COPY (SELECT * FROM keyed ORDER BY {key} {order}) TO '{file}' STORED AS PARQUET"))
                .await
                .unwrap();
            lake.execute(&format!(
                "CREATE EXTERNAL TABLE sorted_rows STORED AS PARQUET WITH ORDER ({key} {order}) LOCATION '{file}'"
            ))
            .await
            .unwrap();
            let metric = metric_sql(key).replace("FROM keyed", "FROM sorted_rows");
            let (ours, _) = by_key(&lake, &metric).await;
            let (theirs, _) = by_key(&lake, &plain_sql(key)).await;
            assert!(ours.len() > 1, "{label}: several groups");
            assert_eq!(ours, theirs, "{label}");
            let analyzed = plan_text(&lake, &format!("EXPLAIN ANALYZE {metric}")).await;
            let grouped = key_row_counts(&analyzed, "sorted").iter().filter(|&&n| n != "0").count();
            assert!(grouped >= 1, "{label}: grouped as runs: {analyzed}");
            lake.execute("DROP TABLE sorted_rows").await.unwrap();
        }
    }
}

/// `SET cxlake.keyed_grouping = false` leaves the grouping to DataFusion.
#[tokio::test(flavor = "multi_thread")]
async fn keyed_grouping_can_be_turned_off() {
    let lake = Lake::builder().target_partitions(2).batch_size(1000).build().await.unwrap();
    lake.execute(TABLE).await.unwrap();
    let (keyed, _) = by_key(&lake, &metric_sql("mixed_view")).await;
    lake.execute("SET cxlake.keyed_grouping = false").await.unwrap();
    let plan = plan_text(&lake, &format!("EXPLAIN {}", metric_sql("mixed_view"))).await;
    assert!(!plan.contains("KeyedAggregateExec") && plan.contains("AggregateExec"), "{plan}");
    let (datafusion, _) = by_key(&lake, &metric_sql("mixed_view")).await;
    assert_eq!(keyed, datafusion);
}
