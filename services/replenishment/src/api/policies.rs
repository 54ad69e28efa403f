//! Reorder policies and the reorder scan.

use inventory_core::ServiceError;
use inventory_proto::replenishment::v1 as pb;
use inventory_runtime::{RequestKey, db_error, idempotency};

use super::{ReplenishmentApi, convert, parse};
use crate::planning::{computed_row, fixed_row};
use crate::store::planning;

/// Decisions listed in a scan's answer; the counts cover all of them.
const LISTED: usize = 100;

impl ReplenishmentApi {
    pub(super) async fn set_policy(
        &self,
        req: pb::SetReorderPolicyRequest,
    ) -> Result<pb::SetReorderPolicyResponse, ServiceError> {
        let cmd = parse::set_policy(&req, self.planner.defaults.service_level)?;
        // Both must exist in stock (NOT_FOUND otherwise); asked before any write.
        let product = self.stock.get_product(cmd.product_id.to_string()).await?;
        self.stock
            .get_warehouse(cmd.warehouse_id.to_string())
            .await?;
        let row = match cmd.fixed {
            Some((point, quantity)) => fixed_row(
                cmd.product_id,
                cmd.warehouse_id,
                (point, quantity),
                cmd.service_level,
                &cmd.actor,
            ),
            None => {
                let computed = self
                    .planner
                    .compute(
                        cmd.product_id,
                        &product,
                        cmd.warehouse_id,
                        cmd.service_level,
                    )
                    .await?;
                computed_row(
                    cmd.product_id,
                    cmd.warehouse_id,
                    cmd.service_level,
                    &computed,
                    &cmd.actor,
                )
            }
        };
        let key = RequestKey::new("SetReorderPolicy", &cmd.request_id, &req);
        idempotency::idempotent(&self.pool, &key, |mut tx| async move {
            let stored = planning::upsert_policy(&mut tx, &row, planning::Replace::Always).await?;
            let response = pb::SetReorderPolicyResponse {
                policy: Some(convert::policy(&stored)),
            };
            Ok((tx, response))
        })
        .await
    }

    pub(super) async fn get_policy(
        &self,
        req: pb::GetReorderPolicyRequest,
    ) -> Result<pb::GetReorderPolicyResponse, ServiceError> {
        let (product_id, warehouse_id) = parse::pair(&req.product_id, &req.warehouse_id)?;
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        let stored = planning::policy(&mut conn, product_id, warehouse_id).await?;
        let available = planning::position(&mut conn, product_id, warehouse_id).await?;
        drop(conn);
        let policy = match stored {
            Some(policy) => policy,
            None => {
                // None yet: what the next scan would give it (NOT_FOUND for a pair stock does
                // not know).
                let product = self.stock.get_product(product_id.to_string()).await?;
                self.stock.get_warehouse(warehouse_id.to_string()).await?;
                let level = self.planner.defaults.service_level;
                let computed = self
                    .planner
                    .compute(product_id, &product, warehouse_id, level)
                    .await?;
                computed_row(product_id, warehouse_id, level, &computed, "")
            }
        };
        Ok(pb::GetReorderPolicyResponse {
            policy: Some(convert::policy(&policy)),
            quantity_available: available.unwrap_or(0),
        })
    }

    pub(super) async fn run_scan(
        &self,
        req: pb::RunReorderScanRequest,
    ) -> Result<pb::RunReorderScanResponse, ServiceError> {
        let decisions = self
            .planner
            .scan(req.dry_run, self.rules.auto_approve_below_micros)
            .await?;
        if !req.dry_run {
            self.outbox.wake();
        }
        Ok(scan_response(&decisions, req.dry_run))
    }
}

pub fn scan_response(
    decisions: &[planning::Decision],
    dry_run: bool,
) -> pb::RunReorderScanResponse {
    let (offered, unoffered): (Vec<_>, Vec<_>) =
        decisions.iter().partition(|d| d.supplier_id.is_some());
    let drafted: Vec<&&planning::Decision> = offered
        .iter()
        .filter(|d| dry_run || d.po_id.is_some())
        .collect();
    pb::RunReorderScanResponse {
        drafted: i64::try_from(drafted.len()).unwrap_or(i64::MAX),
        without_offer: i64::try_from(unoffered.len()).unwrap_or(i64::MAX),
        decisions: drafted
            .iter()
            .take(LISTED)
            .map(|d| convert::decision(d))
            .collect(),
        unoffered: unoffered
            .iter()
            .take(LISTED)
            .map(|d| convert::decision(d))
            .collect(),
        dry_run,
    }
}
