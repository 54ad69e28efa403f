//! Background upkeep: releasing reservations whose expiry has passed. Safe with many
//! replicas: expired reservations are claimed with SKIP LOCKED, and each release is a normal
//! logged movement. (Request ids past their retention are purged by the platform.)

use std::sync::Arc;

use inventory_core::ServiceError;
use inventory_core::time::now;
use inventory_runtime::RecurringFailure;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::domain::reservation::ReleaseCause;
use crate::store::Store;

/// Reservations released per transaction.
const EXPIRY_BATCH: i64 = 200;
/// Who the log names as the actor of expiry releases.
pub const EXPIRY_ACTOR: &str = "reservation-expiry";

/// Releases one batch of expired reservations; returns how many were released.
pub async fn release_expired(store: &Store) -> Result<usize, ServiceError> {
    let mut tx = store.begin().await?;
    let now = now();
    let due = store
        .lock_expired_reservations(&mut tx, now, EXPIRY_BATCH)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut changed = Vec::with_capacity(due.len());
    let mut movements = Vec::with_capacity(due.len());
    for reservation in &due {
        let (next, movement) = reservation.release(None, ReleaseCause::Expired, now)?;
        changed.push(next);
        movements.push(movement);
    }
    let request_id = format!("expiry-{}", Uuid::now_v7());
    store
        .apply_movements(&mut tx, &movements, None, &request_id, EXPIRY_ACTOR)
        .await?;
    store.save_reservations(&mut tx, &changed).await?;
    inventory_runtime::commit(tx).await?;
    Ok(changed.len())
}

/// Releases batches until none is due; one tick of the expiry task.
pub async fn release_all_expired(store: Store, log_appended: Arc<Notify>) {
    // Runs every second: a database outage is one warning a minute, not one a second.
    static FAILURES: RecurringFailure = RecurringFailure::new("releasing expired reservations");
    loop {
        match release_expired(&store).await {
            Ok(0) => return FAILURES.succeeded(),
            Ok(released) => {
                FAILURES.succeeded();
                tracing::info!(released, "released expired reservations");
                log_appended.notify_waiters();
            }
            Err(error) => return FAILURES.failed(&error),
        }
    }
}
