//! `bench_lake`: writes the benchmark lake that `benches/peers/run.py` times every engine on.
//!
//! ```sh
//! cargo run --release -p cxlake-benches --bin bench_lake -- --scale 1 --out /data/cxlake-bench/scale-1
//! ```
//!
//! At scale 1: 100 million survey answers, 20 million tickets, 10 million customers and 50 million
//! clickstream events. Surveys, tickets and events are hive-partitioned by day over 90 days
//! (`surveys/day=2025-01-01/part-0.parquet`); customers are ten files of one million rows. Row
//! groups hold up to one million rows (DataFusion's and Spark's default), pages are
//! dictionary-encoded where the writer chooses to, and columns are Snappy-compressed, as most lakes
//! written by Spark or DataFusion are. Events are sorted by `(user_id, ts)` within each file and
//! say so in the footer (`sorting_columns`); surveys and tickets are in time order.
//!
//! Each (table, day) is generated from its own seeded stream, so the output does not depend on the
//! number of threads, and the same scale always gives the same rows. `_manifest.json` records the
//! scale, seed and row counts; the runner checks it.

mod tables;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tables::{Job, Table, DAYS};

/// Everything derives from this seed.
const SEED: u64 = 0xC71A_BE7C_2026_1124;

/// Rows of each table at scale 1.
const SURVEYS: f64 = 100e6;
const TICKETS: f64 = 20e6;
const CUSTOMERS: f64 = 10e6;
const EVENTS: f64 = 50e6;
/// Clickstream users at scale 1: about ten events each over the 90 days.
const USERS: f64 = 5e6;

struct Options {
    scale: f64,
    out: PathBuf,
    threads: usize,
}

const USAGE: &str = "usage: bench_lake --scale S --out DIR [--threads N]
  --scale S    1 = 100M surveys, 20M tickets, 10M customers, 50M events; 0.01 for a quick run
  --out DIR    a new or empty directory, or a lake this program wrote before (it is replaced)
  --threads N  generator threads (default: all cores); the output does not depend on it";

fn parse(args: &[String]) -> Result<Options, String> {
    let mut scale = None;
    let mut out = None;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).ok_or_else(|| format!("{} needs a value", args[i]))?;
        match args[i].as_str() {
            "--scale" => {
                let s: f64 = value.parse().map_err(|_| format!("--scale {value}: not a number"))?;
                if !(s > 0.0 && s <= 100.0) {
                    return Err(format!("--scale {value}: use a number in (0, 100], e.g. 1 or 0.01"));
                }
                scale = Some(s);
            }
            "--out" => out = Some(PathBuf::from(value)),
            "--threads" => {
                threads = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("--threads {value}: use a positive integer"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
        i += 2;
    }
    Ok(Options { scale: scale.ok_or("--scale is required")?, out: out.ok_or("--out is required")?, threads })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("bench_lake: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_lake: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Clears `out` if it is empty or a lake written by this program; refuses anything else, so a
/// mistyped path cannot wipe unrelated files.
fn prepare(out: &Path) -> Result<(), String> {
    if out.exists() {
        let entries: Vec<String> = std::fs::read_dir(out)
            .map_err(|e| format!("{}: {e}", out.display()))?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect();
        let ours = ["_manifest.json", "surveys", "tickets", "customers", "events"];
        if let Some(other) = entries.iter().find(|e| !ours.contains(&e.as_str())) {
            return Err(format!(
                "{} holds {other}, which bench_lake does not write; choose an empty or new directory",
                out.display()
            ));
        }
        std::fs::remove_dir_all(out).map_err(|e| format!("cannot clear {}: {e}", out.display()))?;
    }
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))
}

fn run(options: &Options) -> Result<(), String> {
    prepare(&options.out)?;
    let rows = |n: f64| (n * options.scale).round().max(1.0) as u64;
    let customers = rows(CUSTOMERS);
    let users = rows(USERS);
    const CUSTOMER_FILES: usize = 10;
    let mut jobs = Vec::new();
    for (table, total, parts) in [
        (Table::Surveys, rows(SURVEYS), DAYS),
        (Table::Tickets, rows(TICKETS), DAYS),
        (Table::Events, rows(EVENTS), DAYS),
        (Table::Customers, customers, CUSTOMER_FILES),
    ] {
        let mut first_id = 1;
        for part in 0..parts {
            // The remainder goes to the first parts, so the total is exact.
            let n = total / parts as u64 + u64::from((part as u64) < total % parts as u64);
            jobs.push(Job { table, part, rows: n, first_id, customers, users });
            first_id += n;
        }
    }

    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..options.threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs.len() || failure.lock().unwrap().is_some() {
                    break;
                }
                if let Err(e) = tables::write(&options.out, SEED, &jobs[i]) {
                    *failure.lock().unwrap() = Some(e);
                    break;
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_multiple_of(20) || n == jobs.len() {
                    eprintln!("bench_lake: {n}/{} files, {:.0} s", jobs.len(), started.elapsed().as_secs_f64());
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }

    let total = |t: Table| jobs.iter().filter(|j| j.table == t).map(|j| j.rows).sum::<u64>();
    let manifest = format!(
        "{{\"scale\": {}, \"seed\": {SEED}, \"days\": {DAYS}, \"rows\": {{\"surveys\": {}, \"tickets\": {}, \"customers\": {}, \"events\": {}}}, \"users\": {users}}}\n",
        options.scale,
        total(Table::Surveys),
        total(Table::Tickets),
        total(Table::Customers),
        total(Table::Events),
    );
    std::fs::write(options.out.join("_manifest.json"), &manifest)
        .map_err(|e| format!("cannot write the manifest: {e}"))?;
    println!("wrote {} in {:.0} s: {}", options.out.display(), started.elapsed().as_secs_f64(), manifest.trim());
    Ok(())
}
