//! Progress of long work (loading demo data, seeding a benchmark, a simulation) for a person
//! at a terminal: one line redrawn in place on stderr. When stderr is not a terminal (logs,
//! CI, a container) it writes nothing.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `label: done/total`, shared by concurrent workers (`step` takes `&self`).
#[derive(Debug)]
pub struct Progress {
    label: String,
    total: usize,
    done: AtomicUsize,
    terminal: bool,
}

impl Progress {
    pub fn new(label: impl Into<String>, total: usize) -> Self {
        Self {
            label: label.into(),
            total,
            done: AtomicUsize::new(0),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// One more unit done.
    pub fn step(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        // Redraw at most about a hundred times, whatever the total.
        let every = (self.total / 100).max(1);
        if self.terminal && (done.is_multiple_of(every) || done == self.total) {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r{}: {done}/{}", self.label, self.total);
            let _ = stderr.flush();
        }
    }

    /// Clears the line (on a terminal), so what is printed next starts clean.
    pub fn finish(&self) {
        if self.terminal {
            eprint!("\r\x1b[2K");
        }
    }
}
