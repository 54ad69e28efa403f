//! Allocation and stock running together, with helpers that speak both APIs.

use std::sync::Arc;

use fulfillment_allocation_service::AllocationApp;
use inventory_proto::allocation::v1 as pb;
use inventory_proto::allocation::v1::allocation_service_client::AllocationServiceClient;
use inventory_proto::stock::v1 as stock;
use inventory_testkit::{StockServer, TestDatabase, TestServer};
pub use inventory_testkit::{bad_fields, new_id};
use tonic::transport::Channel;

/// Berlin, where most test orders go.
pub const BERLIN: (f64, f64) = (52.52, 13.405);
pub const POTSDAM: (f64, f64) = (52.39, 13.065);
pub const MUNICH: (f64, f64) = (48.137, 11.575);
pub const HAMBURG: (f64, f64) = (53.551, 9.994);

pub struct TestApp {
    pub client: AllocationServiceClient<Channel>,
    pub server: TestServer,
    pub stock: StockServer,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(&[]).await
    }

    pub async fn spawn_with(vars: &[(&str, &str)]) -> Self {
        let database = Arc::new(TestDatabase::create().await);
        let stock = StockServer::spawn_on(database.clone(), &[]).await;
        let url = stock.url();
        let vars: Vec<(&str, &str)> = [("STOCK_URL", url.as_str()), ("WAREHOUSE_REFRESH_MS", "0")]
            .into_iter()
            .chain(vars.iter().copied())
            .collect();
        let server = TestServer::spawn::<AllocationApp>(database, &vars).await;
        let client = AllocationServiceClient::new(server.channel().await);
        Self {
            client,
            server,
            stock,
        }
    }

    /// The app around a service started elsewhere (with its own settings) and its stock.
    pub async fn around(server: TestServer, stock: StockServer) -> Self {
        let client = AllocationServiceClient::new(server.channel().await);
        Self {
            client,
            server,
            stock,
        }
    }

    pub async fn warehouse(&self, name: &str, location: (f64, f64)) -> String {
        self.stock.create_warehouse(name, location).await
    }

    pub async fn product(&self, sku: &str) -> String {
        self.stock.create_product(sku).await
    }

    pub async fn receive(&self, product_id: &str, warehouse_id: &str, quantity: i64) {
        self.stock
            .receive(product_id, warehouse_id, quantity, "PO-1")
            .await;
    }

    /// (on hand, reserved) in stock.
    pub async fn stock_level(&self, product_id: &str, warehouse_id: &str) -> (i64, i64) {
        self.stock
            .level(product_id, warehouse_id)
            .await
            .expect("inventory row")
    }

    /// Every reservation stock holds for an order, whatever its status.
    pub async fn reservations(&self, order_id: &str) -> Vec<stock::Reservation> {
        self.stock
            .client
            .clone()
            .list_reservations(stock::ListReservationsRequest {
                order_id: order_id.to_owned(),
                ..Default::default()
            })
            .await
            .expect("reservations")
            .into_inner()
            .reservations
    }

    pub async fn assert_ledger_clean(&self) {
        self.stock.assert_ledger_clean().await;
    }

    pub async fn allocate(
        &self,
        request: pb::AllocateOrderRequest,
    ) -> Result<pb::Allocation, tonic::Status> {
        let response = self.client.clone().allocate_order(request).await?;
        Ok(response.into_inner().allocation.expect("allocation"))
    }

    pub async fn get(&self, order_id: &str) -> Result<pb::Allocation, tonic::Status> {
        let response = self
            .client
            .clone()
            .get_allocation(pb::GetAllocationRequest {
                order_id: order_id.to_owned(),
            })
            .await?;
        Ok(response.into_inner().allocation.expect("allocation"))
    }

    pub async fn cancel(&self, order_id: &str) -> Result<pb::Allocation, tonic::Status> {
        let response = self
            .client
            .clone()
            .cancel_allocation(pb::CancelAllocationRequest {
                request_id: new_id(),
                order_id: order_id.to_owned(),
                reason: "customer cancelled".to_owned(),
                actor: "test".to_owned(),
            })
            .await?;
        Ok(response.into_inner().allocation.expect("allocation"))
    }

    pub async fn ship(
        &self,
        order_id: &str,
        warehouse_id: &str,
        lines: &[(&str, i64)],
    ) -> Result<pb::Allocation, tonic::Status> {
        let response = self
            .client
            .clone()
            .confirm_shipment(pb::ConfirmShipmentRequest {
                request_id: new_id(),
                order_id: order_id.to_owned(),
                warehouse_id: warehouse_id.to_owned(),
                lines: lines
                    .iter()
                    .map(|(id, quantity)| pb::ShipmentLineQuantity {
                        order_line_id: (*id).to_owned(),
                        quantity: *quantity,
                    })
                    .collect(),
                actor: "test".to_owned(),
            })
            .await?;
        Ok(response.into_inner().allocation.expect("allocation"))
    }

    pub async fn set_profile(
        &self,
        warehouse_id: &str,
        capacity_lines: Option<i64>,
        paused: bool,
    ) -> Result<pb::WarehouseProfile, tonic::Status> {
        let response = self
            .client
            .clone()
            .set_warehouse_profile(pb::SetWarehouseProfileRequest {
                request_id: new_id(),
                warehouse_id: warehouse_id.to_owned(),
                capacity_lines,
                paused,
            })
            .await?;
        Ok(response.into_inner().profile.expect("profile"))
    }
}

/// An order to Berlin with the given (line id, product, quantity) lines.
pub fn order(order_id: &str, lines: &[(&str, &str, i64)]) -> pb::AllocateOrderRequest {
    pb::AllocateOrderRequest {
        request_id: new_id(),
        order_id: order_id.to_owned(),
        destination: Some(pb::Destination {
            latitude: BERLIN.0,
            longitude: BERLIN.1,
            postal_code: "10117".to_owned(),
            country: "DE".to_owned(),
        }),
        lines: lines
            .iter()
            .map(|(id, product, quantity)| pb::OrderLine {
                order_line_id: (*id).to_owned(),
                product_id: (*product).to_owned(),
                quantity: *quantity,
            })
            .collect(),
        options: None,
        actor: "checkout".to_owned(),
    }
}

/// (order line id, warehouse id, quantity) of every source, sorted.
pub fn sources(allocation: &pb::Allocation) -> Vec<(String, String, i64)> {
    let mut all: Vec<(String, String, i64)> = allocation
        .lines
        .iter()
        .flat_map(|l| {
            l.sources
                .iter()
                .map(|s| (l.order_line_id.clone(), s.warehouse_id.clone(), s.quantity))
        })
        .collect();
    all.sort();
    all
}
