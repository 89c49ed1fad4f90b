//! A spinner with the elapsed seconds on standard error, for queries that take a while.
//!
//! It appears only after a delay, so quick statements show nothing, and it is erased when the
//! query ends (the [`Progress`] is dropped), before any result is printed. Callers only start one
//! when standard error is a terminal.

use std::io::Write;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const FRAMES: &[char] = &['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const TICK: Duration = Duration::from_millis(100);

/// A running spinner; dropping it stops and erases it.
pub struct Progress {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts a spinner that shows itself once `delay` has passed.
    pub fn start(delay: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || spin(&stopped, delay));
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

fn spin(stopped: &mpsc::Receiver<()>, delay: Duration) {
    let start = Instant::now();
    if wait(stopped, delay) {
        return;
    }
    let mut stderr = std::io::stderr();
    for frame in FRAMES.iter().cycle() {
        let _ = write!(stderr, "\r{frame} running… {}s", start.elapsed().as_secs());
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
