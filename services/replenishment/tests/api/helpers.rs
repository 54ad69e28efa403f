//! Replenishment and stock running together, with helpers that speak both APIs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use inventory_proto::replenishment::v1 as pb;
use inventory_proto::replenishment::v1::replenishment_service_client::ReplenishmentServiceClient;
use inventory_proto::stock::v1 as stock;
use inventory_testkit::{StockServer, TestDatabase, TestServer};
pub use inventory_testkit::{bad_fields, error_info, new_id};
use replenishment_service::ReplenishmentApp;
use tonic::transport::Channel;

/// POs under this total (in micros) are approved without a person.
pub const THRESHOLD: i64 = 1_000_000_000;

pub struct TestApp {
    pub client: ReplenishmentServiceClient<Channel>,
    pub server: TestServer,
    pub stock: StockServer,
    pub database: Arc<TestDatabase>,
    /// Where the 850s are dropped; removed with the app.
    pub drop_dir: PathBuf,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.drop_dir);
    }
}

/// A product in a warehouse with a supplier offering it.
pub struct Setup {
    pub product_id: String,
    pub warehouse_id: String,
    pub supplier_id: String,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(vars: &[(&str, &str)]) -> Self {
        let database = Arc::new(TestDatabase::create().await);
        let stock = StockServer::spawn_on(database.clone(), &[]).await;
        let drop_dir = std::env::temp_dir().join(format!("edi-{}", new_id()));
        let server = Self::replenishment(&database, &stock, &drop_dir, vars).await;
        let client = ReplenishmentServiceClient::new(server.channel().await);
        Self {
            client,
            server,
            stock,
            database,
            drop_dir,
        }
    }

    /// Starts (again) a replenishment service on the app's database, as a restart would.
    pub async fn restart(&mut self) {
        self.server.stop().await;
        self.server = Self::replenishment(&self.database, &self.stock, &self.drop_dir, &[]).await;
        self.client = ReplenishmentServiceClient::new(self.server.channel().await);
    }

    pub async fn replenishment(
        database: &Arc<TestDatabase>,
        stock: &StockServer,
        drop_dir: &std::path::Path,
        vars: &[(&str, &str)],
    ) -> TestServer {
        let url = stock.url();
        let dir = drop_dir.display().to_string();
        let threshold = THRESHOLD.to_string();
        let vars: Vec<(&str, &str)> = [
            ("STOCK_URL", url.as_str()),
            ("EDI_DROP_DIR", dir.as_str()),
            ("OUTBOX_POLL_MS", "100"),
            ("AUTO_APPROVE_BELOW_MICROS", threshold.as_str()),
        ]
        .into_iter()
        .chain(vars.iter().copied())
        .collect();
        TestServer::spawn::<ReplenishmentApp>(database.clone(), &vars).await
    }

    pub async fn warehouse(&self, name: &str) -> String {
        self.stock.create_warehouse(name, (52.52, 13.405)).await
    }

    pub async fn product(&self, sku: &str) -> String {
        self.stock.create_product(sku).await
    }

    pub async fn supplier(&self, name: &str, edi_id: &str) -> String {
        self.client
            .clone()
            .create_supplier(pb::CreateSupplierRequest {
                request_id: new_id(),
                name: name.to_owned(),
                channel: pb::SupplierChannel::Edi.into(),
                edi_qualifier: "ZZ".to_owned(),
                edi_id: edi_id.to_owned(),
                default_lead_time_days: 7,
                api_endpoint: String::new(),
            })
            .await
            .expect("create supplier")
            .into_inner()
            .supplier
            .expect("supplier")
            .supplier_id
    }

    pub async fn offer(
        &self,
        supplier_id: &str,
        product_id: &str,
        unit_cost_micros: i64,
        pack_multiple: i64,
    ) -> Result<pb::SupplierOffer, tonic::Status> {
        Ok(self
            .client
            .clone()
            .set_supplier_offer(pb::SetSupplierOfferRequest {
                request_id: new_id(),
                offer: Some(pb::SupplierOffer {
                    supplier_id: supplier_id.to_owned(),
                    product_id: product_id.to_owned(),
                    unit_cost_micros,
                    minimum_order_quantity: 1,
                    pack_multiple,
                    lead_time_days: 5,
                    supplier_part_number: "ACME-1".to_owned(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner()
            .offer
            .expect("offer"))
    }

    /// A product in a new warehouse, offered at 2.50 a unit by one supplier.
    pub async fn setup(&self) -> Setup {
        let product_id = self.product(&format!("SKU-{}", new_id())).await;
        let warehouse_id = self.warehouse("Berlin").await;
        let supplier_id = self.supplier("Acme", "ACME").await;
        self.offer(&supplier_id, &product_id, 2_500_000, 1)
            .await
            .expect("offer");
        Setup {
            product_id,
            warehouse_id,
            supplier_id,
        }
    }

    pub async fn create_po(
        &self,
        setup: &Setup,
        quantity: i64,
    ) -> Result<pb::PurchaseOrder, tonic::Status> {
        self.create_po_with(pb::CreatePurchaseOrderRequest {
            request_id: new_id(),
            product_id: setup.product_id.clone(),
            warehouse_id: setup.warehouse_id.clone(),
            quantity,
            supplier_id: String::new(),
            actor: "buyer@example.com".to_owned(),
        })
        .await
    }

    pub async fn create_po_with(
        &self,
        request: pb::CreatePurchaseOrderRequest,
    ) -> Result<pb::PurchaseOrder, tonic::Status> {
        Ok(self
            .client
            .clone()
            .create_purchase_order(request)
            .await?
            .into_inner()
            .purchase_order
            .expect("purchase order"))
    }

    pub async fn get_po(&self, po_id: &str) -> pb::GetPurchaseOrderResponse {
        self.client
            .clone()
            .get_purchase_order(pb::GetPurchaseOrderRequest {
                po_id: po_id.to_owned(),
            })
            .await
            .expect("get purchase order")
            .into_inner()
    }

    /// Waits (up to 10 s) until the outbox has sent the PO.
    pub async fn sent(&self, po_id: &str) -> pb::PurchaseOrder {
        for _ in 0..200 {
            let po = self.get_po(po_id).await.purchase_order.expect("po");
            if po.status() == pb::PurchaseOrderStatus::Sent {
                return po;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("purchase order {po_id} was not sent within 10 s");
    }

    pub async fn approve(&self, po_id: &str) -> Result<pb::PurchaseOrder, tonic::Status> {
        Ok(self
            .client
            .clone()
            .approve_purchase_order(pb::ApprovePurchaseOrderRequest {
                request_id: new_id(),
                po_id: po_id.to_owned(),
                approver: "manager@example.com".to_owned(),
                note: "needed for the season".to_owned(),
            })
            .await?
            .into_inner()
            .purchase_order
            .expect("purchase order"))
    }

    pub async fn receive(
        &self,
        po_id: &str,
        receipt_id: &str,
        quantity: i64,
    ) -> Result<pb::ReceivePurchaseOrderResponse, tonic::Status> {
        Ok(self
            .client
            .clone()
            .receive_purchase_order(pb::ReceivePurchaseOrderRequest {
                receipt_id: receipt_id.to_owned(),
                po_id: po_id.to_owned(),
                quantity,
                lot: "LOT-7".to_owned(),
                actor: "dock-3".to_owned(),
            })
            .await?
            .into_inner())
    }

    /// On hand in stock (0 when stock has no row yet).
    pub async fn on_hand(&self, product_id: &str, warehouse_id: &str) -> i64 {
        self.stock
            .level(product_id, warehouse_id)
            .await
            .map_or(0, |(on_hand, _)| on_hand)
    }

    /// The 850 files in the drop directory, by name.
    pub fn documents(&self) -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = std::fs::read_dir(&self.drop_dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".x12"))
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            std::fs::read_to_string(e.path()).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found
    }

    pub async fn assert_ledger_clean(&self) {
        self.stock.assert_ledger_clean().await;
    }
}

/// The elements of every segment of an X12 document named `id`.
pub fn segments<'a>(document: &'a str, id: &str) -> Vec<Vec<&'a str>> {
    document
        .split('~')
        .map(|s| s.split('*').collect::<Vec<_>>())
        .filter(|e| e.first() == Some(&id))
        .collect()
}

impl TestApp {
    /// Receives `quantity` into stock (not against a PO).
    pub async fn stock_up(&self, setup: &Setup, quantity: i64) {
        self.stock
            .receive(
                &setup.product_id,
                &setup.warehouse_id,
                quantity,
                "opening stock",
            )
            .await;
    }

    /// Reserves and ships `quantity` for a new order: one SHIP in stock's log.
    pub async fn ship(&self, setup: &Setup, quantity: i64) {
        let order_id = new_id();
        let mut client = self.stock.client.clone();
        client
            .reserve_stock(stock::ReserveStockRequest {
                request_id: new_id(),
                order_id: order_id.clone(),
                line: Some(stock::ReservationLine {
                    order_line_id: "1".to_owned(),
                    product_id: setup.product_id.clone(),
                    warehouse_id: setup.warehouse_id.clone(),
                    quantity,
                }),
                expire_time: None,
                actor: "test".to_owned(),
            })
            .await
            .expect("reserve");
        client
            .ship_reservation(stock::ShipReservationRequest {
                request_id: new_id(),
                order_id,
                order_line_id: "1".to_owned(),
                warehouse_id: setup.warehouse_id.clone(),
                quantity,
                actor: "test".to_owned(),
            })
            .await
            .expect("ship");
    }

    pub async fn policy(&self, setup: &Setup) -> pb::GetReorderPolicyResponse {
        self.client
            .clone()
            .get_reorder_policy(pb::GetReorderPolicyRequest {
                product_id: setup.product_id.clone(),
                warehouse_id: setup.warehouse_id.clone(),
            })
            .await
            .expect("get policy")
            .into_inner()
    }

    /// Waits (up to 10 s) until the feed has brought the pair's available to `available`.
    pub async fn feed_shows(&self, setup: &Setup, available: i64) {
        for _ in 0..200 {
            if self.policy(setup).await.quantity_available == available {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the feed never showed {available} available");
    }

    pub async fn set_fixed_policy(&self, setup: &Setup, point: i64, quantity: i64) {
        self.client
            .clone()
            .set_reorder_policy(pb::SetReorderPolicyRequest {
                request_id: new_id(),
                product_id: setup.product_id.clone(),
                warehouse_id: setup.warehouse_id.clone(),
                source: pb::PolicySource::Fixed.into(),
                reorder_point: point,
                reorder_quantity: quantity,
                service_level: 0.0,
                actor: "buyer@example.com".to_owned(),
            })
            .await
            .expect("set policy");
    }

    pub async fn scan(&self, dry_run: bool) -> pb::RunReorderScanResponse {
        self.client
            .clone()
            .run_reorder_scan(pb::RunReorderScanRequest { dry_run })
            .await
            .expect("scan")
            .into_inner()
    }

    pub async fn purchase_orders(&self) -> Vec<pb::PurchaseOrder> {
        self.client
            .clone()
            .list_purchase_orders(pb::ListPurchaseOrdersRequest::default())
            .await
            .expect("list")
            .into_inner()
            .purchase_orders
    }
}
