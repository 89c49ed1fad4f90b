//! The `cxlake` binary as scripts use it: output formats, exit statuses, table registration and
//! settings. Every run has no standard input unless a test gives it some.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{display, Fixture};

#[test]
fn csv_has_a_header_empty_nulls_and_iso_timestamps() {
    let f = Fixture::new();
    let lake = f.lake_args();
    let sql = "SELECT id, channel, score, answered_at FROM responses ORDER BY id";
    let out = f.run(&[&lake[0], &lake[1], "-c", sql]).ok();
    assert_eq!(
        out,
        "id,channel,score,answered_at\n\
         1,app,9,2025-03-01T09:15:00\n\
         2,,6,2025-03-01T17:40:30\n\
         3,web,,\n"
    );
    // csv is the default when standard output is not a terminal, and --format csv says it too.
    let explicit = f.run(&[&lake[0], &lake[1], "--format", "csv", "-c", sql]).ok();
    assert_eq!(explicit, out);
}

#[test]
fn json_ndjson_and_tsv() {
    let f = Fixture::new();
    let lake = f.lake_args();
    let sql = "SELECT id, channel FROM responses WHERE id <= 2 ORDER BY id";
    let run = |format: &str| f.run(&[&lake[0], &lake[1], "--format", format, "-c", sql]).ok();
    assert_eq!(run("json"), "[{\"id\":1,\"channel\":\"app\"},{\"id\":2,\"channel\":null}]\n");
    assert_eq!(run("ndjson"), "{\"id\":1,\"channel\":\"app\"}\n{\"id\":2,\"channel\":null}\n");
    assert_eq!(run("tsv"), "id\tchannel\n1\tapp\n2\t\n");
}

#[test]
fn table_format_adds_the_row_count_unless_quiet() {
    let f = Fixture::new();
    let out = f.run(&["--format", "table", "-c", "SELECT 1 AS x"]).ok();
    assert!(out.contains("| x |") && out.contains("| 1 |"), "{out}");
    assert!(out.contains("1 row in "), "{out}");
    let quiet = f.run(&["-q", "--format", "table", "-c", "SELECT 1 AS x"]).ok();
    assert!(!quiet.contains("row"), "{quiet}");
}

#[test]
fn several_commands_and_files_run_in_command_line_order_in_one_session() {
    let f = Fixture::new();
    let script = f.path("two.sql");
    std::fs::write(&script, "SELECT 2 AS b").unwrap();
    let out = f
        .run(&[
            "-c",
            "SET datafusion.execution.batch_size = 2; SELECT 1 AS a",
            "-f",
            &display(&script),
            "-c",
            "SELECT 3 AS c; SHOW datafusion.execution.batch_size",
        ])
        .ok();
    assert_eq!(out, "a\n1\nb\n2\nc\n3\nname,value\ndatafusion.execution.batch_size,2\n");
}

#[test]
fn statements_without_result_columns_print_nothing() {
    let f = Fixture::new();
    let create =
        format!("CREATE EXTERNAL TABLE r2 STORED AS PARQUET LOCATION '{}'", display(&f.path("lake/responses.parquet")));
    let out = f.run(&["-c", "SET datafusion.execution.batch_size = 2", "-c", &create]).ok();
    assert_eq!(out, "");
    let out = f.run(&["-c", &create, "-c", "SELECT count(*) AS n FROM r2"]).ok();
    assert_eq!(out, "n\n3\n");
}

#[test]
fn a_file_with_comments_and_semicolons_in_strings() {
    let f = Fixture::new();
    let script = f.path("script.sql");
    std::fs::write(
        &script,
        "-- the first statement; a comment with a semicolon\n\
         SELECT 'a;b' AS s; /* a block; comment */\n\
         SELECT 'it''s; fine' AS t, \"id\" FROM responses WHERE id = 1;\n\
         \n\
         SELECT 3 AS last -- no semicolon at the end\n",
    )
    .unwrap();
    let lake = f.lake_args();
    let out = f.run(&[&lake[0], &lake[1], "-f", &display(&script)]).ok();
    assert_eq!(out, "s\na;b\nt,id\nit's; fine,1\nlast\n3\n");
}

#[test]
fn a_failing_statement_stops_the_script_with_status_1() {
    let f = Fixture::new();
    let after = f.path("after.parquet");
    let copy_after = format!("COPY (SELECT 1 AS x) TO '{}' STORED AS PARQUET", display(&after));
    let run = f.run(&[
        "-c",
        "SELECT 'before' AS step",
        "-c",
        "SELECT nps(s) AS nps FROM (VALUES (10), (11), (0)) t(s)",
        "-c",
        &copy_after,
    ]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(run.stdout, "step\nbefore\n");
    assert!(run.stderr.starts_with("Error: "), "{}", run.stderr);
    assert!(!after.exists(), "the statement after the failing one ran");
}

#[test]
fn a_statement_failing_midway_prints_none_of_its_rows() {
    let f = Fixture::new();
    let table = format!("s={}", display(&f.path("strings.parquet")));
    // One row per batch: the first batches cast fine before 'x' fails.
    let run = f.run(&[
        "--table",
        &table,
        "--batch-size",
        "1",
        "--target-partitions",
        "1",
        "-c",
        "SELECT 'ok' AS first",
        "-c",
        "SELECT CAST(v AS INT) AS n FROM s",
    ]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(run.stdout, "first\nok\n");
    assert!(run.stderr.starts_with("Error: ") && run.stderr.contains("'x'"), "{}", run.stderr);
}

#[test]
fn invalid_input_errors_name_the_function_the_value_and_the_setting() {
    let f = Fixture::new();
    let query = "SELECT nps(s) AS nps FROM (VALUES (10), (11), (0)) t(s)";
    let run = f.run(&["-c", query]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stdout, "");
    for needle in ["Error: ", "nps", "11", "cxlake.invalid_input"] {
        assert!(run.stderr.contains(needle), "missing {needle}: {}", run.stderr);
    }
    // Skipping the 11 leaves one promoter (10) and one detractor (0): NPS 0.
    let out = f.run(&["-c", "SET cxlake.invalid_input = 'skip'", "-c", query]).ok();
    assert_eq!(out, "nps\n0.0\n");
}

#[test]
fn datafusion_settings_and_execution_flags() {
    let f = Fixture::new();
    let out = f
        .run(&[
            "-c",
            "SET datafusion.execution.batch_size = 2; SELECT count(*) AS n FROM range(10); \
             SHOW datafusion.execution.batch_size",
        ])
        .ok();
    assert_eq!(out, "n\n10\nname,value\ndatafusion.execution.batch_size,2\n");
    let out = f
        .run(&[
            "--batch-size",
            "3",
            "--target-partitions",
            "1",
            "-c",
            "SELECT name, value FROM information_schema.df_settings \
             WHERE name IN ('datafusion.execution.batch_size', 'datafusion.execution.target_partitions') \
             ORDER BY name",
        ])
        .ok();
    assert_eq!(out, "name,value\ndatafusion.execution.batch_size,3\ndatafusion.execution.target_partitions,1\n");
}

#[test]
fn tables_from_a_file_a_directory_and_a_glob() {
    let f = Fixture::new();
    let file = format!("r={}", display(&f.path("lake/responses.parquet")));
    let dir = format!("t={}", display(&f.path("lake/tickets")));
    let glob = format!("g={}", display(&f.path("shards/part-*.parquet")));
    let out = f
        .run(&[
            "--table",
            &file,
            "--table",
            &dir,
            "--table",
            &glob,
            "-c",
            "SELECT (SELECT count(*) FROM r) AS r, (SELECT count(*) FROM t) AS t, \
             (SELECT sum(shard) FROM g) AS g",
        ])
        .ok();
    assert_eq!(out, "r,t,g\n3,3,3\n");
}

#[test]
fn lake_directories_name_tables_after_files_and_directories() {
    let f = Fixture::new();
    let lake = f.lake_args();
    let out = f
        .run(&[
            &lake[0],
            &lake[1],
            "-c",
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1",
        ])
        .ok();
    assert_eq!(out, "table_name\nevents\nresponses\ntickets\n");
}

#[test]
fn hive_partitions_become_typed_columns() {
    let f = Fixture::new();
    let table = format!("events={}", display(&f.path("lake/events")));
    let out = f
        .run(&[
            "--table",
            &table,
            "-c",
            "SELECT arrow_typeof(day) AS day_type, arrow_typeof(region) AS region_type FROM events LIMIT 1",
            "-c",
            "SELECT day, region, count(*) AS n FROM events GROUP BY day, region ORDER BY day, region",
            "-c",
            "SELECT region, sum(user_id) AS s FROM events WHERE day = DATE '2025-03-02' GROUP BY region",
        ])
        .ok();
    assert_eq!(
        out,
        "day_type,region_type\nDate32,Utf8\n\
         day,region,n\n2025-03-01,EU,2\n2025-03-01,US,1\n2025-03-02,EU,3\n\
         region,s\nEU,15\n"
    );
}

#[test]
fn statements_from_standard_input() {
    let f = Fixture::new();
    let mut child =
        f.command().stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn cxlake");
    child.stdin.take().unwrap().write_all(b"SELECT 1 AS x;\nSELECT 'two' AS y;\n").unwrap();
    let run = common::Run::from(child.wait_with_output().unwrap());
    assert_eq!(run.ok(), "x\n1\ny\ntwo\n");
    // A closed standard input is an empty script.
    assert_eq!(f.run(&[]).ok(), "");
    // -f - reads standard input too.
    let mut child = f.command().args(["-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"SELECT 5 AS z").unwrap();
    assert_eq!(common::Run::from(child.wait_with_output().unwrap()).ok(), "z\n5\n");
}

#[test]
fn the_sample_lake_is_registered_without_tables_or_lakes() {
    let f = Fixture::new();
    // Fixture::command points CXLAKE_SAMPLE_LAKE at the fixture lake.
    let out = f.run(&["-c", "SELECT count(*) > 0 AS ok FROM responses"]).ok();
    assert_eq!(out, "ok\ntrue\n");
    // With --table, the sample lake is not registered.
    let table = format!("only={}", display(&f.path("shards/part-1.parquet")));
    let run = f.run(&["--table", &table, "-c", "SELECT * FROM responses"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("responses"), "{}", run.stderr);
}

#[test]
fn usage_errors_exit_with_status_2() {
    let f = Fixture::new();
    let run = f.run(&["--table", "no_equals_sign"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("no_equals_sign"), "{}", run.stderr);
    assert_eq!(f.run(&["--format", "xml", "-c", "SELECT 1"]).code, Some(2));
    assert_eq!(f.run(&["--no-such-flag"]).code, Some(2));
    assert_eq!(f.run(&["--batch-size", "0", "-c", "SELECT 1"]).code, Some(2));
}

#[test]
fn bad_locations_and_missing_files_exit_with_status_1() {
    let f = Fixture::new();
    let missing = format!("m={}", display(&f.path("missing")));
    let run = f.run(&["--table", &missing, "-c", "SELECT 1"]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.starts_with("Error: ") && run.stderr.contains("missing"), "{}", run.stderr);
    let run = f.run(&["-f", &display(&f.path("missing.sql"))]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("missing.sql"), "{}", run.stderr);
}

#[test]
fn version_and_help() {
    let f = Fixture::new();
    assert!(f.run(&["--version"]).ok().starts_with("cxlake "));
    let help = f.run(&["--help"]).ok();
    for needle in ["--table <NAME=LOCATION>", "--lake <DIR>", "sample lake", "csv otherwise", "Exit status"] {
        assert!(help.contains(needle), "missing {needle}: {help}");
    }
}

#[test]
fn the_built_in_sample_lake_answers_the_readme_query() {
    let f = Fixture::new();
    let output = f
        .command()
        .env_remove("CXLAKE_SAMPLE_LAKE")
        .args(["-c", "SELECT channel, nps(score) AS nps FROM surveys GROUP BY channel ORDER BY channel"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let run = common::Run::from(output);
    let out = run.ok();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "channel,nps");
    let channels: Vec<&str> = lines[1..].iter().map(|l| l.split(',').next().unwrap()).collect();
    assert_eq!(channels, vec!["app", "chat", "email", "phone", "web"]);
    for line in &lines[1..] {
        let nps: f64 = line.split(',').nth(1).unwrap().parse().unwrap();
        assert!((-100.0..=100.0).contains(&nps), "{line}");
    }
}
