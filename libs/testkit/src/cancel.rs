//! Clients that give up: requests dropped at random points of their work, and what must hold
//! afterwards (no connection left inside a transaction, no warning from the database about
//! transaction state, every later request served).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::TestDatabase;

/// Counts, while alive, the database's warnings about transaction state ("there is already a
/// transaction in progress", "there is no transaction in progress": a session left inside a
/// transaction, or a ROLLBACK behind a COMMIT) that reach this thread's logs. sqlx logs each
/// PostgreSQL notice as an event under `sqlx::postgres::notice`. Use it in a current-thread
/// test, where the service runs on the test's thread.
pub struct TransactionWarnings {
    seen: Arc<AtomicUsize>,
    _guard: tracing::subscriber::DefaultGuard,
}

impl TransactionWarnings {
    pub fn capture() -> Self {
        let seen = Arc::new(AtomicUsize::new(0));
        let guard = tracing_subscriber::registry()
            .with(WarningCounter { seen: seen.clone() })
            .set_default();
        Self {
            seen,
            _guard: guard,
        }
    }

    pub fn count(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }
}

struct WarningCounter {
    seen: Arc<AtomicUsize>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WarningCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut text = MessageText(String::new());
        event.record(&mut text);
        if text.0.contains("transaction in progress") {
            self.seen.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct MessageText(String);

impl tracing::field::Visit for MessageText {
    fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{value:?} "));
    }

    fn record_str(&mut self, _: &tracing::field::Field, value: &str) {
        self.0.push_str(value);
        self.0.push(' ');
    }
}

/// Calls `call` again and again for `duration`, dropping most calls after a random delay of
/// up to `longest` (the rest run to their end), so they are cancelled at every point of
/// their work. Returns (calls made, calls dropped before they answered).
pub async fn cancel_at_random_points<F, Fut, T>(
    duration: Duration,
    longest: Duration,
    mut call: F,
) -> (usize, usize)
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = T>,
{
    let mut random = Random::seeded();
    let end = tokio::time::Instant::now() + duration;
    let longest_us = u64::try_from(longest.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    let (mut calls, mut dropped) = (0, 0);
    while tokio::time::Instant::now() < end {
        let attempt = call(calls);
        calls += 1;
        if random.next().is_multiple_of(8) {
            attempt.await;
            continue;
        }
        let after = Duration::from_micros(random.next() % longest_us);
        if tokio::time::timeout(after, attempt).await.is_err() {
            dropped += 1;
        }
    }
    (calls, dropped)
}

/// The connections to `database` that sit inside a transaction (idle in one, or aborted in
/// one), as `pid state: query`, once the ones still finishing have had a moment to.
pub async fn connections_in_transaction(database: &TestDatabase) -> Vec<String> {
    let mut admin = database.connect("public").await;
    let mut found = Vec::new();
    for _ in 0..50 {
        found = sqlx::query_scalar(
            "SELECT format('%s %s: %s', pid, state, left(query, 200)) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid()
                AND state IN ('idle in transaction', 'idle in transaction (aborted)')",
        )
        .bind(&database.name)
        .fetch_all(&mut admin)
        .await
        .expect("pg_stat_activity");
        if found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    found
}

/// What must hold once cancelled calls are over: no connection to `database` is left
/// inside a transaction, and `warnings` saw no warning about transaction state.
pub async fn assert_nothing_left_in_a_transaction(
    database: &TestDatabase,
    warnings: &TransactionWarnings,
) {
    assert_eq!(
        connections_in_transaction(database).await,
        Vec::<String>::new(),
        "no connection is left inside a transaction"
    );
    assert_eq!(warnings.count(), 0, "no warning about transaction state");
}

/// xorshift64*: enough randomness for where to cut a call, with no dependency.
struct Random(u64);

impl Random {
    fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9, |d| d.as_nanos() as u64);
        Self(nanos | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
