//! What reconciliation keeps from stock's log, through the shared feed consumer (its cursor
//! is stored in the same transaction): on hand per pair, to know what is stocked where, and
//! per pair and day the units shipped and the net adjustment, for ABC classes and shrinkage.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate};
use inventory_core::ServiceError;
use inventory_proto::stock::v1 as stock;
use inventory_runtime::Tx;
use inventory_stock_client::FeedHandler;
use uuid::Uuid;

use crate::store;

/// The name of this service's feed cursor.
pub const FEED: &str = "reconciliation-movement";

pub struct MovementFeed;

#[tonic::async_trait]
impl FeedHandler for MovementFeed {
    async fn apply(
        &self,
        tx: &mut Tx,
        events: &[stock::InventoryTransaction],
    ) -> Result<(), ServiceError> {
        let mut positions: HashMap<(Uuid, Uuid), (i64, i64)> = HashMap::new();
        let mut daily: BTreeMap<(Uuid, Uuid, NaiveDate), (i64, i64)> = BTreeMap::new();
        for e in events {
            let (Ok(product), Ok(warehouse)) =
                (e.product_id.parse::<Uuid>(), e.warehouse_id.parse::<Uuid>())
            else {
                continue;
            };
            // The feed is not in sequence order, but a row's movements draw their sequences
            // under its lock, in commit order: the highest sequence is its latest state.
            let latest = positions
                .entry((product, warehouse))
                .or_insert((e.on_hand_after, e.sequence));
            if e.sequence > latest.1 {
                *latest = (e.on_hand_after, e.sequence);
            }
            let kind = stock::TransactionType::try_from(e.txn_type).ok();
            let (shipped, adjusted) = match kind {
                Some(stock::TransactionType::Ship) => (e.quantity, 0),
                Some(stock::TransactionType::Adjust) => (0, e.on_hand_delta),
                _ => continue,
            };
            let day = e
                .create_time
                .as_ref()
                .and_then(|t| DateTime::from_timestamp(t.seconds, 0))
                .map_or(NaiveDate::MIN, |t| t.date_naive());
            let entry = daily.entry((product, warehouse, day)).or_default();
            entry.0 += shipped;
            entry.1 += adjusted;
        }
        let positions: Vec<(Uuid, Uuid, i64, i64)> = positions
            .into_iter()
            .map(|((p, w), (on_hand, sequence))| (p, w, on_hand.max(0), sequence))
            .collect();
        let daily: Vec<(Uuid, Uuid, NaiveDate, i64, i64)> = daily
            .into_iter()
            .map(|((p, w, d), (s, a))| (p, w, d, s, a))
            .collect();
        store::apply_feed(tx, &positions, &daily).await
    }
}
