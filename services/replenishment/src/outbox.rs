//! Sending approved purchase orders: a transactional outbox.
//!
//! Approval queues the PO in the same transaction (`po_outbox`), so a crash after approval
//! loses nothing. The sender takes one due PO at a time under its row lock (other replicas
//! skip it), writes its X12 850 with the control number drawn at approval, hands it to the
//! transport, and in the same transaction marks the PO SENT and takes it off the outbox. A
//! crash between delivery and commit sends it again with the same control number and the same
//! file name: the supplier sees a repeat of one interchange, never a second PO. A failed
//! delivery is retried with backoff, the error kept on the outbox row.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use inventory_core::ServiceError;
use inventory_runtime::{RecurringFailure, Stopping, failpoint};
use inventory_stock_client::StockClient;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::domain::purchase_order;
use crate::domain::x12;
use crate::store;
use crate::supplier_api::{ApiOrder, SupplierApi};

/// Where 850 documents go.
#[tonic::async_trait]
pub trait EdiTransport: Send + Sync + 'static {
    /// Delivers `document` under `name`; delivering the same name again replaces it.
    async fn deliver(&self, name: &str, document: &str) -> Result<(), String>;
}

/// A drop directory (the usual hand-off to an EDI gateway or VAN): each document is written
/// to a temporary file and renamed into place, so the gateway never reads half a document.
pub struct DropDirectory {
    dir: PathBuf,
}

impl DropDirectory {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }
}

#[tonic::async_trait]
impl EdiTransport for DropDirectory {
    async fn deliver(&self, name: &str, document: &str) -> Result<(), String> {
        let dir = self.dir.clone();
        let name = name.to_owned();
        let document = document.to_owned();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let partial = dir.join(format!(".{name}.partial"));
            std::fs::write(&partial, document.as_bytes())?;
            std::fs::File::open(&partial)?.sync_all()?;
            std::fs::rename(&partial, dir.join(&name))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("drop directory {}: {e}", self.dir.display()))
    }
}

/// How this side identifies itself in the envelope.
#[derive(Debug, Clone)]
pub struct Sender {
    pub qualifier: String,
    pub id: String,
    /// ISA15: P when true, T (test) otherwise.
    pub production: bool,
}

#[derive(Clone)]
pub struct Outbox {
    pool: PgPool,
    /// Asked at send time for the ship-to name and the product's unit: stock is their
    /// authority.
    stock: Arc<dyn StockClient>,
    transport: Arc<dyn EdiTransport>,
    api: Arc<dyn SupplierApi>,
    sender: Sender,
    /// Woken when a PO is approved, so it goes out at once rather than at the next poll.
    wake: Arc<Notify>,
    poll: Duration,
}

/// Most POs sent in one round before the sender looks at the clock again.
const ROUND: usize = 100;

impl Outbox {
    pub fn new(
        pool: PgPool,
        stock: Arc<dyn StockClient>,
        transport: Arc<dyn EdiTransport>,
        api: Arc<dyn SupplierApi>,
        sender: Sender,
        poll: Duration,
    ) -> Self {
        Self {
            pool,
            stock,
            transport,
            api,
            sender,
            wake: Arc::new(Notify::new()),
            poll,
        }
    }

    /// Call after committing an approval.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn run(self, mut stopping: Stopping) {
        loop {
            static FAILURES: RecurringFailure =
                RecurringFailure::new("the purchase order outbox round");
            match self.send_due().await {
                Ok(_) => FAILURES.succeeded(),
                Err(error) => FAILURES.failed(&error),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
                () = stopping.wait() => return,
            }
        }
    }

    /// Sends every PO due now (up to a round); returns how many went out.
    pub async fn send_due(&self) -> Result<usize, ServiceError> {
        let mut sent = 0;
        for _ in 0..ROUND {
            match self.send_next().await? {
                Some(true) => sent += 1,
                Some(false) => {}
                None => break,
            }
        }
        Ok(sent)
    }

    /// One due PO: Some(true) sent, Some(false) failed or dropped, None when nothing is due.
    async fn send_next(&self) -> Result<Option<bool>, ServiceError> {
        let mut tx = inventory_runtime::begin(&self.pool).await?;
        let Some((po, attempts)) = store::next_due(&mut tx).await? else {
            return Ok(None);
        };
        let status = po.status()?;
        if purchase_order::mark_sent(status).is_err() {
            // Cancelled (or otherwise moved on) while queued: nothing to send.
            store::dequeue(&mut tx, po.po_id).await?;
            inventory_runtime::commit(tx).await?;
            return Ok(Some(false));
        }
        let supplier = store::supplier(&mut tx, po.supplier_id)
            .await?
            .ok_or_else(|| ServiceError::Internal("PO without its supplier".into()))?;
        let now = Utc::now();
        // What the supplier is asked for and what the PO then expects: one date.
        let expected = now + chrono::Duration::days(i64::from(po.lead_time_days));
        failpoint("replenishment.before_send").await;
        let outcome = self.deliver(&po, &supplier, now, expected).await;
        let delivered = match outcome {
            Ok(()) => {
                store::mark_sent(&mut tx, po.po_id, now, expected).await?;
                tracing::info!(po_id = %po.po_id, po_number = po.po_number, "purchase order sent");
                true
            }
            Err(error) => {
                let retry_at = now + backoff(attempts);
                tracing::warn!(po_id = %po.po_id, attempts = attempts + 1, %error, "purchase order not delivered; will retry");
                store::retry_later(&mut tx, po.po_id, &error, retry_at).await?;
                false
            }
        };
        inventory_runtime::commit(tx).await?;
        Ok(Some(delivered))
    }

    /// Hands `po` to its supplier by the supplier's channel.
    async fn deliver(
        &self,
        po: &store::PurchaseOrder,
        supplier: &store::Supplier,
        now: DateTime<Utc>,
        expected: DateTime<Utc>,
    ) -> Result<(), String> {
        let warehouse = self
            .stock
            .get_warehouse(po.warehouse_id.to_string())
            .await
            .map_err(|e| format!("warehouse {} from stock: {e}", po.warehouse_id))?;
        let product = self
            .stock
            .get_product(po.product_id.to_string())
            .await
            .map_err(|e| format!("product {} from stock: {e}", po.product_id))?;
        if supplier.channel == "API" {
            let order = api_order(po, &warehouse.name, &product.unit_of_measure, now, expected);
            return self.api.send(&supplier.api_endpoint, &order).await;
        }
        let (name, document) = self.document(
            po,
            supplier,
            &warehouse.name,
            &product.unit_of_measure,
            now,
            expected,
        )?;
        self.transport.deliver(&name, &document).await
    }

    /// The 850 of `po` and its file name.
    fn document(
        &self,
        po: &store::PurchaseOrder,
        supplier: &store::Supplier,
        ship_to_name: &str,
        unit_of_measure: &str,
        now: DateTime<Utc>,
        expected: DateTime<Utc>,
    ) -> Result<(String, String), String> {
        let control = po.control_number.unwrap_or(0);
        let number = po_number(po.po_number);
        let document = x12::write_850(
            &x12::Partners {
                sender_qualifier: self.sender.qualifier.clone(),
                sender_id: self.sender.id.clone(),
                receiver_qualifier: supplier.edi_qualifier.clone(),
                receiver_id: supplier.edi_id.clone(),
                production: self.sender.production,
            },
            &x12::PurchaseOrder {
                po_number: number.clone(),
                order_date: now.date_naive(),
                requested_delivery: Some(expected.date_naive()),
                ship_to_name: ship_to_name.to_owned(),
                ship_to_id: po.warehouse_id.to_string(),
                lines: vec![x12::Line {
                    quantity: po.ordered_qty,
                    unit: x12::unit_code(unit_of_measure).to_owned(),
                    unit_price_micros: po.unit_cost_micros,
                    buyer_part: po.product_id.to_string(),
                    vendor_part: (!po.supplier_part_number.is_empty())
                        .then(|| po.supplier_part_number.clone()),
                }],
            },
            control,
            now,
        )
        .map_err(|e| e.to_string())?;
        Ok((format!("{number}-{control:09}.x12"), document))
    }
}

/// What an API supplier receives: the PO with everything needed to fill it.
fn api_order(
    po: &store::PurchaseOrder,
    ship_to_name: &str,
    unit_of_measure: &str,
    now: DateTime<Utc>,
    expected: DateTime<Utc>,
) -> ApiOrder {
    let control = po.control_number.unwrap_or(0);
    ApiOrder {
        idempotency_key: format!("{}:{control}", po.po_id),
        body: serde_json::json!({
            "po_id": po.po_id.to_string(),
            "po_number": po_number(po.po_number),
            "control_number": control,
            "order_date": now.date_naive().to_string(),
            "requested_delivery": expected.date_naive().to_string(),
            "ship_to": {
                "warehouse_id": po.warehouse_id.to_string(),
                "name": ship_to_name,
            },
            "lines": [{
                "line": 1,
                "product_id": po.product_id.to_string(),
                "supplier_part_number": po.supplier_part_number,
                "quantity": po.ordered_qty,
                "unit_of_measure": unit_of_measure,
                "unit_price_micros": po.unit_cost_micros,
            }],
        }),
    }
}

/// PO-00000042: what the 850's BEG03 and people see.
pub fn po_number(number: i64) -> String {
    format!("PO-{number:08}")
}

/// 1 s, doubling, at most 10 minutes.
fn backoff(attempts: i32) -> chrono::Duration {
    let seconds = 1_i64 << attempts.clamp(0, 10);
    chrono::Duration::seconds(seconds.min(600))
}
