//! The interactive loop: read a statement (or a backslash command), run it, print its result.

use std::path::PathBuf;
use std::process::ExitCode;

use cxlake::statements::{is_blank, script_statements};
use rustyline::config::{CompletionType, Config};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::Editor;

use crate::command::{self, Next};
use crate::exec::{Ran, Session};
use crate::helper::{CliHelper, Vocabulary};

const PROMPT: &str = "cxlake> ";

/// Where the history is kept: `$CXLAKE_HISTORY`, else `~/.cxlake_history`.
fn history_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CXLAKE_HISTORY") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cxlake_history"))
}

/// Runs the REPL until `\q` or Ctrl-D.
pub async fn run(session: &mut Session, quiet: bool) -> ExitCode {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .history_ignore_space(true)
        .auto_add_history(false)
        .build();
    let mut editor: Editor<CliHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(editor) => editor,
        Err(e) => {
            eprintln!("Error: cannot start the line editor: {e}");
            return ExitCode::FAILURE;
        }
    };
    editor.set_helper(Some(CliHelper::new(Vocabulary::load(&session.lake).await)));
    let history = history_path();
    if let Some(path) = &history {
        // A missing or unreadable history file is not an error.
        let _ = editor.load_history(path);
    }
    // Ctrl-C while a query runs must cancel it rather than end cxlake: install the handler now,
    // before the first query, so that a quick Ctrl-C never reaches the default action.
    #[cfg(unix)]
    let _interrupts = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());

    if !quiet {
        print_banner(session);
    }
    loop {
        let input = match editor.readline(PROMPT) {
            Ok(input) => input,
            // Ctrl-C at the prompt clears the line.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(ReadlineError::Signal(_)) => continue,
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::FAILURE;
            }
        };
        if is_blank(&input) {
            continue;
        }
        let _ = editor.add_history_entry(input.trim_end());
        if let Some(path) = &history {
            let _ = editor.save_history(path);
        }
        if input.trim_start().starts_with('\\') {
            match command::run(&input, session).await {
                Ok(Next::Quit) => break,
                Ok(Next::Continue) => {}
                Err(e) => eprintln!("Error: {e}"),
            }
            continue;
        }
        for statement in script_statements(&input) {
            match session.run_statement(&statement, true).await {
                Ok(Ran::Done | Ran::OutputClosed) => {}
                Ok(Ran::Cancelled) => {
                    eprintln!("Query cancelled.");
                    break;
                }
                Err(e) => {
                    eprintln!("Error: {e}");
                    break;
                }
            }
        }
        // CREATE and DROP change what completion should offer.
        let vocabulary = Vocabulary::load(&session.lake).await;
        if let Some(helper) = editor.helper_mut() {
            helper.set_vocabulary(vocabulary);
        }
    }
    ExitCode::SUCCESS
}

fn print_banner(session: &Session) {
    let tables = session.lake.table_names();
    let tables = if tables.is_empty() { "none".to_string() } else { tables.join(", ") };
    session.info(&format!(
        "cxlake {}: SQL with customer-experience metrics over Parquet.\nTables: {tables}\n\
         Type \\? for help, \\q to quit. Statements end with `;`.",
        env!("CARGO_PKG_VERSION")
    ));
}
