//! `cxlake run` against a real S3 server (s3s-fs, started by the test): the sample nightly KPI job
//! reading the sample lake from one bucket and writing its KPIs partitioned by day into another,
//! with credentials from the standard AWS environment variables; and a job killed with SIGKILL
//! while uploading, after which the target is untouched and the next run writes exactly its own
//! output. s3s-fs keeps a bucket as a directory, so seeding a lake is a copy and the tests can see
//! what was written.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{display, files, Fixture, Run};
use cxlake_tests::servers::{copy_dir, S3Kind, Server, S3_ACCESS_KEY, S3_SECRET_KEY};

/// `cxlake` with the AWS environment pointing at `server`, as a user's scheduler would set it.
fn cxlake(f: &Fixture, server: &Server) -> Command {
    let mut command = f.command();
    command
        .env("AWS_ENDPOINT_URL", server.endpoint())
        .env("AWS_ACCESS_KEY_ID", S3_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ALLOW_HTTP", "true")
        .stdin(Stdio::null());
    command
}

fn run(f: &Fixture, server: &Server, args: &[&str]) -> Run {
    Run::from(cxlake(f, server).args(args).output().expect("run cxlake"))
}

#[test]
fn the_sample_nightly_job_runs_against_s3() {
    let f = Fixture::new();
    let server = Server::s3(S3Kind::S3sFs, &["lake", "warehouse"]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    copy_dir(&root.join("sample-data/lake"), &server.data.path().join("lake"));
    let job = display(&root.join("sample-data/jobs/daily_kpis.sql"));

    for day in ["2025-03-01", "2025-03-02", "2025-03-02"] {
        let params = [format!("run_date={day}"), "out=s3://warehouse/kpis".to_string()];
        let job_run =
            run(&f, &server, &["--lake", "s3://lake/", "run", &job, "--param", &params[0], "--param", &params[1]]);
        assert_eq!(job_run.code, Some(0), "{job_run:#?}");
        assert!(job_run.stderr.contains("[4/4] ok: COPY"), "{}", job_run.stderr);
        assert!(!job_run.stderr.contains(S3_SECRET_KEY), "{}", job_run.stderr);
    }
    // Two days, one run's files each (the second day ran twice), each table with its marker.
    let written = files(&server.data.path().join("warehouse"));
    let parquet = |table: &str, day: &str| {
        written.iter().filter(|p| p.starts_with(&format!("kpis/{table}/day={day}/")) && p.ends_with(".parquet")).count()
    };
    for table in ["survey_kpis", "ticket_kpis"] {
        assert_eq!((parquet(table, "2025-03-01"), parquet(table, "2025-03-02")), (1, 1), "{written:#?}");
        assert!(written.contains(&format!("kpis/{table}/_SUCCESS")), "{written:#?}");
    }
    assert!(written.iter().all(|p| !p.contains(".cxlake-staging")), "{written:#?}");

    let read_back = run(&f, &server, &["--lake", "s3://warehouse/kpis/", "-c", common::SAMPLE_KPIS_WRITTEN]).ok();
    // The same KPIs queried directly from the sample lake on local disk.
    let direct = Run::from(
        f.command()
            .env("CXLAKE_SAMPLE_LAKE", root.join("sample-data/lake"))
            .args(["-c", common::SAMPLE_KPIS_DIRECT])
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    )
    .ok();
    assert!(read_back.lines().count() > 2, "{read_back}");
    assert_eq!(read_back, direct);
}

#[test]
fn a_job_killed_while_uploading_leaves_s3_untouched_and_the_next_run_succeeds() {
    let f = Fixture::new();
    let server = Server::s3(S3Kind::S3sFs, &["warehouse"]);
    let write = |rows: u64, name: &str| {
        let path = f.path(name);
        std::fs::write(
            &path,
            format!(
                "COPY (SELECT v, v * 2 AS w FROM generate_series(1, {rows}) t(v)) TO 's3://warehouse/big/' STORED AS PARQUET;"
            ),
        )
        .unwrap();
        display(&path)
    };
    let slow = write(40_000_000, "slow.sql");
    let mut child =
        cxlake(&f, &server).args(["run", &slow]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !server.uploads_in_progress("warehouse") {
        assert!(Instant::now() < deadline, "the job never started uploading");
        assert!(child.try_wait().unwrap().is_none(), "the job ended before it could be killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let bucket = server.data.path().join("warehouse");
    assert!(files(&bucket).iter().all(|p| !p.starts_with("big/")), "{:#?}", files(&bucket));

    let small = write(10, "small.sql");
    let next = run(&f, &server, &["run", &small]);
    assert_eq!(next.code, Some(0), "{next:#?}");
    let sum =
        run(&f, &server, &["--table", "big=s3://warehouse/big/", "-c", "SELECT count(*) AS n, sum(w) AS s FROM big"]);
    assert_eq!(sum.ok(), "n,s\n10,110\n");
    assert!(files(&bucket).iter().all(|p| !p.contains(".cxlake-staging")), "{:#?}", files(&bucket));
}

#[test]
fn unknown_buckets_and_refused_credentials_are_clear_errors() {
    let f = Fixture::new();
    let server = Server::s3(S3Kind::S3sFs, &["lake"]);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    copy_dir(&root.join("sample-data/lake"), &server.data.path().join("lake"));

    let missing = run(&f, &server, &["--table", "s=s3://nope/surveys/", "-c", "SELECT 1"]);
    assert_eq!(missing.code, Some(1), "{missing:#?}");
    assert!(missing.stderr.contains("s3://nope/surveys/") && missing.stderr.contains("does not exist"), "{missing:#?}");

    let wrong = "wrong-secret-3b9e27aa";
    let refused = Run::from(
        cxlake(&f, &server)
            .env("AWS_SECRET_ACCESS_KEY", wrong)
            .args(["--lake", "s3://lake/", "-c", "SELECT count(*) FROM surveys"])
            .output()
            .unwrap(),
    );
    assert_eq!(refused.code, Some(1), "{refused:#?}");
    assert!(refused.stderr.contains("credentials were refused"), "{refused:#?}");
    assert!(!refused.stderr.contains(wrong) && !refused.stderr.contains(S3_SECRET_KEY), "{refused:#?}");

    // Session options on the command line; a key no store knows is a usage error.
    let bad = run(&f, &server, &["--store-option", "endpoint=http://x", "-c", "SELECT 1"]);
    assert_eq!(bad.code, Some(2), "{bad:#?}");
    assert!(bad.stderr.contains("a key starting with aws., gcp. or azure."), "{}", bad.stderr);
}
