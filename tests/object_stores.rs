//! Lakes on real object-store servers (tests/servers.rs): reading hive-partitioned tables with
//! pruning, staged `COPY` commits that replace exactly the partitions written, a server stopped
//! in the middle of a `COPY`, and the errors users meet (unknown bucket, refused credentials,
//! corrupt files) — on two S3 implementations (s3s-fs and moto), Azurite and fake-gcs-server.
//!
//! Data is seeded and inspected with a separate `object_store` client, never through the lake
//! under test; expected values are written by hand.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cxlake::arrow::datatypes::DataType;
use cxlake::Lake;
use cxlake_tests::render_rows;
use cxlake_tests::servers::{S3Kind, Server, S3_ACCESS_KEY, S3_SECRET_KEY};
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

const BUCKET: &str = "lake";

/// Session options pointing a lake at `server`, with short retries so failures come quickly.
fn s3_options(server: &Server) -> Vec<(String, String)> {
    [
        ("aws.endpoint", server.endpoint()),
        ("aws.access_key_id", S3_ACCESS_KEY.to_string()),
        ("aws.secret_access_key", S3_SECRET_KEY.to_string()),
        ("aws.region", "us-east-1".to_string()),
        ("aws.max_retries", "1".to_string()),
        ("aws.retry_timeout", "5".to_string()),
        ("aws.timeout", "5s".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

async fn s3_lake(server: &Server, tables: &[(&str, &str)]) -> Lake {
    let mut builder = Lake::builder();
    for (key, value) in s3_options(server) {
        builder = builder.store_option(key, value);
    }
    for (name, location) in tables {
        builder = builder.table(*name, *location);
    }
    builder.build().await.unwrap_or_else(|e| panic!("lake over {}: {e}", server.command()))
}

/// A client of the server's bucket that does not go through any lake.
fn client(server: &Server) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(server.endpoint())
            .with_bucket_name(BUCKET)
            .with_access_key_id(S3_ACCESS_KEY)
            .with_secret_access_key(S3_SECRET_KEY)
            .with_region("us-east-1")
            .with_allow_http(true)
            .build()
            .unwrap(),
    )
}

/// The Parquet file of `query`'s result, written on local disk by a separate lake.
async fn parquet_bytes(query: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("part.parquet");
    Lake::new().unwrap().execute(&format!("COPY ({query}) TO '{}' STORED AS PARQUET", path.display())).await.unwrap();
    std::fs::read(path).unwrap()
}

async fn put(store: &dyn ObjectStore, key: &str, bytes: Vec<u8>) {
    store.put(&ObjectPath::from(key), PutPayload::from(bytes)).await.unwrap();
}

/// Keys and sizes under `prefix`, sorted.
async fn listing(store: &dyn ObjectStore, prefix: &str) -> Vec<(String, u64)> {
    let prefix = ObjectPath::from(prefix);
    let mut keys: Vec<(String, u64)> =
        store.list(Some(&prefix)).map_ok(|meta| (meta.location.to_string(), meta.size)).try_collect().await.unwrap();
    keys.sort();
    keys
}

async fn rows(lake: &Lake, sql: &str) -> Vec<Vec<String>> {
    let batches = lake.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    render_rows(&batches).unwrap()
}

fn row(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}

async fn error(lake: &Lake, sql: &str) -> String {
    match lake.execute(sql).await {
        Ok(_) => panic!("{sql} should fail"),
        Err(e) => e.to_string(),
    }
}

/// Seeds `events` (3 days, n = 1..5) and a `surveys` file at the bucket's root.
async fn seed_events(store: &dyn ObjectStore) {
    for (day, values) in [("2025-03-01", "(1), (2)"), ("2025-03-02", "(3)"), ("2025-03-03", "(4), (5)")] {
        let bytes = parquet_bytes(&format!("SELECT * FROM (VALUES {values}) t(n)")).await;
        put(store, &format!("events/day={day}/part-0.parquet"), bytes).await;
    }
    put(store, "surveys.parquet", parquet_bytes("SELECT * FROM (VALUES (9), (10), (6)) t(score)").await).await;
}

async fn reads_a_hive_partitioned_lake(kind: S3Kind) {
    let server = Server::s3(kind, &[BUCKET]);
    let store = client(&server);
    seed_events(store.as_ref()).await;

    // A directory given without its trailing slash is a directory.
    let lake = s3_lake(&server, &[("events", "s3://lake/events")]).await;
    assert_eq!(rows(&lake, "SELECT sum(n) FROM events").await, vec![row(&["15"])]);
    let schema = lake.table_schema("events").await.unwrap();
    assert_eq!(schema.field_with_name("day").unwrap().data_type(), &DataType::Date32);

    // A filter on the partition column lists only that partition's file in the plan.
    let plan = rows(&lake, "EXPLAIN SELECT sum(n) FROM events WHERE day = DATE '2025-03-02'").await;
    let plan = format!("{plan:?}");
    assert!(plan.contains("day=2025-03-02/part-0.parquet"), "{plan}");
    assert!(!plan.contains("day=2025-03-01") && !plan.contains("day=2025-03-03"), "{plan}");
    assert_eq!(rows(&lake, "SELECT sum(n) FROM events WHERE day = DATE '2025-03-02'").await, vec![row(&["3"])]);

    // A file added later is read by the next query.
    put(store.as_ref(), "events/day=2025-03-04/part-0.parquet", parquet_bytes("SELECT 6 AS n").await).await;
    assert_eq!(rows(&lake, "SELECT sum(n) FROM events").await, vec![row(&["21"])]);

    // A bucket prefix as a lake: every directory and Parquet file directly under it is a table.
    let whole = s3_lake(&server, &[]).await;
    assert_eq!(whole.register_lake_dir("s3://lake/").await.unwrap(), vec!["events", "surveys"]);
    assert_eq!(rows(&whole, "SELECT count(*), sum(score) FROM surveys").await, vec![row(&["3", "25"])]);

    // CREATE EXTERNAL TABLE in a session with no store settings: the table's OPTIONS set up the
    // bucket, and the credentials in them appear in no message.
    let bare = Lake::new().unwrap();
    let mut options: Vec<String> = s3_options(&server).iter().map(|(k, v)| format!("'{k}' '{v}'")).collect::<Vec<_>>();
    options.push("'format.pushdown_filters' 'true'".to_string());
    let create = format!(
        "CREATE EXTERNAL TABLE ext STORED AS PARQUET LOCATION 's3://lake/events/' OPTIONS ({})",
        options.join(", ")
    );
    bare.execute(&create).await.unwrap();
    assert_eq!(rows(&bare, "SELECT count(*), sum(n) FROM ext").await, vec![row(&["6", "21"])]);
    let plan = format!("{:?}", rows(&bare, "EXPLAIN SELECT * FROM ext").await);
    assert!(!plan.contains(S3_SECRET_KEY), "{plan}");
}

async fn copy_commits_exactly_its_partitions(kind: S3Kind) {
    let server = Server::s3(kind, &[BUCKET]);
    let store = client(&server);
    let lake = s3_lake(&server, &[]).await;
    let copy = |values: &str| {
        format!(
            "COPY (SELECT * FROM (VALUES {values}) t(day, v)) TO 's3://lake/kpis/nps/' STORED AS PARQUET \
             PARTITIONED BY (day)"
        )
    };
    let written = lake.execute(&copy("('2025-03-01', 1), ('2025-03-02', 2)")).await.unwrap().written.unwrap();
    assert_eq!(written.files, 2);
    let first = listing(store.as_ref(), "kpis").await;
    let names: Vec<&str> = first.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names[0].starts_with("kpis/nps/_SUCCESS"), "{names:?}");
    assert!(names[1].starts_with("kpis/nps/day=2025-03-01/") && names[1].ends_with(".parquet"), "{names:?}");
    assert!(names[2].starts_with("kpis/nps/day=2025-03-02/"), "{names:?}");
    assert_eq!(written.bytes, first[1].1 + first[2].1);
    // `_SUCCESS` is written after the data.
    let modified = |key: &str| {
        let store = Arc::clone(&store);
        let key = ObjectPath::from(key);
        async move { store.head(&key).await.unwrap().last_modified }
    };
    assert!(modified(names[0]).await >= modified(names[2]).await);

    let read = "SELECT day, v FROM kpis ORDER BY day";
    let kpis = s3_lake(&server, &[("kpis", "s3://lake/kpis/nps/")]).await;
    assert_eq!(rows(&kpis, read).await, vec![row(&["2025-03-01", "1"]), row(&["2025-03-02", "2"])]);

    // Rewriting one day replaces that partition only, and again gives the same lake.
    for _ in 0..2 {
        lake.execute(&copy("('2025-03-02', 20)")).await.unwrap();
        let now = listing(store.as_ref(), "kpis").await;
        assert_eq!(now.len(), 3, "{now:?}");
        assert_eq!(now[1], first[1], "the other day's file is untouched");
        assert!(now[2].0.starts_with("kpis/nps/day=2025-03-02/") && now[2] != first[2], "{now:?}");
        assert_eq!(rows(&kpis, read).await, vec![row(&["2025-03-01", "1"]), row(&["2025-03-02", "20"])]);
    }

    // A file target is replaced by its new file; a directory without partitions as a whole.
    lake.execute("COPY (SELECT 42 AS answer) TO 's3://lake/out/answer.parquet' STORED AS PARQUET").await.unwrap();
    lake.execute("COPY (SELECT 1 AS x) TO 's3://lake/whole/' STORED AS PARQUET").await.unwrap();
    lake.execute("COPY (SELECT 2 AS x UNION ALL SELECT 3) TO 's3://lake/whole/' STORED AS PARQUET").await.unwrap();
    let out = s3_lake(&server, &[("answer", "s3://lake/out/answer.parquet"), ("whole", "s3://lake/whole/")]).await;
    assert_eq!(rows(&out, "SELECT answer FROM answer").await, vec![row(&["42"])]);
    assert_eq!(rows(&out, "SELECT sum(x), count(*) FROM whole").await, vec![row(&["5", "2"])]);

    // Nothing of the staging is left anywhere in the bucket.
    let everything = listing(store.as_ref(), "").await;
    assert!(everything.iter().all(|(k, _)| !k.contains(".cxlake-staging")), "{everything:?}");
}

async fn a_server_stopped_mid_copy_leaves_the_target_as_it_was(kind: S3Kind) {
    let server = Server::s3(kind, &[BUCKET]);
    let store = client(&server);
    let lake = s3_lake(&server, &[]).await;
    lake.execute("COPY (SELECT 1 AS id, 0.5 AS x) TO 's3://lake/big/' STORED AS PARQUET").await.unwrap();
    let before = listing(store.as_ref(), "big").await;
    assert_eq!(before.len(), 2, "{before:?}");

    // A write of some hundred megabytes: it uploads in parts while the query still runs.
    let big = "COPY (SELECT v AS id, random() AS x FROM generate_series(1, 20000000) t(v)) \
               TO 's3://lake/big/' STORED AS PARQUET";
    let writer = lake.clone();
    let copy = tokio::spawn(async move { writer.execute(big).await });
    let deadline = Instant::now() + Duration::from_secs(120);
    while !server.uploads_in_progress(BUCKET) {
        assert!(Instant::now() < deadline, "the COPY never started uploading");
        assert!(!copy.is_finished(), "the COPY ended before the server could be stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.pause();
    let outcome = tokio::time::timeout(Duration::from_secs(180), copy).await.expect("the COPY gave up").unwrap();
    server.resume();
    let err = outcome.expect_err("a COPY whose server stopped fails").to_string();
    assert!(err.contains("did not answer") || err.contains("timed out"), "{err}");
    assert!(!err.contains(S3_SECRET_KEY), "{err}");
    // The target is as it was: the same objects, the same sizes.
    assert_eq!(listing(store.as_ref(), "big").await, before);

    // The next write succeeds and leaves no staging behind, the failed statement's included.
    lake.execute("COPY (SELECT 2 AS id, 1.5 AS x) TO 's3://lake/big/' STORED AS PARQUET").await.unwrap();
    let everything = listing(store.as_ref(), "").await;
    assert!(everything.iter().all(|(k, _)| !k.contains(".cxlake-staging")), "{everything:?}");
    let read = s3_lake(&server, &[("big", "s3://lake/big/")]).await;
    assert_eq!(rows(&read, "SELECT id, x FROM big").await, vec![row(&["2", "1.5"])]);
}

async fn errors_name_the_location_and_never_a_credential(kind: S3Kind) {
    let server = Server::s3(kind, &[BUCKET]);
    let store = client(&server);
    seed_events(store.as_ref()).await;
    let lake = s3_lake(&server, &[("events", "s3://lake/events/")]).await;

    let missing = lake.register("t", "s3://no-such-bucket/events/").await.unwrap_err().to_string();
    assert!(missing.contains("s3://no-such-bucket/events/") && missing.contains("does not exist"), "{missing}");
    let empty = lake.register("t", "s3://lake/nothing-here/").await.unwrap_err().to_string();
    assert!(empty.contains("no Parquet files at s3://lake/nothing-here/"), "{empty}");
    put(store.as_ref(), "notes/readme.parquet", b"this is not parquet".to_vec()).await;
    let not_parquet = lake.register("t", "s3://lake/notes/").await.unwrap_err().to_string();
    assert!(not_parquet.contains("cannot read the Parquet schema at s3://lake/notes/"), "{not_parquet}");

    // A corrupt file in one partition: statements that read it name it; others still run.
    put(store.as_ref(), "events/day=2025-03-05/part-0.parquet", b"PAR1 cut short".to_vec()).await;
    let corrupt = error(&lake, "SELECT sum(n) FROM events").await;
    assert!(corrupt.contains("cannot read s3://lake/events/day=2025-03-05/part-0.parquet"), "{corrupt}");
    assert_eq!(rows(&lake, "SELECT sum(n) FROM events WHERE day < DATE '2025-03-05'").await, vec![row(&["15"])]);

    // An option no store knows is named, with the way out.
    let typo = Lake::builder().store_option("aws.endpoitn", server.endpoint()).table("e", "s3://lake/events/");
    let typo = typo.build().await.unwrap_err().to_string();
    assert!(typo.contains("unknown option 'aws.endpoitn' for s3:// locations"), "{typo}");

    for message in [&missing, &empty, &not_parquet, &corrupt, &typo] {
        assert!(!message.contains(S3_SECRET_KEY), "{message}");
    }
}

/// s3s-fs checks signatures (moto does not): a wrong secret is refused, and neither the wrong
/// secret nor the right one appears in the message.
async fn refused_credentials_are_explained(kind: S3Kind) {
    let server = Server::s3(kind, &[BUCKET]);
    seed_events(client(&server).as_ref()).await;
    let wrong_secret = "wrong-secret-8d2c41f7";
    let mut builder = Lake::builder();
    for (key, value) in s3_options(&server) {
        let value = if key == "aws.secret_access_key" { wrong_secret.to_string() } else { value };
        builder = builder.store_option(key, value);
    }
    let err = builder.table("events", "s3://lake/events/").build().await.unwrap_err().to_string();
    assert!(err.contains("s3://lake/events/") && err.contains("credentials were refused"), "{err}");
    assert!(!err.contains(wrong_secret) && !err.contains(S3_SECRET_KEY), "{err}");
}

macro_rules! s3_tests {
    ($module:ident, $kind:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reads_a_hive_partitioned_lake() {
                super::reads_a_hive_partitioned_lake($kind).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn copy_commits_exactly_its_partitions() {
                super::copy_commits_exactly_its_partitions($kind).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_server_stopped_mid_copy_leaves_the_target_as_it_was() {
                super::a_server_stopped_mid_copy_leaves_the_target_as_it_was($kind).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn errors_name_the_location_and_never_a_credential() {
                super::errors_name_the_location_and_never_a_credential($kind).await
            }
        }
    };
}

s3_tests!(s3s_fs, S3Kind::S3sFs);
s3_tests!(moto, S3Kind::Moto);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3s_fs_refuses_wrong_credentials_with_an_explanation() {
    refused_credentials_are_explained(S3Kind::S3sFs).await
}

/// Azure Blob (Azurite): the same read and write paths, with the account's options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_blob_reads_and_commits_partitions() {
    let server = Server::azurite();
    server.create_azure_container("lake");
    let mut options = BTreeMap::new();
    options.insert("azure.account_name", cxlake_tests::servers::AZURITE_ACCOUNT.to_string());
    options.insert("azure.access_key", cxlake_tests::servers::AZURITE_KEY.to_string());
    options.insert("azure.endpoint", format!("{}/{}", server.endpoint(), cxlake_tests::servers::AZURITE_ACCOUNT));
    options.insert("azure.max_retries", "1".to_string());
    let mut builder = Lake::builder();
    for (key, value) in &options {
        builder = builder.store_option(*key, value.clone());
    }
    let lake = builder.build().await.unwrap();
    let copy = |values: &str| {
        format!(
            "COPY (SELECT * FROM (VALUES {values}) t(day, v)) TO 'az://lake/kpis/' STORED AS PARQUET \
             PARTITIONED BY (day)"
        )
    };
    lake.execute(&copy("('2025-03-01', 1), ('2025-03-02', 2)")).await.unwrap();
    lake.execute(&copy("('2025-03-02', 20)")).await.unwrap();
    lake.register("kpis", "az://lake/kpis/").await.unwrap();
    assert_eq!(
        rows(&lake, "SELECT day, v FROM kpis ORDER BY day").await,
        vec![row(&["2025-03-01", "1"]), row(&["2025-03-02", "20"])]
    );
    let plan = format!("{:?}", rows(&lake, "EXPLAIN SELECT v FROM kpis WHERE day = '2025-03-01'").await);
    assert!(plan.contains("day=2025-03-01/") && !plan.contains("day=2025-03-02/"), "{plan}");
    let listing = server.azure_blobs("lake");
    assert!(listing.iter().any(|name| name == "kpis/_SUCCESS"), "{listing:?}");
    assert!(listing.iter().all(|name| !name.contains(".cxlake-staging")), "{listing:?}");
    assert_eq!(listing.iter().filter(|name| name.starts_with("kpis/day=2025-03-02/")).count(), 1, "{listing:?}");
}

/// GCS (fake-gcs-server): reads and partition pruning. Writes are not tested against it (its
/// XML API, which `object_store` writes through, does not take them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_reads_a_hive_partitioned_lake() {
    let seed = tempfile::tempdir().unwrap();
    for (day, values) in [("2025-03-01", "(1), (2)"), ("2025-03-02", "(3)")] {
        let path = seed.path().join(format!("lake/events/day={day}/part-0.parquet"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, parquet_bytes(&format!("SELECT * FROM (VALUES {values}) t(n)")).await).unwrap();
    }
    let server = Server::fake_gcs(seed.path());
    let lake = Lake::builder()
        .store_option("gcp.base_url", server.endpoint())
        .store_option("gcp.skip_signature", "true")
        .store_option("gcp.max_retries", "1")
        .table("events", "gs://lake/events/")
        .build()
        .await
        .unwrap();
    assert_eq!(rows(&lake, "SELECT sum(n), count(*) FROM events").await, vec![row(&["6", "3"])]);
    let plan = format!("{:?}", rows(&lake, "EXPLAIN SELECT n FROM events WHERE day = DATE '2025-03-02'").await);
    assert!(plan.contains("day=2025-03-02/part-0.parquet") && !plan.contains("day=2025-03-01"), "{plan}");
    assert_eq!(rows(&lake, "SELECT sum(n) FROM events WHERE day = DATE '2025-03-02'").await, vec![row(&["3"])]);
}

/// `INSERT INTO` a table on S3: staged, then the new files join the table's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_into_a_table_on_s3_is_staged() {
    let server = Server::s3(S3Kind::S3sFs, &[BUCKET]);
    let store = client(&server);
    seed_events(store.as_ref()).await;
    let lake = s3_lake(&server, &[("events", "s3://lake/events/")]).await;
    let before = listing(store.as_ref(), "events").await;
    lake.execute("INSERT INTO events VALUES (7, DATE '2025-03-09')").await.unwrap();
    assert_eq!(rows(&lake, "SELECT sum(n) FROM events WHERE day = DATE '2025-03-09'").await, vec![row(&["7"])]);
    let after = listing(store.as_ref(), "events").await;
    // The table's files are all still there, with one new file in the new partition and the marker.
    assert!(before.iter().all(|entry| after.contains(entry)), "{after:?}");
    let new: Vec<&String> = after.iter().map(|(k, _)| k).filter(|k| !before.iter().any(|(b, _)| b == *k)).collect();
    assert_eq!(new.len(), 2, "{new:?}");
    assert!(new.iter().any(|k| *k == "events/_SUCCESS"), "{new:?}");
    assert!(new.iter().any(|k| k.starts_with("events/day=2025-03-09/") && k.ends_with(".parquet")), "{new:?}");
    let everything = listing(store.as_ref(), "").await;
    assert!(everything.iter().all(|(k, _)| !k.contains(".cxlake-staging")), "{everything:?}");
}
