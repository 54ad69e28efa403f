//! What holds the transaction feed back. The feed delivers a row only once every transaction
//! older than its writer has ended (see the store's feed), so one long-running transaction on
//! the server delays every row written after it began. Sampled periodically: the age of the
//! oldest transaction holding an xid goes to `stock_feed_holdback_seconds`, and a warning
//! names it once it exceeds [`HOLDBACK_WARNING`].

use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use inventory_runtime::RecurringFailure;
use prometheus_client::metrics::gauge::Gauge;

use crate::store::{Store, oldest_writer};

/// How long a transaction may hold the feed back before a warning names it.
pub const HOLDBACK_WARNING: Duration = Duration::from_secs(10);

fn holdback_gauge() -> &'static Gauge<f64, AtomicU64> {
    static GAUGE: OnceLock<Gauge<f64, AtomicU64>> = OnceLock::new();
    GAUGE.get_or_init(|| {
        let gauge = Gauge::<f64, AtomicU64>::default();
        inventory_telemetry::metrics().register_with_unit(
            "stock_feed_holdback",
            "Age of the oldest running transaction holding an xid on stock's database server: \
             the transaction feed delivers nothing written after it began until it ends",
            prometheus_client::registry::Unit::Seconds,
            gauge.clone(),
        );
        gauge
    })
}

/// One sample: sets the gauge, and warns when the oldest writer is old.
pub async fn sample_holdback(store: Store) {
    static FAILURES: RecurringFailure = RecurringFailure::new("sampling the feed's holdback");
    match oldest_writer(store.pool()).await {
        Ok(oldest) => {
            FAILURES.succeeded();
            let seconds = oldest.as_ref().map_or(0.0, |(age, _)| age.max(0.0));
            holdback_gauge().set(seconds);
            if let Some((age, who)) = oldest
                && age >= HOLDBACK_WARNING.as_secs_f64()
            {
                tracing::warn!(
                    held_back_seconds = age,
                    transaction = who,
                    "a long-running transaction holds the transaction feed back: rows logged \
                     since it began are delivered once it ends"
                );
            }
        }
        Err(error) => FAILURES.failed(&error),
    }
}
