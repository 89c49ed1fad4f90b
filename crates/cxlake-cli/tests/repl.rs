//! The REPL in a real pseudo-terminal: results with their row count, multi-line statements,
//! backslash commands, tab completion, Ctrl-C cancelling a query, and `\q`.

mod common;

use rexpect::process::WaitStatus;
use rexpect::session::{spawn_command, PtySession};

use common::Fixture;

const PROMPT: &str = "cxlake> ";
/// The machine running the tests may be slow and shared.
const TIMEOUT_MS: u64 = 30_000;

fn start(f: &Fixture) -> PtySession {
    let mut command = f.command();
    command.args(f.lake_args()).env("TERM", "xterm");
    let mut p = spawn_command(command, Some(TIMEOUT_MS)).expect("spawn cxlake in a pty");
    p.exp_string("Tables: events, responses, tickets").unwrap();
    p.exp_string("\\? for help").unwrap();
    p.exp_string(PROMPT).unwrap();
    p
}

#[test]
fn repl_session() {
    let f = Fixture::new();
    let mut p = start(&f);

    // A query: its result, then the row count and elapsed time.
    p.send_line("SELECT channel FROM responses WHERE id = 3;").unwrap();
    p.exp_string("| web ").unwrap();
    p.exp_string("1 row in ").unwrap();
    p.exp_string(PROMPT).unwrap();

    // A statement over two lines runs once the `;` arrives.
    p.send_line("SELECT count(*) * 7 AS sevens").unwrap();
    p.send_line("FROM responses;").unwrap();
    p.exp_string("| 21 ").unwrap();
    p.exp_string("1 row in ").unwrap();
    p.exp_string(PROMPT).unwrap();

    // A function's documentation.
    p.send_line("\\h nps").unwrap();
    p.exp_string("Net Promoter Score").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line("\\h npz").unwrap();
    p.exp_string("Did you mean: nps").unwrap();
    p.exp_string(PROMPT).unwrap();

    // Tab completes a table name and a function name: the query only runs if both were.
    p.send("SELECT nps_cou").unwrap();
    p.send("\t").unwrap();
    p.send("(score)['responses'] AS r FROM respo").unwrap();
    p.send("\t").unwrap();
    p.send_line(";").unwrap();
    p.exp_string("| 2 ").unwrap();
    p.exp_string("1 row in ").unwrap();
    p.exp_string(PROMPT).unwrap();

    // Errors are shown and the session goes on.
    p.send_line("SELECT * FROM no_such_table;").unwrap();
    p.exp_string("Error: ").unwrap();
    p.exp_string(PROMPT).unwrap();

    // Tables and their columns.
    p.send_line("\\d tickets").unwrap();
    p.exp_string("ticket_id").unwrap();
    p.exp_string(PROMPT).unwrap();

    // Ctrl-C cancels a long query (once its spinner shows it running) and keeps the REPL.
    p.send_line("SELECT sum(value) FROM range(1, 100000000000);").unwrap();
    p.exp_string("running").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("Query cancelled.").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line("SELECT 6 * 7 AS after_cancel;").unwrap();
    p.exp_string("| 42 ").unwrap();
    p.exp_string(PROMPT).unwrap();

    // Settings apply to the session.
    p.send_line("SET cxlake.invalid_input = 'skip';").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line("SELECT nps(s) AS skipped FROM (VALUES (10), (11), (0)) t(s);").unwrap();
    p.exp_string("| 0.0 ").unwrap();
    p.exp_string(PROMPT).unwrap();

    p.send_line("\\q").unwrap();
    p.exp_eof().unwrap();
    assert!(matches!(p.process().wait().unwrap(), WaitStatus::Exited(_, 0)));

    // The history file got the statements.
    let history = std::fs::read_to_string(f.path("history")).unwrap();
    assert!(history.contains("after_cancel"), "{history}");
}

#[test]
fn ctrl_d_leaves_and_ctrl_c_clears_the_line() {
    let f = Fixture::new();
    let mut p = start(&f);
    p.send("SELECT 'never run'").unwrap();
    p.send_control('c').unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_line("SELECT 'cleared' AS state;").unwrap();
    p.exp_string("| cleared ").unwrap();
    p.exp_string(PROMPT).unwrap();
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
    assert!(matches!(p.process().wait().unwrap(), WaitStatus::Exited(_, 0)));
}

#[test]
fn a_job_on_a_terminal_shows_a_bar_of_its_statements() {
    let f = Fixture::new();
    let job = f.path("slow.sql");
    std::fs::write(&job, "SELECT 1 AS one;\nSELECT count(*) AS n FROM generate_series(1, 1200000000) t(v);\n").unwrap();
    let mut command = f.command();
    command.args(["run", &job.display().to_string()]).env("TERM", "xterm");
    let mut p = spawn_command(command, Some(120_000)).expect("spawn cxlake run in a pty");
    p.exp_string("[1/2] ok: SELECT 1 AS one").unwrap();
    // While the second statement runs: half of the bar is done. (rexpect reads the terminal a
    // byte per character, so the expected text is spelled the same way.)
    let bar = format!("[{}{}] statement 2 of 2 running", "█".repeat(12), "░".repeat(12));
    p.exp_string(&bar.bytes().map(char::from).collect::<String>()).unwrap();
    p.exp_string("1200000000").unwrap();
    p.exp_string("[2/2] ok: SELECT count(*)").unwrap();
    p.exp_eof().unwrap();
    assert!(matches!(p.process().wait(), Ok(WaitStatus::Exited(_, 0))));
}
