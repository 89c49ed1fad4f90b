//! The REPL's backslash commands: `\d`, `\df`, `\h`, `\timing`, `\format`, `\q` and `\?`.

use std::sync::Arc;

use cxlake::arrow::array::{ArrayRef, StringArray};
use cxlake::arrow::record_batch::RecordBatch;
use cxlake::functions::{cxlake_function, cxlake_functions, FunctionInfo};
use cxlake::{DataFusionError, Lake, OutputFormat, Result, StatementOutput};

use crate::exec::Session;

/// Every command with its arguments and what it does, for `\?` and completion.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("\\d", "", "list tables"),
    ("\\d", "NAME", "describe a table: columns, types, nullability"),
    ("\\df", "[PATTERN]", "list cxlake functions (PATTERN: part of the name, any case)"),
    ("\\h", "NAME", "show a function's documentation"),
    ("\\timing", "[on|off]", "row count and elapsed time after each result (toggle)"),
    ("\\format", "[FORMAT]", "show or set the output format: table, csv, tsv, json, ndjson"),
    ("\\q", "", "quit (Ctrl-D also quits)"),
    ("\\?", "", "this help"),
];

/// What the REPL does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Continue,
    Quit,
}

/// Runs one backslash command line.
pub async fn run(line: &str, session: &mut Session) -> Result<Next> {
    let line = line.trim().trim_end_matches(';').trim_end();
    let (name, argument) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let argument = argument.trim();
    match name {
        "\\q" | "\\quit" => return Ok(Next::Quit),
        "\\?" | "\\help" => print!("{}", help(session)),
        "\\d" if argument.is_empty() => list_tables(session)?,
        "\\d" => describe_table(session, argument).await?,
        "\\df" => list_functions(session, argument)?,
        "\\h" if argument.is_empty() => print!("{}", help(session)),
        "\\h" => println!("{}", function_help(&session.lake, argument)),
        "\\timing" => {
            session.options.timing = match argument.to_ascii_lowercase().as_str() {
                "" => !session.options.timing,
                "on" => true,
                "off" => false,
                other => return Err(usage(format!("\\timing takes on or off, not '{other}'"))),
            };
            println!("Timing is {}.", if session.options.timing { "on" } else { "off" });
        }
        "\\format" if argument.is_empty() => println!("Output format is {}.", session.options.format),
        "\\format" => {
            session.options.format = argument.parse::<OutputFormat>()?;
            println!("Output format is {}.", session.options.format);
        }
        other => return Err(usage(format!("unknown command {other}; type \\? for the list of commands"))),
    }
    Ok(Next::Continue)
}

fn usage(message: String) -> DataFusionError {
    DataFusionError::Plan(message)
}

fn help(session: &Session) -> String {
    let mut out = String::from("Commands:\n");
    for (name, args, what) in COMMANDS {
        out.push_str(&format!("  {:<20} {what}\n", format!("{name} {args}")));
    }
    out.push_str(&format!(
        "\nStatements end with `;` and may span several lines. Tab completes keywords, tables, columns\n\
         and functions. Ctrl-C cancels a running query or clears the line.\n\
         Timing is {}; the output format is {}.\n",
        if session.options.timing { "on" } else { "off" },
        session.options.format
    ));
    out
}

/// Prints rows of text columns in the session's format.
fn print_table(session: &Session, columns: Vec<(&str, Vec<String>)>) -> Result<()> {
    let batch = RecordBatch::try_from_iter(
        columns.into_iter().map(|(name, values)| (name, Arc::new(StringArray::from(values)) as ArrayRef)),
    )?;
    let output = StatementOutput { schema: batch.schema(), batches: vec![batch], written: None };
    session.print(&output, None)?;
    Ok(())
}

fn list_tables(session: &Session) -> Result<()> {
    let names = session.lake.table_names();
    if names.is_empty() {
        println!("No tables. Start cxlake with --table NAME=LOCATION or --lake DIR, or CREATE EXTERNAL TABLE.");
        return Ok(());
    }
    print_table(session, vec![("table", names)])
}

async fn describe_table(session: &Session, name: &str) -> Result<()> {
    let schema = session.lake.table_schema(name).await.map_err(|_| {
        let tables = session.lake.table_names();
        usage(format!(
            "no table named '{name}'{}",
            suggestion(name, &tables).map(|s| format!("; did you mean {s}?")).unwrap_or_default()
        ))
    })?;
    let fields = schema.fields();
    print_table(
        session,
        vec![
            ("column", fields.iter().map(|f| f.name().clone()).collect()),
            ("type", fields.iter().map(|f| f.data_type().to_string()).collect()),
            ("nullable", fields.iter().map(|f| if f.is_nullable() { "YES" } else { "NO" }.to_string()).collect()),
        ],
    )
}

fn list_functions(session: &Session, pattern: &str) -> Result<()> {
    let pattern = pattern.to_lowercase();
    let functions: Vec<FunctionInfo> =
        cxlake_functions().into_iter().filter(|f| f.name.to_lowercase().contains(&pattern)).collect();
    if functions.is_empty() {
        println!("No cxlake function matches '{pattern}'.");
        return Ok(());
    }
    print_table(
        session,
        vec![
            ("function", functions.iter().map(|f| f.name.clone()).collect()),
            ("kind", functions.iter().map(|f| f.kind.to_string()).collect()),
            ("description", functions.iter().map(FunctionInfo::summary).collect()),
        ],
    )
}

/// The documentation of a cxlake function or a DataFusion built-in, or a message naming the
/// functions closest to `name`.
pub fn function_help(lake: &Lake, name: &str) -> String {
    let name = name.trim().trim_end_matches("()");
    if let Some(info) = cxlake_function(name) {
        return info.help_text();
    }
    if let Some(info) = builtin_function(lake, name) {
        return info.help_text();
    }
    let names = function_names(lake);
    let close = close_names(name, &names);
    if close.is_empty() {
        format!("No function named '{name}'. \\df lists the cxlake functions.")
    } else {
        format!("No function named '{name}'. Did you mean: {}?", close.join(", "))
    }
}

/// A DataFusion built-in function's documentation, when it has some.
fn builtin_function(lake: &Lake, name: &str) -> Option<FunctionInfo> {
    let state = lake.context().state();
    let name = name.to_lowercase();
    let (kind, documentation) = if let Some(f) = state.scalar_functions().get(&name) {
        ("scalar", f.documentation()?)
    } else if let Some(f) = state.aggregate_functions().get(&name) {
        ("aggregate", f.documentation()?)
    } else if let Some(f) = state.window_functions().get(&name) {
        ("window", f.documentation()?)
    } else {
        return None;
    };
    Some(FunctionInfo { name, kind, documentation: documentation.clone() })
}

/// Every function name SQL can call here: cxlake's and DataFusion's, sorted.
pub fn function_names(lake: &Lake) -> Vec<String> {
    let state = lake.context().state();
    let mut names: Vec<String> = cxlake_functions().into_iter().map(|f| f.name).collect();
    names.extend(state.scalar_functions().keys().cloned());
    names.extend(state.aggregate_functions().keys().cloned());
    names.extend(state.window_functions().keys().cloned());
    names.sort();
    names.dedup();
    names
}

/// Up to five names within a few edits of `name`, or containing it, closest first.
fn close_names(name: &str, names: &[String]) -> Vec<String> {
    let name = name.to_lowercase();
    let limit = (name.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, &String)> = names
        .iter()
        .filter_map(|candidate| {
            let lower = candidate.to_lowercase();
            let distance = edit_distance(&name, &lower);
            if distance <= limit {
                Some((distance, candidate))
            } else if name.len() >= 2 && lower.contains(&name) {
                Some((limit + 1, candidate))
            } else {
                None
            }
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, n)| n.clone()).collect()
}

fn suggestion(name: &str, names: &[String]) -> Option<String> {
    close_names(name, names).into_iter().next()
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_tolerate_typos_and_partial_names() {
        let names: Vec<String> = ["nps", "nps_counts", "csat", "ces", "sum"].iter().map(|s| s.to_string()).collect();
        assert_eq!(close_names("npss", &names), vec!["nps"]);
        assert_eq!(close_names("count", &names), vec!["nps_counts"]);
        assert!(close_names("zzzzzzzz", &names).is_empty());
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
