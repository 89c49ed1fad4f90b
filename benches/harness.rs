//! What every cxlake benchmark shares: command-line options, interleaved timing of queries that
//! answer the same question, and the Markdown table of medians and ratios.

use std::time::{Duration, Instant};

use cxlake::Lake;

pub struct Options {
    pub rows: usize,
    pub partitions: usize,
    pub runs: usize,
}

pub fn parse_options() -> Options {
    let mut options =
        Options { rows: 10_000_000, partitions: std::thread::available_parallelism().map_or(1, |n| n.get()), runs: 7 };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || args.get(i + 1).and_then(|v| v.replace('_', "").parse::<usize>().ok());
        match args[i].as_str() {
            "--rows" => options.rows = value().expect("--rows N"),
            "--partitions" => options.partitions = value().expect("--partitions N"),
            "--runs" => options.runs = value().expect("--runs N"),
            // `cargo bench` passes --bench; anything else is a mistake worth reporting.
            "--bench" => {
                i += 1;
                continue;
            }
            other => panic!("unknown argument {other}: use --rows N, --partitions N, --runs N"),
        }
        i += 2;
    }
    options
}

/// Queries that answer the same question in different ways; the first is cxlake's.
pub struct Case {
    pub metric: &'static str,
    pub keys: &'static str,
    pub queries: Vec<(&'static str, String)>,
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Times every case (one warm-up round, then `runs` rounds with the queries interleaved) and
/// prints a Markdown table with each query's median and its ratio to cxlake's.
pub async fn run_cases(lake: &Lake, options: &Options, cases: &[Case]) -> cxlake::Result<()> {
    let names: Vec<&str> = cases[0].queries.iter().map(|(name, _)| *name).collect();
    println!("{} rows, {} partitions, median of {} interleaved runs\n", options.rows, options.partitions, options.runs);
    let mut header = "| metric | GROUP BY |".to_string();
    for name in &names {
        header.push_str(&format!(" {name} ms |"));
    }
    for name in &names[1..] {
        header.push_str(&format!(" {} / {name} |", names[0]));
    }
    println!("{header}");
    println!("|---|---|{}", "---:|".repeat(names.len() * 2 - 1));
    for case in cases {
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); case.queries.len()];
        for round in 0..=options.runs {
            for (i, (_, sql)) in case.queries.iter().enumerate() {
                let start = Instant::now();
                let batches = lake.query(sql).await?;
                let elapsed = start.elapsed();
                assert!(!batches.is_empty(), "{sql} returned nothing");
                if round > 0 {
                    times[i].push(elapsed);
                }
            }
        }
        let ms: Vec<f64> = times.into_iter().map(|t| median(t).as_secs_f64() * 1e3).collect();
        let mut line = format!("| {} | {} |", case.metric, if case.keys.is_empty() { "—" } else { case.keys });
        for m in &ms {
            line.push_str(&format!(" {m:.1} |"));
        }
        for m in &ms[1..] {
            line.push_str(&format!(" {:.2} |", ms[0] / m));
        }
        println!("{line}");
    }
    Ok(())
}
