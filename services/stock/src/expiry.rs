//! Background upkeep: releasing reservations whose expiry has passed, and forgetting request
//! ids older than the retention window. Safe with many replicas: expired reservations are
//! claimed with SKIP LOCKED, and each release is a normal logged movement.

use std::sync::Arc;
use std::time::Duration;

use inventory_core::ServiceError;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::api::now;
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
    tx.commit().await.map_err(crate::store::db_error)?;
    Ok(changed.len())
}

/// Runs upkeep every `interval` until `stop` flips to true.
pub async fn run(
    store: Store,
    interval: Duration,
    retention: chrono::Duration,
    log_appended: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_purge = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        loop {
            match release_expired(&store).await {
                Ok(0) => break,
                Ok(released) => {
                    tracing::info!(released, "released expired reservations");
                    log_appended.notify_waiters();
                }
                Err(error) => {
                    tracing::warn!(%error, "releasing expired reservations failed; will retry");
                    break;
                }
            }
        }
        if last_purge.elapsed() >= Duration::from_secs(3600) {
            last_purge = tokio::time::Instant::now();
            match store.purge_request_ids(retention).await {
                Ok(purged) => tracing::info!(purged, "forgot old request ids"),
                Err(error) => tracing::warn!(%error, "purging request ids failed"),
            }
        }
    }
}
