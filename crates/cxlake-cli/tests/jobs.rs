//! `cxlake run`: parameters, the per-statement log, committed writes (a failing or killed job
//! leaves the target as it was; a re-run leaves exactly one run's output), dry runs, and
//! `--memory-limit` on the real binary.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{display, files as tree, Fixture};

/// The nightly job of these tests: answers and NPS of one day, written partitioned by day.
const KPI_JOB: &str = "\
-- answers and NPS of ${run_date}
COPY (SELECT CAST(answered_at AS DATE) AS day, count(*) AS answers, nps(score) AS nps
      FROM responses WHERE CAST(answered_at AS DATE) = DATE '${run_date}'
      GROUP BY CAST(answered_at AS DATE))
TO '${out}/' STORED AS PARQUET PARTITIONED BY (day);
";

fn write_job(f: &Fixture, name: &str, text: &str) -> String {
    let path = f.path(name);
    std::fs::write(&path, text).unwrap();
    display(&path)
}

/// `cxlake --lake <fixture lake> run JOB --param k=v ... EXTRA...`
fn run_job(f: &Fixture, job: &str, params: &[(&str, &str)], extra: &[&str]) -> common::Run {
    let mut args: Vec<String> = f.lake_args();
    args.extend(["run".to_string(), job.to_string()]);
    for (name, value) in params {
        args.extend(["--param".to_string(), format!("{name}={value}")]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    f.run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn read_back(f: &Fixture, out: &str) -> String {
    f.run(&["--table", &format!("kpis={out}"), "-c", "SELECT day, answers, nps FROM kpis ORDER BY day"]).ok()
}

#[test]
fn a_job_writes_its_partition_and_a_rerun_replaces_it() {
    let f = Fixture::new();
    let job = write_job(&f, "kpis.sql", KPI_JOB);
    let out = display(&f.path("out/kpis"));
    let run = |day: &str| run_job(&f, &job, &[("run_date", day), ("out", &out)], &[]);

    let first = run("2025-03-01");
    assert_eq!(first.code, Some(0), "{first:#?}");
    // 2025-03-01 has two answers, 9 (promoter) and 6 (detractor): NPS 0.
    assert_eq!(read_back(&f, &out), "day,answers,nps\n2025-03-01,2,0.0\n");
    assert!(first.stderr.contains("[1/1] ok: COPY (SELECT CAST(answered_at AS DATE)"), "{}", first.stderr);
    assert!(first.stderr.contains("— 1 row, "), "{}", first.stderr);
    assert!(first.stderr.contains("in 1 file written"), "{}", first.stderr);
    let files = tree(&f.path("out"));
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.contains(&"kpis/_SUCCESS".to_string()), "{files:?}");
    assert!(files.iter().any(|p| p.starts_with("kpis/day=2025-03-01/") && p.ends_with(".parquet")), "{files:?}");

    // The same day again: exactly one run's output, in a new file.
    assert_eq!(run("2025-03-01").code, Some(0));
    assert_eq!(read_back(&f, &out), "day,answers,nps\n2025-03-01,2,0.0\n");
    let again = tree(&f.path("out"));
    assert_eq!(again.len(), 2, "{again:?}");
    assert_ne!(again, files, "the partition was rewritten");
}

#[test]
fn a_failing_statement_leaves_the_target_as_it_was() {
    let f = Fixture::new();
    let out = display(&f.path("out/kpis"));
    let good = write_job(&f, "good.sql", KPI_JOB);
    assert_eq!(run_job(&f, &good, &[("run_date", "2025-03-01"), ("out", &out)], &[]).code, Some(0));
    let before = tree(&f.path("out"));

    // The second statement fails while it writes the same partition (an NPS answer of 11).
    let bad = write_job(
        &f,
        "bad.sql",
        "SET cxlake.invalid_input = 'error';\n\
         COPY (SELECT DATE '2025-03-01' AS day, count(*) AS answers, nps(CASE WHEN id = 2 THEN 11 ELSE score END) AS nps \
               FROM responses GROUP BY 1) TO '${out}/' STORED AS PARQUET PARTITIONED BY (day);\n\
         SELECT 'not reached';",
    );
    let failed = run_job(&f, &bad, &[("out", &out)], &[]);
    assert_eq!(failed.code, Some(1), "{failed:#?}");
    assert!(failed.stderr.contains("[2/3] failed: COPY"), "{}", failed.stderr);
    assert!(failed.stderr.contains("nps: invalid NPS score 11"), "{}", failed.stderr);
    assert!(!failed.stdout.contains("not reached"));
    assert_eq!(tree(&f.path("out")), before, "the target and its directory are unchanged, no staging left");
    assert_eq!(read_back(&f, &out), "day,answers,nps\n2025-03-01,2,0.0\n");
}

#[test]
fn missing_or_unknown_parameters_stop_the_job_before_anything_runs() {
    let f = Fixture::new();
    let lake = f.lake_args();
    let job = write_job(&f, "kpis.sql", KPI_JOB);
    let out = display(&f.path("out/kpis"));
    let missing = run_job(&f, &job, &[("out", &out)], &[]);
    assert_eq!(missing.code, Some(2));
    assert!(
        missing.stderr.contains("the job uses parameter ${run_date} with no value: give --param run_date=VALUE"),
        "{}",
        missing.stderr
    );
    let unknown = f.run(&[
        &lake[0],
        &lake[1],
        "run",
        &job,
        "--param",
        "run_date=2025-03-01",
        "--param",
        &format!("out={out}"),
        "--param",
        "rundate=x",
    ]);
    assert_eq!(unknown.code, Some(2));
    assert!(
        unknown.stderr.contains("unknown parameter rundate: the job uses ${out}, ${run_date}"),
        "{}",
        unknown.stderr
    );
    assert!(!f.path("out").exists(), "nothing was written");
}

#[test]
fn json_log_lines_for_schedulers() {
    let f = Fixture::new();
    let job = write_job(&f, "kpis.sql", &format!("{KPI_JOB}\nSELECT count(*) AS n FROM responses;"));
    let out = display(&f.path("out/kpis"));
    let run = run_job(&f, &job, &[("run_date", "2025-03-01"), ("out", &out)], &["--log-format", "json"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    // The query's rows go to standard output; the log to standard error, one object per statement.
    assert_eq!(run.stdout, "n\n3\n");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stderr);
    assert!(lines[0].starts_with("{\"statement\":1,\"of\":2,\"status\":\"ok\",\"sql\":\"COPY (SELECT"), "{}", lines[0]);
    assert!(lines[0].contains("\"rows\":1,\"files_written\":1,\"bytes_written\":"), "{}", lines[0]);
    assert!(lines[1].starts_with("{\"statement\":2,\"of\":2,\"status\":\"ok\""), "{}", lines[1]);
    assert!(lines[1].ends_with("\"rows\":1}"), "{}", lines[1]);
}

#[test]
fn a_dry_run_prints_plans_and_writes_nothing() {
    let f = Fixture::new();
    let job = write_job(
        &f,
        "kpis.sql",
        &format!(
            "CREATE VIEW answered AS SELECT * FROM responses WHERE score IS NOT NULL;\n{}",
            KPI_JOB.replace("FROM responses", "FROM answered")
        ),
    );
    let out = display(&f.path("out/kpis"));
    let run = run_job(&f, &job, &[("run_date", "2025-03-01"), ("out", &out)], &["--dry-run"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("CopyTo: format=parquet"), "{}", run.stdout);
    assert!(run.stdout.contains("DataSinkExec"), "{}", run.stdout);
    assert!(run.stderr.contains("[1/2] ok: CREATE VIEW answered"), "{}", run.stderr);
    assert!(run.stderr.contains("[2/2] planned: COPY"), "{}", run.stderr);
    assert!(!f.path("out").exists(), "nothing was written");
}

#[test]
fn a_killed_job_leaves_the_target_untouched_and_the_next_run_cleans_up() {
    let f = Fixture::new();
    let lake = f.lake_args();
    let out = f.path("out/big");
    // A write that takes seconds: time to kill it while its files are staged.
    let slow = write_job(
        &f,
        "slow.sql",
        "COPY (SELECT v, v * 2 AS w FROM generate_series(1, 40000000) t(v)) TO '${out}/' STORED AS PARQUET;",
    );
    let mut child = f
        .command()
        .args([&lake[0], &lake[1], "run", &slow, "--param", &format!("out={}", display(&out))])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let staged = |dir: &Path| {
        std::fs::read_dir(dir)
            .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with(".cxlake-staging-big.")))
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !staged(&f.path("out")) {
        assert!(Instant::now() < deadline, "the job never staged its output");
        assert!(child.try_wait().unwrap().is_none(), "the job ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!out.exists(), "a killed job committed nothing");
    assert!(staged(&f.path("out")), "its staging directory is left behind");

    // The next run succeeds, removes the dead run's staging directory and writes exactly its own output.
    let small = write_job(
        &f,
        "small.sql",
        "COPY (SELECT v, v * 2 AS w FROM generate_series(1, 10) t(v)) TO '${out}/' STORED AS PARQUET;",
    );
    let next = f.run(&[&lake[0], &lake[1], "run", &small, "--param", &format!("out={}", display(&out))]);
    assert_eq!(next.code, Some(0), "{next:#?}");
    assert!(!staged(&f.path("out")), "stale staging removed");
    let sum =
        f.run(&["--table", &format!("big={}", display(&out)), "-c", "SELECT count(*) AS n, sum(w) AS s FROM big"]).ok();
    assert_eq!(sum, "n,s\n10,110\n");
}

#[test]
fn memory_limit_spills_a_sort_and_stops_what_cannot_spill() {
    let f = Fixture::new();
    // 3 million BIGINTs (24 MB) sorted within 16 MB: the sort spills to disk and still answers.
    let sorted = f
        .command()
        .args(["--memory-limit", "16M", "-c", "SELECT v FROM generate_series(1, 3000000) t(v) ORDER BY v DESC"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(sorted.status.success(), "{}", String::from_utf8_lossy(&sorted.stderr));
    let text = String::from_utf8(sorted.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!((lines.len(), lines[1], lines[lines.len() - 1]), (3_000_001, "3000000", "1"));
    // An aggregate that holds its whole input cannot spill: 1 MB is not enough, and the error says so.
    let array = f.run(&[
        "--memory-limit",
        "1M",
        "-c",
        "SELECT cardinality(array_agg(v)) FROM generate_series(1, 2000000) t(v)",
    ]);
    assert_eq!(array.code, Some(1));
    assert!(array.stderr.contains("Resources exhausted"), "{}", array.stderr);
    // A size that does not parse is a usage error.
    let bad = f.run(&["--memory-limit", "4X", "-c", "SELECT 1"]);
    assert_eq!(bad.code, Some(2));
    assert!(bad.stderr.contains("invalid size '4X': use a number with K, M, G or T"), "{}", bad.stderr);
}

#[test]
fn the_sample_nightly_job_matches_the_same_kpis_queried_directly() {
    let f = Fixture::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sample = display(&root.join("sample-data/lake"));
    let job = display(&root.join("sample-data/jobs/daily_kpis.sql"));
    let out = display(&f.path("kpis"));
    let sample_run = |args: &[&str]| {
        let output = f.command().env("CXLAKE_SAMPLE_LAKE", &sample).args(args).stdin(Stdio::null()).output().unwrap();
        common::Run::from(output)
    };
    for day in ["2025-03-01", "2025-03-02"] {
        let run = sample_run(&["run", &job, "--param", &format!("run_date={day}"), "--param", &format!("out={out}")]);
        assert_eq!(run.code, Some(0), "{run:#?}");
    }
    // What the job wrote, read back from the lake ...
    let written = sample_run(&["--lake", &out, "-c", common::SAMPLE_KPIS_WRITTEN]).ok();
    // ... is what the same KPIs are when queried directly from the sample lake.
    let direct = sample_run(&["-c", common::SAMPLE_KPIS_DIRECT]).ok();
    assert!(written.lines().count() > 2, "{written}");
    assert_eq!(written, direct);
}
