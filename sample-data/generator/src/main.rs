//! Deterministic generator of cxlake's built-in sample lake: "Northwind Mobile", a fictional
//! mobile operator selling phone plans, devices and accessories.
//!
//! Usage: `cxlake-sample-gen [OUT_DIR]` (default `sample-data/lake`, relative to the current
//! directory). The lake's previous contents are deleted and rewritten; the output is
//! byte-identical on every run and platform (own PRNG, own `ln`/`exp`, fixed Parquet writer
//! settings). See `sample-data/README.md` for the tables.

mod clickstream;
mod customers;
mod orders;
mod rng;
mod support;
mod surveys;
mod time;
mod write;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use rng::Rng;
use write::Result;

/// The one seed everything derives from (each table family gets its own labelled stream).
const SEED: u64 = 0x4E57_4D42_2025_0630; // "NWMB" 2025-06-30

/// Everything the generator writes into the lake directory.
const OUTPUTS: [&str; 9] = [
    "customers.parquet",
    "subscriptions.parquet",
    "orders.parquet",
    "tickets.parquet",
    "ticket_replies.parquet",
    "qa_reviews.parquet",
    "survey_invitations.parquet",
    "surveys.parquet",
    "clickstream",
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() > 1 || args.first().is_some_and(|a| a.starts_with('-')) {
        eprintln!("usage: cxlake-sample-gen [OUT_DIR]   (default: sample-data/lake)");
        return ExitCode::from(2);
    }
    let out = PathBuf::from(args.first().map_or("sample-data/lake", String::as_str));
    match run(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cxlake-sample-gen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Removes the previous lake. Refuses to touch a directory holding anything the generator does
/// not write, so that a mistyped path cannot wipe unrelated files.
fn clear(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    let mut unknown = Vec::new();
    for entry in fs::read_dir(out)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !OUTPUTS.contains(&name.as_str()) {
            unknown.push(name);
        }
    }
    if !unknown.is_empty() {
        unknown.sort();
        return Err(format!(
            "{} contains files the generator does not write ({}); refusing to delete it",
            out.display(),
            unknown.join(", ")
        )
        .into());
    }
    fs::remove_dir_all(out)?;
    Ok(())
}

fn run(out: &Path) -> Result<()> {
    clear(out)?;
    fs::create_dir_all(out)?;

    let (customers, subs) = customers::generate(&mut Rng::new(SEED, "customers"));
    let (agents, tickets) = support::generate(&mut Rng::new(SEED, "tickets"), &customers);

    customers::write_customers(out, &customers)?;
    customers::write_subscriptions(out, &customers, &subs)?;
    orders::generate_and_write(out, &mut Rng::new(SEED, "orders"), &customers)?;
    support::write_tickets(out, &customers, &tickets)?;
    support::write_replies(out, &tickets)?;
    support::write_qa_reviews(out, &mut Rng::new(SEED, "qa"), &agents, &tickets)?;
    surveys::generate_and_write(out, &mut Rng::new(SEED, "surveys"), &customers, &tickets)?;
    let (_, partitions) = clickstream::generate_and_write(out, &mut Rng::new(SEED, "clickstream"), &customers)?;

    // Read everything back as a self-check and print a summary.
    println!("wrote {}:", out.display());
    let mut total_bytes = 0;
    for name in OUTPUTS {
        let (files, label) = if name == "clickstream" {
            let mut files: Vec<PathBuf> = fs::read_dir(out.join(name))?
                .map(|e| e.map(|e| e.path().join("part-0.parquet")))
                .collect::<std::io::Result<_>>()?;
            files.sort();
            assert_eq!(files.len(), partitions);
            (files, format!("{name}/ ({partitions} day partitions)"))
        } else {
            (vec![out.join(name)], name.to_string())
        };
        let mut rows = 0;
        let mut bytes = 0;
        let mut columns = Vec::new();
        for f in &files {
            let (n, cols) = write::read_back(f)?;
            rows += n;
            bytes += fs::metadata(f)?.len();
            columns = cols;
        }
        total_bytes += bytes;
        println!("  {label:<44} {rows:>7} rows {:>9} bytes", bytes);
        for (col, ty, nullable) in columns {
            let null = if nullable { "  (nullable)" } else { "" };
            println!("      {col:<20} {}{null}", write::type_name(&ty));
        }
    }
    println!("  total {total_bytes} bytes");
    Ok(())
}
