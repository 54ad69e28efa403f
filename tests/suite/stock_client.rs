//! The shared stock client against a real stock service: typed refusals a caller can
//! re-plan on, batched availability, and the ledger check.

use inventory_stock_client::{GrpcStockClient, StockClient, StockError, pb};
use inventory_testkit::{StockServer, new_id};

use crate::{catalog, shared_client};

async fn stocked(stock: &StockServer, on_hand: i64) -> (GrpcStockClient, String, String) {
    let (product, warehouse) = catalog(stock).await;
    let client = shared_client(stock);
    client
        .receive(pb::ReceiveStockRequest {
            request_id: new_id(),
            product_id: product.clone(),
            warehouse_id: warehouse.clone(),
            quantity: on_hand,
            reference_id: "PO-1".to_owned(),
            actor: "suite".to_owned(),
        })
        .await
        .expect("receive");
    (client, product, warehouse)
}

fn order(product: &str, warehouse: &str, quantity: i64) -> pb::ReserveOrderRequest {
    pb::ReserveOrderRequest {
        request_id: new_id(),
        order_id: format!("order-{}", new_id()),
        lines: vec![pb::ReservationLine {
            order_line_id: "1".to_owned(),
            product_id: product.to_owned(),
            warehouse_id: warehouse.to_owned(),
            quantity,
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn an_order_beyond_what_is_available_is_refused_with_the_numbers_to_replan_on() {
    let stock = StockServer::spawn(&[]).await;
    let (client, product, warehouse) = stocked(&stock, 3).await;
    let error = client
        .reserve_order(order(&product, &warehouse, 5))
        .await
        .expect_err("only 3 on hand");
    assert_eq!(
        error,
        StockError::InsufficientStock {
            product_id: product.clone(),
            warehouse_id: warehouse.clone(),
            requested: 5,
            available: 3,
        }
    );
    client
        .reserve_order(order(&product, &warehouse, 3))
        .await
        .expect("all 3 can be held");
}

#[tokio::test]
async fn availability_of_many_pairs_comes_in_one_call_and_the_ledger_stays_clean() {
    let stock = StockServer::spawn(&[]).await;
    let (client, product, warehouse) = stocked(&stock, 10).await;
    client
        .reserve_order(order(&product, &warehouse, 4))
        .await
        .expect("reserve");
    let availability = client
        .batch_get_availability(vec![pb::InventoryKey {
            product_id: product,
            warehouse_id: warehouse,
        }])
        .await
        .expect("availability");
    assert_eq!(availability.len(), 1);
    assert_eq!(
        (
            availability[0].quantity_on_hand,
            availability[0].quantity_reserved,
            availability[0].quantity_available
        ),
        (10, 4, 6)
    );
    let ledger = client.check_ledger().await.expect("ledger");
    assert!(ledger.drifts.is_empty(), "{:?}", ledger.drifts);
}
