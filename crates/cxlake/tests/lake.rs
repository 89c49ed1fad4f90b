//! The library API: registering tables from every kind of location, typed hive partitions,
//! clear errors for bad locations, and the session settings.

use std::path::Path;

use cxlake::arrow::util::pretty::pretty_format_batches;
use cxlake::Lake;

/// Writes `select` to `path` as Parquet with DataFusion's own writer.
async fn write_parquet(path: &Path, select: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    Lake::new().unwrap().execute(&format!("COPY ({select}) TO '{}' STORED AS PARQUET", path.display())).await.unwrap();
}

async fn text(lake: &Lake, sql: &str) -> String {
    pretty_format_batches(&lake.query(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))).unwrap().to_string()
}

#[tokio::test]
async fn registers_files_directories_and_globs() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(&dir.path().join("a/part-1.parquet"), "SELECT 1 AS x").await;
    write_parquet(&dir.path().join("a/nested/part-2.parquet"), "SELECT 2 AS x").await;
    let lake = Lake::new().unwrap();
    let root = dir.path().display();
    lake.register("one_file", &format!("{root}/a/part-1.parquet")).await.unwrap();
    lake.register("whole_dir", &format!("{root}/a")).await.unwrap();
    lake.register("by_url", &format!("file://{root}/a/")).await.unwrap();
    lake.register("by_glob", &format!("{root}/a/*.parquet")).await.unwrap();
    assert!(text(&lake, "SELECT sum(x) AS s FROM one_file").await.contains("| 1 |"));
    // Directories are read recursively.
    let whole = text(&lake, "SELECT sum(x) AS s FROM whole_dir").await;
    assert!(whole.contains("| 3 |"), "{whole}");
    assert!(text(&lake, "SELECT sum(x) AS s FROM by_url").await.contains("| 3 |"));
    // As directories are read recursively, a glob's `*` matches across directory levels too.
    assert!(text(&lake, "SELECT sum(x) AS s FROM by_glob").await.contains("| 3 |"));
    lake.register("by_narrow_glob", &format!("{root}/a/part-*.parquet")).await.unwrap();
    assert!(text(&lake, "SELECT sum(x) AS s FROM by_narrow_glob").await.contains("| 1 |"));
    assert_eq!(lake.table_names(), vec!["by_glob", "by_narrow_glob", "by_url", "one_file", "whole_dir"]);
}

#[tokio::test]
async fn hive_partitions_become_typed_columns() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    for (day, region, n) in [("2025-03-01", "EU", 1), ("2025-03-01", "US", 2), ("2025-03-02", "EU", 4)] {
        write_parquet(
            &events.join(format!("day={day}/region={region}/shard=7/data.parquet")),
            &format!("SELECT {n} AS n"),
        )
        .await;
    }
    let lake = Lake::new().unwrap();
    lake.register("events", &events.display().to_string()).await.unwrap();
    let types = text(
        &lake,
        "SELECT arrow_typeof(day) AS d, arrow_typeof(region) AS r, arrow_typeof(shard) AS s FROM events LIMIT 1",
    )
    .await;
    assert!(types.contains("Date32") && types.contains("Utf8") && types.contains("Int64"), "{types}");
    let filtered =
        text(&lake, "SELECT sum(n) AS total FROM events WHERE day = DATE '2025-03-01' AND region = 'EU'").await;
    assert!(filtered.contains("| 1 "), "{filtered}");
    let by_day = text(&lake, "SELECT day, sum(n) AS total FROM events GROUP BY day ORDER BY day").await;
    assert!(by_day.contains("2025-03-01 | 3") && by_day.contains("2025-03-02 | 4"), "{by_day}");
}

#[tokio::test]
async fn lake_directories_name_tables_after_entries() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(&dir.path().join("orders.parquet"), "SELECT 1 AS id").await;
    write_parquet(&dir.path().join("clicks/day=2025-01-01/p.parquet"), "SELECT 1 AS id").await;
    write_parquet(&dir.path().join("_staging/x.parquet"), "SELECT 1 AS id").await;
    std::fs::write(dir.path().join("notes.txt"), "not a table").unwrap();
    let lake = Lake::new().unwrap();
    let names = lake.register_lake_dir(&dir.path().display().to_string()).await.unwrap();
    assert_eq!(names, vec!["clicks", "orders"]);
}

#[tokio::test]
async fn bad_locations_name_the_location_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new().unwrap();
    let missing = dir.path().join("missing");
    let err = lake.register("t", &missing.display().to_string()).await.unwrap_err().to_string();
    assert!(err.contains(&missing.display().to_string()) && err.contains("No such file"), "{err}");

    std::fs::create_dir(dir.path().join("empty")).unwrap();
    let err = lake.register("t", &dir.path().join("empty").display().to_string()).await.unwrap_err().to_string();
    assert!(err.contains("no Parquet files"), "{err}");

    let fake = dir.path().join("fake.parquet");
    std::fs::write(&fake, "this is not parquet").unwrap();
    let err = lake.register("fake", &fake.display().to_string()).await.unwrap_err().to_string();
    assert!(err.contains("fake") && err.contains("cannot read the Parquet schema"), "{err}");

    // An object store that cannot be reached (no endpoint or credentials here) is named.
    let err = lake.register("t", "s3://bucket/events/").await.unwrap_err().to_string();
    assert!(err.contains("table 't': cannot list s3://bucket/events/"), "{err}");
}

#[tokio::test]
async fn settings_apply_from_the_next_statement() {
    let lake = Lake::new().unwrap();
    let invalid = "SELECT nps(s) AS v FROM (VALUES (10), (11)) t(s)";
    let err = lake.query(invalid).await.unwrap_err().to_string();
    assert!(err.contains("nps") && err.contains("11") && err.contains("cxlake.invalid_input"), "{err}");
    lake.execute("SET cxlake.invalid_input = 'skip'").await.unwrap();
    assert!(text(&lake, invalid).await.contains("| 100.0 |"));
    let shown =
        text(&lake, "SELECT value FROM information_schema.df_settings WHERE name = 'cxlake.invalid_input'").await;
    assert!(shown.contains("skip"), "{shown}");
    let shown = text(&lake, "SHOW cxlake.invalid_input").await;
    assert!(shown.contains("skip"), "{shown}");
    let err = lake.execute("SET cxlake.no_such_setting = 1").await.unwrap_err().to_string();
    assert!(err.contains("cxlake.no_such_setting") && err.contains("cxlake.invalid_input"), "{err}");
    // A second lake is a separate session with the default policy.
    assert!(Lake::new().unwrap().query(invalid).await.is_err());
}

#[tokio::test]
async fn the_sample_lake_has_every_table() {
    let lake = Lake::builder().with_sample_lake().build().await.unwrap();
    for table in [
        "surveys",
        "survey_invitations",
        "customers",
        "tickets",
        "ticket_replies",
        "qa_reviews",
        "subscriptions",
        "orders",
        "clickstream",
    ] {
        assert!(lake.table_names().contains(&table.to_string()), "missing {table}: {:?}", lake.table_names());
    }
    let day = text(&lake, "SELECT arrow_typeof(day) AS t FROM clickstream LIMIT 1").await;
    assert!(day.contains("Date32"), "{day}");
}

#[test]
fn every_function_documents_itself() {
    let functions = cxlake::cxlake_functions();
    assert!(functions.len() >= 6);
    for f in &functions {
        let help = f.help_text();
        assert!(help.contains(&f.documentation.syntax_example), "{}", f.name);
        assert!(!f.summary().is_empty() && !f.summary().ends_with('.'), "{}", f.name);
        assert!(f.documentation.sql_example.is_some(), "{} has no example", f.name);
    }
    assert!(cxlake::functions::cxlake_function("NPS").is_some());
}

#[tokio::test]
async fn partition_filters_prune_directories_and_new_files_are_read_by_the_next_query() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    for (day, n) in [("2025-03-01", 1), ("2025-03-02", 2), ("2025-03-03", 4)] {
        write_parquet(&events.join(format!("day={day}/part-0.parquet")), &format!("SELECT {n} AS n")).await;
    }
    let lake = Lake::new().unwrap();
    lake.register("events", &events.display().to_string()).await.unwrap();
    // The plan lists only the files of the selected partition: the others are never opened.
    let plan = text(&lake, "EXPLAIN SELECT sum(n) FROM events WHERE day = DATE '2025-03-02'").await;
    assert!(plan.contains("day=2025-03-02/part-0.parquet"), "{plan}");
    assert!(!plan.contains("day=2025-03-01") && !plan.contains("day=2025-03-03"), "{plan}");
    assert!(text(&lake, "SELECT sum(n) AS s FROM events").await.contains("| 7 |"));

    // A file added to the lake later is read by the next query, without registering again.
    write_parquet(&events.join("day=2025-03-04/part-0.parquet"), "SELECT 8 AS n").await;
    assert!(text(&lake, "SELECT sum(n) AS s FROM events").await.contains("| 15 |"));

    // A corrupt file in one partition: queries that read it fail with an error naming it, not a
    // crash; queries that prune it away still run. A footer whose length field is garbage makes
    // the Parquet reader itself panic: that too becomes an error naming the file.
    let corrupt = events.join("day=2025-03-05/part-0.parquet");
    std::fs::create_dir_all(corrupt.parent().unwrap()).unwrap();
    for bytes in [&b"PAR1 this file was cut short"[..], b"PAR1 this is not a parquet file PAR1"] {
        std::fs::write(&corrupt, bytes).unwrap();
        let err = lake.execute("SELECT sum(n) FROM events").await.unwrap_err().to_string();
        assert!(err.contains("cannot read") && err.contains("day=2025-03-05/part-0.parquet"), "{err}");
        assert!(err.contains("Move the file out of the lake"), "{err}");
    }
    assert!(text(&lake, "SELECT sum(n) AS s FROM events WHERE day < DATE '2025-03-05'").await.contains("| 15 |"));
}

/// The names in directory `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn insert_into_a_table_is_staged_and_a_failed_insert_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("lake/events");
    write_parquet(&events.join("day=2025-03-01/part-0.parquet"), "SELECT 1 AS n").await;
    let lake = Lake::new().unwrap();
    lake.register("events", &events.display().to_string()).await.unwrap();

    // Rows of a new day land in their partition, next to the table's files.
    let inserted = lake.execute("INSERT INTO events VALUES (2, DATE '2025-03-02'), (3, DATE '2025-03-02')").await;
    assert!(
        text(&lake, "SELECT day, sum(n) AS s FROM events GROUP BY day ORDER BY day")
            .await
            .contains("| 2025-03-01 | 1 |\n| 2025-03-02 | 5 |"),
        "{inserted:?}"
    );
    assert_eq!(names(&events), vec!["_SUCCESS", "day=2025-03-01", "day=2025-03-02"]);
    assert_eq!(names(&events.join("day=2025-03-01")), vec!["part-0.parquet"]);
    let new_day = names(&events.join("day=2025-03-02"));
    assert!(new_day.len() == 1 && new_day[0].ends_with(".parquet"), "{new_day:?}");
    // No staging is left next to the table, and the statement's staging table is gone.
    assert_eq!(names(&dir.path().join("lake")), vec!["events"]);
    assert_eq!(lake.table_names(), vec!["events"]);

    // An INSERT that fails halfway (the second row does not cast) adds nothing.
    let strings = dir.path().join("strings.parquet");
    write_parquet(&strings, "SELECT * FROM (VALUES ('4'), ('x')) t(v)").await;
    lake.register("strings", &strings.display().to_string()).await.unwrap();
    let err =
        lake.execute("INSERT INTO events SELECT CAST(v AS BIGINT), DATE '2025-03-03' FROM strings").await.unwrap_err();
    assert!(err.to_string().contains("'x'"), "{err}");
    assert_eq!(names(&events), vec!["_SUCCESS", "day=2025-03-01", "day=2025-03-02"]);
    assert_eq!(names(&events.join("day=2025-03-02")), new_day);
    assert_eq!(names(&dir.path().join("lake")), vec!["events"]);
    assert!(text(&lake, "SELECT sum(n) AS s FROM events").await.contains("| 6 |"));
}
