//! Warnings about a failure that repeats (a loop that runs every second while the database is
//! down): the first failure is logged, then at most one reminder a minute with how many there
//! were, and the recovery once.

use std::fmt::Display;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a failure that keeps happening is mentioned again.
const REMIND_EVERY: Duration = Duration::from_secs(60);

/// One kind of recurring work's failures; a `static` beside the loop.
#[derive(Debug)]
pub struct RecurringFailure {
    what: &'static str,
    state: Mutex<Option<Failing>>,
}

#[derive(Debug, Clone, Copy)]
struct Failing {
    since: Instant,
    last_logged: Instant,
    /// Failures since the last line.
    unlogged: u64,
}

impl RecurringFailure {
    /// `what` says what failed: "releasing expired reservations".
    pub const fn new(what: &'static str) -> Self {
        Self {
            what,
            state: Mutex::new(None),
        }
    }

    /// Logs `error` unless this failure was logged less than a minute ago.
    pub fn failed(&self, error: &dyn Display) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.as_mut() {
            None => {
                tracing::warn!(%error, "{} failed; will retry", self.what);
                *state = Some(Failing {
                    since: now,
                    last_logged: now,
                    unlogged: 0,
                });
            }
            Some(failing) if now.duration_since(failing.last_logged) >= REMIND_EVERY => {
                tracing::warn!(
                    %error,
                    failing_for_s = now.duration_since(failing.since).as_secs(),
                    failures_since_last_warning = failing.unlogged + 1,
                    "{} still failing",
                    self.what
                );
                failing.last_logged = now;
                failing.unlogged = 0;
            }
            Some(failing) => failing.unlogged += 1,
        }
    }

    /// Ends a run of failures, saying so once.
    pub fn succeeded(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(failing) = state.take() {
            tracing::info!(
                failing_for_s = failing.since.elapsed().as_secs(),
                "{} works again",
                self.what
            );
        }
    }

    #[cfg(test)]
    fn unlogged(&self) -> Option<u64> {
        self.state.lock().ok()?.map(|f| f.unlogged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_failure_is_logged_once_then_counted_until_it_recovers() {
        let failures = RecurringFailure::new("testing");
        assert_eq!(failures.unlogged(), None);
        failures.failed(&"down");
        assert_eq!(failures.unlogged(), Some(0), "the first one is logged");
        failures.failed(&"down");
        failures.failed(&"down");
        assert_eq!(
            failures.unlogged(),
            Some(2),
            "the next ones within a minute are not"
        );
        failures.succeeded();
        assert_eq!(failures.unlogged(), None, "recovered");
    }
}
