//! Reads: inventory rows and availability, reservations, the log, the ledger check and the
//! summary. None takes a row lock.

use std::collections::BTreeMap;

use inventory_core::time::{from_timestamp, now, timestamp};
use inventory_core::{ServiceError, Violations};
use inventory_proto::stock::v1 as pb;

use super::{StockApi, convert, parse};
use crate::domain::movement::InventoryKey;
use crate::store::{ListInventoryFilter, ListTransactionsFilter};

/// Orders one ListReservations may name.
const MAX_LISTED_ORDERS: usize = 1000;

impl StockApi {
    pub(super) async fn get_inventory(
        &self,
        req: pb::GetInventoryRequest,
    ) -> Result<pb::GetInventoryResponse, ServiceError> {
        let key = parse::inventory_key(&req.product_id, &req.warehouse_id)?;
        match self.store.get_inventory(key).await? {
            Some(row) => Ok(pb::GetInventoryResponse {
                inventory: Some(convert::inventory(&row)),
            }),
            None => {
                self.store.ensure_catalog_exists(&[key]).await?;
                Err(ServiceError::not_found(
                    "inventory",
                    format!(
                        "for product {} in warehouse {} (never stocked)",
                        key.product_id, key.warehouse_id
                    ),
                ))
            }
        }
    }

    pub(super) async fn batch_get_availability(
        &self,
        req: pb::BatchGetAvailabilityRequest,
    ) -> Result<pb::BatchGetAvailabilityResponse, ServiceError> {
        let keys = parse::batch_keys(&req)?;
        let rows: BTreeMap<InventoryKey, _> = self
            .store
            .get_inventory_many(&keys)
            .await?
            .into_iter()
            .map(|r| (r.key(), r))
            .collect();
        // A pair with a row names a product and a warehouse that exist; only the others may
        // name an unknown one (NOT_FOUND), or simply hold nothing yet.
        let without_row: Vec<InventoryKey> = keys
            .iter()
            .filter(|k| !rows.contains_key(k))
            .copied()
            .collect();
        if !without_row.is_empty() {
            self.store.ensure_catalog_exists(&without_row).await?;
        }
        let availabilities = keys
            .iter()
            .map(|k| {
                let level = rows.get(k).map(|r| r.level()).unwrap_or_default();
                pb::Availability {
                    product_id: k.product_id.to_string(),
                    warehouse_id: k.warehouse_id.to_string(),
                    quantity_on_hand: level.on_hand,
                    quantity_reserved: level.reserved,
                    quantity_available: level.available(),
                }
            })
            .collect();
        Ok(pb::BatchGetAvailabilityResponse { availabilities })
    }

    pub(super) async fn list_inventory(
        &self,
        req: pb::ListInventoryRequest,
    ) -> Result<pb::ListInventoryResponse, ServiceError> {
        let page = self.pages.request(
            req.page_size,
            &req.page_token,
            format!(
                "product={};warehouse={};below={}",
                req.product_id, req.warehouse_id, req.below_reorder_point
            ),
        )?;
        let mut v = Violations::new();
        let product_id = v.optional_uuid("product_id", &req.product_id);
        let warehouse_id = v.optional_uuid("warehouse_id", &req.warehouse_id);
        v.finish()?;
        let after = page
            .after
            .as_deref()
            .map(|t| {
                let (p, w) = t.split_once(',').ok_or_else(parse::bad_token)?;
                Ok::<_, ServiceError>(InventoryKey {
                    product_id: parse::token_uuid(p)?,
                    warehouse_id: parse::token_uuid(w)?,
                })
            })
            .transpose()?;
        let filter = ListInventoryFilter {
            product_id: product_id.flatten(),
            warehouse_id: warehouse_id.flatten(),
            below_reorder_point: req.below_reorder_point,
        };
        let rows = self
            .store
            .list_inventory(&filter, after, page.fetch_limit())
            .await?;
        let (rows, next) = self.pages.page(rows, &page, |r| {
            format!("{},{}", r.product_id, r.warehouse_id)
        });
        Ok(pb::ListInventoryResponse {
            inventory: rows.iter().map(convert::inventory).collect(),
            next_page_token: next,
        })
    }

    pub(super) async fn list_reservations(
        &self,
        req: pb::ListReservationsRequest,
    ) -> Result<pb::ListReservationsResponse, ServiceError> {
        let mut v = Violations::new();
        let mut orders = Vec::with_capacity(req.order_ids.len() + 1);
        if req.order_ids.is_empty() || !req.order_id.is_empty() {
            orders.extend(v.key("order_id", &req.order_id));
        }
        if req.order_ids.len() + orders.len() > MAX_LISTED_ORDERS {
            v.add(
                "order_ids",
                format!(
                    "at most {MAX_LISTED_ORDERS} orders in all, got {}",
                    req.order_ids.len()
                ),
            );
        } else {
            for (i, id) in req.order_ids.iter().enumerate() {
                orders.extend(v.key(&format!("order_ids[{i}]"), id));
            }
        }
        v.finish()?;
        let reservations = self.store.list_reservations(&orders).await?;
        Ok(pb::ListReservationsResponse {
            reservations: reservations.iter().map(convert::reservation).collect(),
        })
    }

    pub(super) async fn list_transactions(
        &self,
        req: pb::ListTransactionsRequest,
    ) -> Result<pb::ListTransactionsResponse, ServiceError> {
        let page = self.pages.request(
            req.page_size,
            &req.page_token,
            format!(
                "product={};warehouse={};type={};reference={};start={:?};end={:?}",
                req.product_id,
                req.warehouse_id,
                req.txn_type,
                req.reference_id,
                req.start_time,
                req.end_time
            ),
        )?;
        let mut v = Violations::new();
        let product_id = v.optional_uuid("product_id", &req.product_id);
        let warehouse_id = v.optional_uuid("warehouse_id", &req.warehouse_id);
        let reference_id = v.optional_key("reference_id", &req.reference_id);
        v.finish()?;
        let txn_type = parse::txn_type_filter(req.txn_type)?;
        let start_time = req
            .start_time
            .as_ref()
            .map(|t| from_timestamp("start_time", t))
            .transpose()?;
        let end_time = req
            .end_time
            .as_ref()
            .map(|t| from_timestamp("end_time", t))
            .transpose()?;
        let after = page
            .after
            .as_deref()
            .map(|t| t.parse::<i64>().map_err(|_| parse::bad_token()))
            .transpose()?
            .unwrap_or(0);
        let filter = ListTransactionsFilter {
            product_id: product_id.flatten(),
            warehouse_id: warehouse_id.flatten(),
            txn_type,
            reference_id: reference_id.flatten(),
            start_time,
            end_time,
        };
        let rows = self
            .store
            .list_transactions(&filter, after, page.fetch_limit())
            .await?;
        let (rows, next) = self.pages.page(rows, &page, |t| t.sequence.to_string());
        Ok(pb::ListTransactionsResponse {
            transactions: rows.iter().map(convert::transaction).collect(),
            next_page_token: next,
        })
    }

    pub(super) async fn check_ledger(&self) -> Result<pb::CheckLedgerResponse, ServiceError> {
        let report = self.store.check_ledger().await?;
        Ok(pb::CheckLedgerResponse {
            rows_checked: report.rows_checked,
            transactions_replayed: report.transactions_replayed,
            drifts: report
                .drifts
                .into_iter()
                .map(|d| pb::LedgerDrift {
                    problems: drift_problems(&d),
                    product_id: d.product_id.to_string(),
                    warehouse_id: d.warehouse_id.to_string(),
                    recorded_on_hand: d.recorded_on_hand,
                    recorded_reserved: d.recorded_reserved,
                    ledger_on_hand: d.ledger_on_hand,
                    ledger_reserved: d.ledger_reserved,
                    reservations_held: d.reservations_held,
                    inventory_row_missing: d.inventory_row_missing,
                    transactions_out_of_step: d.out_of_step,
                })
                .collect(),
        })
    }

    pub(super) async fn inventory_summary(
        &self,
    ) -> Result<pb::GetInventorySummaryResponse, ServiceError> {
        let as_of = now();
        let rows = self.store.inventory_summary().await?;
        let mut total = pb::WarehouseSummary::default();
        let warehouses = rows
            .into_iter()
            .map(|r| {
                total.quantity_on_hand = total.quantity_on_hand.saturating_add(r.quantity_on_hand);
                total.quantity_reserved =
                    total.quantity_reserved.saturating_add(r.quantity_reserved);
                total.quantity_available = total
                    .quantity_available
                    .saturating_add(r.quantity_available);
                total.value_micros = total.value_micros.saturating_add(r.value_micros);
                pb::WarehouseSummary {
                    warehouse_id: r.warehouse_id.to_string(),
                    quantity_on_hand: r.quantity_on_hand,
                    quantity_reserved: r.quantity_reserved,
                    quantity_available: r.quantity_available,
                    value_micros: r.value_micros,
                }
            })
            .collect();
        Ok(pb::GetInventorySummaryResponse {
            warehouses,
            total: Some(total),
            as_of: Some(timestamp(as_of)),
        })
    }
}

/// What is wrong with a pair the ledger check reports, in words.
fn drift_problems(d: &crate::store::LedgerDriftRow) -> Vec<String> {
    let mut problems = Vec::new();
    if d.inventory_row_missing {
        problems.push(format!(
            "no inventory row for this product and warehouse, though the log nets {} on hand \
             and {} reserved and active reservations hold {}",
            d.ledger_on_hand, d.ledger_reserved, d.reservations_held
        ));
    } else {
        if d.recorded_on_hand != d.ledger_on_hand {
            problems.push(format!(
                "on hand is {} but the log nets {}",
                d.recorded_on_hand, d.ledger_on_hand
            ));
        }
        if d.recorded_reserved != d.ledger_reserved {
            problems.push(format!(
                "reserved is {} but the log nets {}",
                d.recorded_reserved, d.ledger_reserved
            ));
        }
        if d.recorded_reserved != d.reservations_held {
            problems.push(format!(
                "reserved is {} but active reservations hold {}",
                d.recorded_reserved, d.reservations_held
            ));
        }
    }
    if d.out_of_step > 0 {
        problems.push(format!(
            "{} log rows record after-values that disagree with the log's running sums",
            d.out_of_step
        ));
    }
    problems
}
