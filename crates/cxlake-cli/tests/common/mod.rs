//! Fixtures shared by the CLI and REPL tests: a small lake of Parquet files written with the
//! engine library itself (not with the binary under test), in a temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// A temporary lake:
///
/// - `lake/responses.parquet`: id, channel, score, answered_at (with NULLs);
/// - `lake/tickets/{a,b}.parquet`: a table spread over two files;
/// - `lake/events/day=YYYY-MM-DD/region=XX/part-0.parquet`: a hive-partitioned table;
/// - `shards/part-{1,2}.parquet` and `shards/extra.parquet`: files for a glob;
/// - `strings.parquet`: text that does not all cast to a number.
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let fixture = Self { dir };
        let statements = [
            (
                "lake/responses.parquet",
                "SELECT * FROM (VALUES \
                   (1, 'app', 9, TIMESTAMP '2025-03-01 09:15:00'), \
                   (2, NULL, 6, TIMESTAMP '2025-03-01 17:40:30'), \
                   (3, 'web', NULL, NULL)) t(id, channel, score, answered_at)",
            ),
            ("lake/tickets/a.parquet", "SELECT * FROM (VALUES (101, 'open'), (102, 'closed')) t(ticket_id, status)"),
            ("lake/tickets/b.parquet", "SELECT * FROM (VALUES (103, 'open')) t(ticket_id, status)"),
            ("lake/events/day=2025-03-01/region=EU/part-0.parquet", "SELECT * FROM (VALUES (1), (2)) t(user_id)"),
            ("lake/events/day=2025-03-01/region=US/part-0.parquet", "SELECT * FROM (VALUES (3)) t(user_id)"),
            ("lake/events/day=2025-03-02/region=EU/part-0.parquet", "SELECT * FROM (VALUES (4), (5), (6)) t(user_id)"),
            ("shards/part-1.parquet", "SELECT 1 AS shard"),
            ("shards/part-2.parquet", "SELECT 2 AS shard"),
            ("shards/extra.parquet", "SELECT 99 AS shard"),
            ("strings.parquet", "SELECT * FROM (VALUES ('1'), ('2'), ('x')) t(v)"),
        ];
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let lake = cxlake::Lake::new().expect("lake");
            for (path, query) in statements {
                let target = fixture.path(path);
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                let copy = format!("COPY ({query}) TO '{}' STORED AS PARQUET", target.display());
                lake.execute(&copy).await.unwrap_or_else(|e| panic!("{copy}: {e}"));
            }
        });
        fixture
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `--lake` over the fixture lake.
    pub fn lake_args(&self) -> Vec<String> {
        vec!["--lake".to_string(), self.path("lake").display().to_string()]
    }

    /// The `cxlake` binary with the sample lake pointed at the fixture lake, so that runs without
    /// --table/--lake are the same in every checkout.
    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cxlake"));
        command.env("CXLAKE_SAMPLE_LAKE", self.path("lake")).env("CXLAKE_HISTORY", self.path("history"));
        command
    }

    /// Runs `cxlake` with `args` and no standard input.
    pub fn run(&self, args: &[&str]) -> Run {
        let output = self.command().args(args).stdin(Stdio::null()).output().expect("run cxlake");
        Run::from(output)
    }
}

/// What a run of the binary printed, and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(output.stderr).expect("utf-8 stderr"),
        }
    }
}

impl Run {
    /// Asserts a successful run and returns its standard output.
    pub fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "cxlake failed: {self:#?}");
        self.stdout
    }
}

pub fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Every file under `dir`, relative, sorted (staging directories' files included).
pub fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The KPIs the sample nightly job (`sample-data/jobs/daily_kpis.sql`) writes, read back from its
/// output lake (tables `survey_kpis` and `ticket_kpis`).
pub const SAMPLE_KPIS_WRITTEN: &str =
    "SELECT s.day, s.channel, s.answers, round(s.nps, 6) AS nps, round(s.csat, 6) AS csat, t.tickets, \
            round(t.first_response_seconds, 3) AS frt \
     FROM survey_kpis s JOIN ticket_kpis t ON s.day = t.day AND s.channel = t.channel ORDER BY 1, 2";

/// The same KPIs for 2025-03-01 and 2025-03-02, queried directly from the sample lake.
pub const SAMPLE_KPIS_DIRECT: &str =
    "SELECT s.day, s.channel, s.answers, round(s.nps, 6) AS nps, round(s.csat, 6) AS csat, t.tickets, \
            round(t.frt, 3) AS frt \
     FROM (SELECT CAST(responded_at AS DATE) AS day, channel, count(*) AS answers, nps(score) AS nps, \
                  csat(satisfaction) AS csat FROM surveys GROUP BY 1, 2) s \
     JOIN (SELECT CAST(created_at AS DATE) AS day, channel, count(*) AS tickets, \
                  first_response_time(created_at, first_response_at) AS frt FROM tickets GROUP BY 1, 2) t \
       ON s.day = t.day AND s.channel = t.channel \
     WHERE s.day IN (DATE '2025-03-01', DATE '2025-03-02') ORDER BY 1, 2";
