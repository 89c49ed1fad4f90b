//! A spinner with the elapsed seconds on standard error, for queries that take a while, and for
//! `cxlake run` a bar of the job's statements done.
//!
//! It appears only after a delay, so quick statements show nothing, and it is erased when the
//! query ends (the [`Progress`] is dropped), before any result or log line is printed. Callers
//! only start one when standard error is a terminal.

use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const FRAMES: &[char] = &['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const TICK: Duration = Duration::from_millis(100);

/// Where a statement stands in a job: the `index`-th (from 1) of `of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub index: usize,
    pub of: usize,
}

const BAR_WIDTH: usize = 24;

impl Step {
    /// `[████████░░░░░░░░░░░░░░░░] statement 3 of 9`: the bar shows the statements finished.
    fn render(self) -> String {
        let done = (self.index.saturating_sub(1) * BAR_WIDTH).checked_div(self.of).unwrap_or(0);
        format!("[{}{}] statement {} of {}", "█".repeat(done), "░".repeat(BAR_WIDTH - done), self.index, self.of)
    }
}

/// A running spinner; dropping it stops and erases it.
pub struct Progress {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts a spinner that shows itself once `delay` has passed, with the job's bar when the
    /// statement is a `step` of one.
    pub fn start(delay: Duration, step: Option<Step>) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || spin(&stopped, delay, step));
        Self { stop: Some(stop), thread: Some(thread) }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // Closing the channel wakes the thread, which erases its line before exiting.
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn spin(stopped: &mpsc::Receiver<()>, delay: Duration, step: Option<Step>) {
    let start = Instant::now();
    if wait(stopped, delay) {
        return;
    }
    let mut stderr = std::io::stderr();
    for frame in FRAMES.iter().cycle() {
        let seconds = start.elapsed().as_secs();
        let _ = match step {
            Some(step) => write!(stderr, "\r{frame} {} running… {seconds}s", step.render()),
            None => write!(stderr, "\r{frame} running… {seconds}s"),
        };
        let _ = stderr.flush();
        if wait(stopped, TICK) {
            break;
        }
    }
    // Back to the start of the line and erase it.
    let _ = write!(stderr, "\r\x1b[2K");
    let _ = stderr.flush();
}

/// Waits up to `timeout`; true when the spinner was stopped.
fn wait(stopped: &mpsc::Receiver<()>, timeout: Duration) -> bool {
    !matches!(stopped.recv_timeout(timeout), Err(RecvTimeoutError::Timeout))
}

#[cfg(test)]
mod tests {
    use super::Step;

    #[test]
    fn the_bar_shows_the_statements_finished() {
        assert_eq!(Step { index: 1, of: 4 }.render(), format!("[{}] statement 1 of 4", "░".repeat(24)));
        assert_eq!(
            Step { index: 3, of: 4 }.render(),
            format!("[{}{}] statement 3 of 4", "█".repeat(12), "░".repeat(12))
        );
        assert_eq!(Step { index: 1, of: 0 }.render(), format!("[{}] statement 1 of 0", "░".repeat(24)));
    }
}
