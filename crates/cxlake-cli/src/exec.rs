//! Running statements and printing their results, for scripts (`-c`, `-f`, standard input) and
//! the REPL alike.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use cxlake::format::write_batches;
use cxlake::statements::script_statements;
use cxlake::{DataFusionError, Lake, OutputFormat, Result, StatementOutput};

use crate::progress::{Progress, Step};

/// How results are shown.
#[derive(Debug, Clone, Copy)]
pub struct PrintOptions {
    pub format: OutputFormat,
    /// Print "N rows in X.XXXs" after each result: on standard output in the `table` format;
    /// in other formats only in the REPL, on standard error, so that stdout stays pure data.
    pub timing: bool,
    /// Whether this is the REPL.
    pub interactive: bool,
}

/// A lake and how its results are printed.
pub struct Session {
    pub lake: Lake,
    pub options: PrintOptions,
    /// Show a spinner on standard error for slow queries (only when it is a terminal).
    show_progress: bool,
}

/// How a statement ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    Done,
    /// Ctrl-C stopped it (REPL only).
    Cancelled,
    /// Standard output was closed (`cxlake ... | head`): nothing more can be shown.
    OutputClosed,
}

/// Whether a script goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

impl Session {
    pub fn new(lake: Lake, options: PrintOptions) -> Self {
        Self { lake, options, show_progress: io::stderr().is_terminal() }
    }

    /// Runs every statement of `text` in order, stopping at the first that fails.
    pub async fn run_script(&self, text: &str) -> Result<Flow> {
        for statement in script_statements(text) {
            if self.run_statement(&statement, false).await? == Ran::OutputClosed {
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    /// Runs one statement to completion and prints its result. With `cancellable`, Ctrl-C
    /// stops the query and returns [`Ran::Cancelled`].
    pub async fn run_statement(&self, sql: &str, cancellable: bool) -> Result<Ran> {
        let start = Instant::now();
        match self.execute(sql, cancellable).await? {
            None => Ok(Ran::Cancelled),
            Some(output) => self.print(&output, Some(start.elapsed())),
        }
    }

    /// Runs one statement to completion without printing it, with the progress spinner; `None`
    /// when Ctrl-C stopped it (only with `cancellable`).
    pub async fn execute(&self, sql: &str, cancellable: bool) -> Result<Option<StatementOutput>> {
        self.execute_step(sql, cancellable, None).await
    }

    /// [`Session::execute`] for a statement that is a `step` of a job: its progress display is
    /// the job's bar, shown sooner.
    pub async fn execute_step(
        &self,
        sql: &str,
        cancellable: bool,
        step: Option<Step>,
    ) -> Result<Option<StatementOutput>> {
        let delay = if step.is_some() { Duration::from_millis(300) } else { Duration::from_secs(1) };
        let progress = self.show_progress.then(|| Progress::start(delay, step));
        let lake = self.lake.clone();
        let sql = sql.to_string();
        // The query runs in its own task so that Ctrl-C is noticed at once, and aborting the task
        // (dropping the guard) stops DataFusion's work.
        let mut task = AbortOnDrop(tokio::spawn(async move { lake.execute(&sql).await }));
        let joined = if cancellable {
            tokio::select! {
                joined = &mut task.0 => Some(joined),
                _ = ctrl_c() => None,
            }
        } else {
            Some((&mut task.0).await)
        };
        drop(task);
        drop(progress);
        match joined {
            None => Ok(None),
            Some(Ok(result)) => result.map(Some),
            Some(Err(e)) => Err(join_error(e)),
        }
    }

    /// Prints a result in the session's format, then (with `elapsed`, when timing is on) its row
    /// count and elapsed time. Statements without result columns print nothing.
    pub fn print(&self, output: &StatementOutput, elapsed: Option<Duration>) -> Result<Ran> {
        if !output.has_rows() {
            return Ok(Ran::Done);
        }
        let mut out = TrackedWriter { inner: io::BufWriter::new(io::stdout().lock()), closed: false };
        let written = write_batches(&mut out, self.options.format, &output.schema, &output.batches)
            .and_then(|()| out.flush().map_err(DataFusionError::from));
        if let Err(e) = written {
            return if out.closed { Ok(Ran::OutputClosed) } else { Err(e) };
        }
        drop(out);
        if let (Some(elapsed), true) = (elapsed, self.options.timing) {
            let rows = output.row_count();
            let line = format!("{rows} row{} in {:.3}s", if rows == 1 { "" } else { "s" }, elapsed.as_secs_f64());
            self.info(&line);
        }
        Ok(Ran::Done)
    }

    /// A message for the person at the terminal: on standard output with the `table` format,
    /// on standard error otherwise so that data on standard output stays clean.
    pub fn info(&self, line: &str) {
        if self.options.format == OutputFormat::Table {
            println!("{line}");
        } else if self.options.interactive {
            eprintln!("{line}");
        }
    }
}

/// Waits for Ctrl-C; never resolves if the signal handler cannot be installed.
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn join_error(e: tokio::task::JoinError) -> DataFusionError {
    if e.is_panic() {
        let message = cxlake::lake::panic_message(e.into_panic().as_ref());
        DataFusionError::Execution(format!("the query failed unexpectedly: {message}"))
    } else {
        DataFusionError::Execution("the query was stopped".to_string())
    }
}

/// Aborts a task when dropped, so that a cancelled or abandoned query stops running.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A writer that remembers whether the reader went away (broken pipe).
struct TrackedWriter<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> TrackedWriter<W> {
    fn track<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::BrokenPipe) {
            self.closed = true;
        }
        result
    }
}

impl<W: Write> Write for TrackedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.inner.write(buf);
        self.track(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.inner.flush();
        self.track(result)
    }
}
