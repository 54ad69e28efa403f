//! The services together: stock through the shared client, a feed consumer across a stock
//! restart, and the four services as one system (the story and the demo, traced).

mod feed;
mod observability;
mod postgres_restart;
mod roles;
mod security;
mod startup;
mod stock_client;
mod story;
mod traces;

use inventory_runtime::Settings;
use inventory_stock_client::{GrpcStockClient, pb};
use inventory_testkit::{StockServer, new_id};

/// The shared client, with its default deadline and retries, pointed at `stock`.
pub fn shared_client(stock: &StockServer) -> GrpcStockClient {
    let settings = Settings::defaults().overlay([("STOCK_URL", stock.url())]);
    GrpcStockClient::from_settings(&settings, inventory_runtime::Role::Allocation).expect("client")
}

/// A product (MUG-1) and a warehouse (Berlin), made through stock's own API.
pub async fn catalog(stock: &StockServer) -> (String, String) {
    let mut admin = stock.client.clone();
    let product = admin
        .create_product(pb::CreateProductRequest {
            request_id: new_id(),
            product: Some(pb::Product {
                sku: "MUG-1".to_owned(),
                name: "Mug".to_owned(),
                unit_of_measure: "each".to_owned(),
                ..Default::default()
            }),
        })
        .await
        .expect("product")
        .into_inner()
        .product
        .expect("product")
        .product_id;
    let warehouse = admin
        .create_warehouse(pb::CreateWarehouseRequest {
            request_id: new_id(),
            warehouse: Some(pb::Warehouse {
                name: "Berlin".to_owned(),
                r#type: pb::WarehouseType::Fulfillment.into(),
                location: Some(pb::GeoPoint {
                    latitude: 52.52,
                    longitude: 13.40,
                }),
                ..Default::default()
            }),
        })
        .await
        .expect("warehouse")
        .into_inner()
        .warehouse
        .expect("warehouse")
        .warehouse_id;
    (product, warehouse)
}
