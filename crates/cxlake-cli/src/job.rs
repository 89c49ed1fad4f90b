//! `cxlake run JOB.sql`: a batch job's statements with `${name}` parameters, one log line per
//! statement on standard error (text, or JSON for schedulers), exit status 0 or 1.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use cxlake::datafusion::sql::parser::Statement as DFStatement;
use cxlake::datafusion::sql::sqlparser::ast::Statement as SqlStatement;
use cxlake::statements::script_statements;
use cxlake::{job, DataFusionError, StatementOutput};

use crate::exec::{Ran, Session};
use crate::progress::Step;

/// How job progress is logged on standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub struct JobOptions<'a> {
    pub file: &'a Path,
    pub params: BTreeMap<String, String>,
    pub log_format: LogFormat,
    pub dry_run: bool,
}

/// One finished statement, as logged.
struct Entry<'a> {
    index: usize,
    of: usize,
    sql: &'a str,
    status: &'a str,
    rows: Option<usize>,
    output: Option<&'a StatementOutput>,
    seconds: f64,
    error: Option<String>,
}

/// The statement as one short line for the log, without its leading `--` comments.
fn first_line(sql: &str) -> String {
    let code: Vec<&str> = sql.lines().skip_while(|l| l.trim().is_empty() || l.trim_start().starts_with("--")).collect();
    let line = code.join(" ").split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 72 {
        format!("{}…", line.chars().take(71).collect::<String>())
    } else {
        line
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn log(format: LogFormat, e: &Entry) {
    let written = e.output.and_then(|o| o.written);
    match format {
        LogFormat::Json => {
            let mut line = format!(
                "{{\"statement\":{},\"of\":{},\"status\":{},\"sql\":{},\"seconds\":{:.3}",
                e.index,
                e.of,
                json_string(e.status),
                json_string(&first_line(e.sql)),
                e.seconds
            );
            if let Some(rows) = e.rows {
                line.push_str(&format!(",\"rows\":{rows}"));
            }
            if let Some(w) = written {
                line.push_str(&format!(",\"files_written\":{},\"bytes_written\":{}", w.files, w.bytes));
            }
            if let Some(error) = &e.error {
                line.push_str(&format!(",\"error\":{}", json_string(error)));
            }
            line.push('}');
            eprintln!("{line}");
        }
        LogFormat::Text => {
            let mut line = format!("[{}/{}] {}: {}", e.index, e.of, e.status, first_line(e.sql));
            if let Some(rows) = e.rows {
                line.push_str(&format!(" — {rows} row{}", if rows == 1 { "" } else { "s" }));
            }
            if let Some(w) = written {
                line.push_str(&format!(
                    ", {} bytes in {} file{} written",
                    w.bytes,
                    w.files,
                    if w.files == 1 { "" } else { "s" }
                ));
            }
            line.push_str(&format!(", {:.3} s", e.seconds));
            if let Some(error) = &e.error {
                line.push_str(&format!("\n  {error}"));
            }
            eprintln!("{line}");
        }
    }
}

/// Whether the output is the single `count` column `COPY` and `INSERT` return.
fn is_count(output: &StatementOutput) -> bool {
    output.schema.fields().len() == 1 && output.schema.field(0).name() == "count"
}

/// The rows a statement reports: a query's rows, or the count `COPY` and `INSERT` return.
fn reported_rows(output: &StatementOutput) -> Option<usize> {
    if !output.has_rows() {
        return None;
    }
    if is_count(output) && output.row_count() == 1 {
        let column = output.batches.iter().find(|b| b.num_rows() == 1)?.column(0);
        let count = cxlake::arrow::compute::cast(column, &cxlake::arrow::datatypes::DataType::UInt64).ok()?;
        return count.as_any().downcast_ref::<cxlake::arrow::array::UInt64Array>().map(|a| a.value(0) as usize);
    }
    Some(output.row_count())
}

/// Whether a dry run plans the statement (it reads or writes data) rather than running it
/// (settings, views and external tables, which later statements may need and which write nothing).
fn plans_only(session: &Session, sql: &str) -> bool {
    let state = session.lake.context().state();
    let dialect = state.config().options().sql_parser.dialect;
    match state.sql_to_statement(sql, &dialect) {
        Ok(DFStatement::CopyTo(_)) => true,
        Ok(DFStatement::Statement(s)) => {
            matches!(*s, SqlStatement::Query(_) | SqlStatement::Insert(_) | SqlStatement::CreateTable(_))
        }
        _ => false,
    }
}

pub async fn run(session: &Session, options: JobOptions<'_>) -> ExitCode {
    let text = match std::fs::read_to_string(options.file) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("Error: cannot read the job {}: {e}", options.file.display());
            return ExitCode::from(2);
        }
    };
    // Parameters are checked before anything runs.
    let text = match job::substitute(&text, &options.params) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("Error: {}: {}", options.file.display(), e.message());
            return ExitCode::from(2);
        }
    };
    let statements = script_statements(&text);
    let of = statements.len();
    for (i, sql) in statements.iter().enumerate() {
        let start = Instant::now();
        let dry = options.dry_run && plans_only(session, sql);
        let to_run = if dry { format!("EXPLAIN {sql}") } else { sql.clone() };
        let result: Result<Option<StatementOutput>, DataFusionError> =
            session.execute_step(&to_run, false, Some(Step { index: i + 1, of })).await;
        let seconds = start.elapsed().as_secs_f64();
        // The log shows statements with credentials (in OPTIONS) masked.
        let shown = session.lake.redact(sql);
        let sql = &shown;
        match result {
            Ok(Some(output)) => {
                let rows = if dry { None } else { reported_rows(&output) };
                let status = if dry { "planned" } else { "ok" };
                // Query results go to standard output; the counts of COPY and INSERT only to the log.
                if dry || !is_count(&output) {
                    if let Ok(Ran::OutputClosed) = session.print(&output, None) {
                        return ExitCode::SUCCESS;
                    }
                }
                let entry = Entry { index: i + 1, of, sql, status, rows, output: Some(&output), seconds, error: None };
                log(options.log_format, &entry);
            }
            Ok(None) => {}
            Err(e) => {
                let entry = Entry {
                    index: i + 1,
                    of,
                    sql,
                    status: "failed",
                    rows: None,
                    output: None,
                    seconds,
                    error: Some(e.to_string()),
                };
                log(options.log_format, &entry);
                if options.log_format == LogFormat::Text {
                    eprintln!("Error: {e}");
                }
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
