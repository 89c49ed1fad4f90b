//! `cxlake`: the command line over the cxlake engine library. SQL scripts from `-c`, `-f` or
//! standard input, or an interactive REPL on a terminal.
//!
//! This file only parses arguments and picks the mode: [`exec`] runs statements and prints their
//! results, [`repl`] is the interactive loop, [`command`] its backslash commands, [`helper`] the
//! line editor's completion and multi-line input, and [`progress`] the spinner for slow queries.

mod command;
mod exec;
mod helper;
mod progress;
mod repl;

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use cxlake::{Lake, OutputFormat};

use crate::exec::{PrintOptions, Session};

const AFTER_HELP: &str = "\
With no -c or -f, cxlake opens an interactive SQL prompt when standard input is a terminal, and
otherwise runs the statements read from standard input as a script (`echo 'SELECT 1;' | cxlake`).

-c and -f run in the order they are given on the command line, in one session, so a SET or CREATE
in one applies to the next. Statements are separated by `;`. Each query's result is printed; SET,
CREATE and other statements without result columns print nothing.

When neither --table nor --lake is given, the built-in sample lake (surveys, tickets, ...) is
registered; set CXLAKE_SAMPLE_LAKE to use another copy of it.

Settings work in every mode: SET cxlake.invalid_input = 'skip' ignores out-of-range answers instead
of failing the query, and every SET datafusion.* option is accepted.

Exit status: 0 when every statement succeeded; 1 at the first failing statement (cxlake stops there,
prints `Error: <message>` on stderr and none of that statement's rows); 2 for usage errors.

The REPL keeps its history in $CXLAKE_HISTORY, or ~/.cxlake_history when it is not set.
Type \\? at the prompt for its commands.";

/// SQL with customer-experience metrics (nps, csat, ces, ...) over Parquet lakes.
#[derive(Debug, Parser)]
#[command(name = "cxlake", version, after_help = AFTER_HELP)]
struct Args {
    /// Run SQL statements (`;`-separated); may be repeated
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    commands: Vec<String>,

    /// Run the statements of a file (`-` reads standard input); may be repeated
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    files: Vec<PathBuf>,

    /// Register a table over a Parquet file, a directory of Parquet files (`key=value`
    /// subdirectories become partition columns) or a glob; may be repeated
    #[arg(long = "table", value_name = "NAME=LOCATION", value_parser = parse_table)]
    tables: Vec<(String, String)>,

    /// Register every Parquet file and directory directly under DIR as a table named after it;
    /// may be repeated
    #[arg(long = "lake", value_name = "DIR")]
    lakes: Vec<String>,

    /// Output format: table, csv, tsv, json or ndjson [default: table when standard output is a
    /// terminal, csv otherwise]
    #[arg(long, value_name = "FORMAT", value_parser = parse_format)]
    format: Option<OutputFormat>,

    /// Number of partitions queries run in [default: the number of cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    target_partitions: Option<u32>,

    /// Rows per record batch [default: 8192]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    batch_size: Option<u32>,

    /// No banner at the REPL's start, and no row count and timing lines
    #[arg(short, long)]
    quiet: bool,
}

fn parse_table(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, location)) if !name.trim().is_empty() && !location.trim().is_empty() => {
            Ok((name.trim().to_string(), location.trim().to_string()))
        }
        _ => Err(format!("expected NAME=LOCATION (for example surveys=data/surveys/), got '{value}'")),
    }
}

fn parse_format(value: &str) -> Result<OutputFormat, String> {
    value.parse::<OutputFormat>().map_err(|_| format!("use one of {}", OutputFormat::NAMES.join(", ")))
}

/// Where the statements of a script come from.
enum Source {
    Command(String),
    File(PathBuf),
}

impl Source {
    fn read(&self) -> Result<String, String> {
        match self {
            Source::Command(sql) => Ok(sql.clone()),
            Source::File(path) if path.as_os_str() == "-" => read_stdin(),
            Source::File(path) => {
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
            }
        }
    }
}

fn read_stdin() -> Result<String, String> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read standard input: {e}"))?;
    Ok(text)
}

/// The -c and -f values in the order they were given.
fn sources_in_order(matches: &ArgMatches, args: &Args) -> Vec<Source> {
    let mut sources: Vec<(usize, Source)> = Vec::new();
    if let Some(indices) = matches.indices_of("commands") {
        sources.extend(indices.zip(&args.commands).map(|(i, c)| (i, Source::Command(c.clone()))));
    }
    if let Some(indices) = matches.indices_of("files") {
        sources.extend(indices.zip(&args.files).map(|(i, f)| (i, Source::File(f.clone()))));
    }
    sources.sort_by_key(|(i, _)| *i);
    sources.into_iter().map(|(_, source)| source).collect()
}

async fn build_lake(args: &Args) -> cxlake::Result<(Lake, Option<String>)> {
    let mut builder = Lake::builder();
    for (name, location) in &args.tables {
        builder = builder.table(name, location);
    }
    for dir in &args.lakes {
        builder = builder.lake_dir(dir);
    }
    if let Some(n) = args.target_partitions {
        builder = builder.target_partitions(n as usize);
    }
    if let Some(n) = args.batch_size {
        builder = builder.batch_size(n as usize);
    }
    let lake = builder.build().await?;
    // The sample lake is a convenience: when it is missing, say so and go on with no tables,
    // so that a script that needs no tables still runs.
    let mut warning = None;
    if args.tables.is_empty() && args.lakes.is_empty() {
        if let Err(e) = lake.register_sample_lake().await {
            warning = Some(format!("the sample lake is not available ({}); no tables are registered", e.message()));
        }
    }
    Ok((lake, warning))
}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let sources = sources_in_order(&matches, &args);
    let interactive = sources.is_empty() && std::io::stdin().is_terminal();

    let (lake, warning) = match build_lake(&args).await {
        Ok(built) => built,
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let (Some(warning), false) = (&warning, args.quiet) {
        eprintln!("Warning: {warning}");
    }

    let format =
        args.format.unwrap_or(if std::io::stdout().is_terminal() { OutputFormat::Table } else { OutputFormat::Csv });
    let options = PrintOptions { format, timing: !args.quiet, interactive };
    let mut session = Session::new(lake, options);

    if interactive {
        return repl::run(&mut session, args.quiet).await;
    }
    let sources = if sources.is_empty() { vec![Source::File(PathBuf::from("-"))] } else { sources };
    for source in &sources {
        let text = match source.read() {
            Ok(text) => text,
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::FAILURE;
            }
        };
        match session.run_script(&text).await {
            Ok(exec::Flow::Continue) => {}
            Ok(exec::Flow::Stop) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
