//! `cxlake`: the command line over the cxlake engine library. SQL scripts from `-c`, `-f` or
//! standard input, or an interactive REPL on a terminal.
//!
//! This file only parses arguments and picks the mode: [`exec`] runs statements and prints their
//! results, [`repl`] is the interactive loop, [`command`] its backslash commands, [`helper`] the
//! line editor's completion and multi-line input, [`progress`] the spinner for slow queries, and
//! [`cluster`] the `cxlake cluster` nodes.

mod cluster;
mod command;
mod exec;
mod helper;
mod job;
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

`cxlake run JOB.sql --param run_date=2025-03-01` runs a batch job: the file's statements with every
${name} replaced by its --param value (a missing or unknown parameter stops the job before anything
runs, exit status 2), one log line per statement on standard error (--log-format json for
schedulers), and `COPY ... TO` and `INSERT INTO` output committed only when the statement succeeds
(on local disk and on object stores).

The REPL keeps its history in $CXLAKE_HISTORY, or ~/.cxlake_history when it is not set.
Type \\? at the prompt for its commands.";

/// SQL with customer-experience metrics (nps, csat, ces, ...) over Parquet lakes.
#[derive(Debug, Parser)]
#[command(name = "cxlake", version, after_help = AFTER_HELP)]
struct Args {
    #[command(subcommand)]
    job: Option<JobCommand>,

    /// Run SQL statements (`;`-separated); may be repeated
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    commands: Vec<String>,

    /// Run the statements of a file (`-` reads standard input); may be repeated
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    files: Vec<PathBuf>,

    /// Register a table over a Parquet file, a directory of Parquet files (`key=value`
    /// subdirectories become partition columns) or a glob; may be repeated
    #[arg(long = "table", value_name = "NAME=LOCATION", value_parser = parse_table, global = true)]
    tables: Vec<(String, String)>,

    /// Register every Parquet file and directory directly under DIR as a table named after it;
    /// may be repeated
    #[arg(long = "lake", value_name = "DIR", global = true)]
    lakes: Vec<String>,

    /// Output format: table, csv, tsv, json or ndjson [default: table when standard output is a
    /// terminal, csv otherwise]
    #[arg(long, value_name = "FORMAT", value_parser = parse_format, global = true)]
    format: Option<OutputFormat>,

    /// Number of partitions queries run in [default: the number of cores]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), global = true)]
    target_partitions: Option<u32>,

    /// Rows per record batch [default: 8192]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), global = true)]
    batch_size: Option<u32>,

    /// No banner at the REPL's start, and no row count and timing lines
    #[arg(short, long, global = true)]
    quiet: bool,

    /// Run every query on a cxlake cluster: the scheduler's address, df://HOST:PORT (see
    /// `cxlake cluster --help`). Local tables must be at the same paths on every executor; object
    /// stores are reached with each node's own credentials
    #[arg(long, value_name = "URL", global = true)]
    cluster: Option<String>,

    /// Bound the memory queries use (for example 4G or 512M); sorts, joins and aggregations that
    /// need more spill to the temporary directory
    #[arg(long, value_name = "SIZE", value_parser = parse_memory_limit, global = true)]
    memory_limit: Option<usize>,

    /// An object-store option for every s3://, gs:// and az:// location, over the cloud's
    /// environment variables (for example aws.endpoint=http://127.0.0.1:9000 or aws.region=eu-west-1);
    /// may be repeated. Prefer the environment for credentials: command lines are visible to
    /// other users of the machine
    #[arg(long = "store-option", value_name = "KEY=VALUE", value_parser = parse_store_option, global = true)]
    store_options: Vec<(String, String)>,
}

#[derive(Debug, clap::Subcommand)]
enum JobCommand {
    /// Run a batch job: a file of statements with ${name} parameters
    Run {
        /// The job's SQL file
        #[arg(value_name = "JOB.sql")]
        file: PathBuf,

        /// A parameter value: ${NAME} in the job becomes VALUE; may be repeated
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,

        /// Log lines on standard error: text, or json (one object per statement)
        #[arg(long, value_name = "FORMAT", value_enum, default_value_t = job::LogFormat::Text)]
        log_format: job::LogFormat,

        /// Print each data statement's plan instead of running it (settings, views and external
        /// tables still run, so later statements can be planned); nothing is written
        #[arg(long)]
        dry_run: bool,
    },
    /// Run a node of a cxlake cluster: a scheduler, or an executor that serves one
    Cluster {
        #[command(subcommand)]
        role: cluster::Role,
    },
}

fn parse_param(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, v)) if !name.trim().is_empty() => Ok((name.trim().to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE (for example run_date=2025-03-01), got '{value}'")),
    }
}

fn parse_store_option(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, v)) if cxlake::stores::is_store_option(key.trim()) => Ok((key.trim().to_string(), v.to_string())),
        _ => Err(format!(
            "expected KEY=VALUE with a key starting with aws., gcp. or azure. (for example \
             aws.endpoint=http://127.0.0.1:9000), got '{value}'"
        )),
    }
}

fn parse_memory_limit(value: &str) -> Result<usize, String> {
    cxlake::job::parse_size(value).map_err(|e| e.message().to_string())
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
    if let Some(bytes) = args.memory_limit {
        builder = builder.memory_limit(bytes);
    }
    for (key, value) in &args.store_options {
        builder = builder.store_option(key, value);
    }
    let lake = match &args.cluster {
        Some(url) => cxlake_cluster::connect(builder, url).await?,
        None => builder.build().await?,
    };
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
    cxlake::allocator::keep_freed_memory();
    let matches = Args::command().get_matches();
    let args = Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let sources = sources_in_order(&matches, &args);
    if let Some(JobCommand::Cluster { role }) = &args.job {
        return cluster::run(role.clone()).await;
    }
    let interactive = sources.is_empty() && args.job.is_none() && std::io::stdin().is_terminal();

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

    if let Some(JobCommand::Run { file, params, log_format, dry_run }) = &args.job {
        if !sources.is_empty() {
            eprintln!("Error: cxlake run takes its statements from the job file, not from -c or -f");
            return ExitCode::from(2);
        }
        let mut values = std::collections::BTreeMap::new();
        for (name, value) in params {
            if values.insert(name.clone(), value.clone()).is_some() {
                eprintln!("Error: --param {name} is given twice");
                return ExitCode::from(2);
            }
        }
        let options = job::JobOptions { file, params: values, log_format: *log_format, dry_run: *dry_run };
        return job::run(&session, options).await;
    }
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
