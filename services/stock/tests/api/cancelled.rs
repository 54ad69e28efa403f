//! Callers that give up mid-request (a deadline, a hang-up) cancel the service's work at any
//! point: none may leave a pooled connection inside a transaction, none may make the database
//! warn about transaction state, and every later request is served.

use std::time::Duration;

use inventory_proto::stock::v1 as pb;
use inventory_testkit::cancel::{
    TransactionWarnings, assert_nothing_left_in_a_transaction, cancel_at_random_points,
};

use crate::helpers::{TestApp, new_id};

async fn cancelled_at_random_points_then_served(app: &TestApp, warnings: &TransactionWarnings) {
    let w = app.warehouse("A").await;
    let products = [app.product("HOT").await, app.product("COLD").await];
    for p in &products {
        app.receive(p, &w, 1_000_000).await;
    }
    let (calls, dropped) =
        cancel_at_random_points(Duration::from_secs(3), Duration::from_millis(3), |i| {
            let (p, w, products) = (products[i % 2].clone(), w.clone(), &products);
            async move {
                let order = format!("o-{i}");
                match i % 4 {
                    0 => app.receive_stock(receive(&p, &w)).await.map(drop),
                    1 => app.reserve(&order, &p, &w, 1).await.map(drop),
                    2 => app
                        .reserve_order(pb::ReserveOrderRequest {
                            request_id: new_id(),
                            order_id: order,
                            lines: products
                                .iter()
                                .enumerate()
                                .map(|(n, p)| line(&n.to_string(), p, &w))
                                .collect(),
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                    _ => app
                        .list_transactions(pb::ListTransactionsRequest {
                            page_size: 50,
                            ..Default::default()
                        })
                        .await
                        .map(drop),
                }
            }
        })
        .await;
    assert!(
        dropped > calls / 4,
        "most calls were cut: {dropped} of {calls}"
    );

    // Every later request is served, on every connection of the pool.
    for i in 0..40 {
        let p = &products[i % 2];
        app.receive_stock(receive(p, &w))
            .await
            .expect("receive after");
        app.reserve(&format!("after-{i}"), p, &w, 1)
            .await
            .expect("reserve after");
        app.list_transactions(pb::ListTransactionsRequest::default())
            .await
            .expect("list after");
    }
    assert_nothing_left_in_a_transaction(&app.database, warnings).await;
    app.assert_ledger_clean().await;
}

fn receive(product_id: &str, warehouse_id: &str) -> pb::ReceiveStockRequest {
    pb::ReceiveStockRequest {
        request_id: new_id(),
        product_id: product_id.to_owned(),
        warehouse_id: warehouse_id.to_owned(),
        quantity: 1,
        ..Default::default()
    }
}

fn line(order_line_id: &str, product_id: &str, warehouse_id: &str) -> pb::ReservationLine {
    pb::ReservationLine {
        order_line_id: order_line_id.to_owned(),
        product_id: product_id.to_owned(),
        warehouse_id: warehouse_id.to_owned(),
        quantity: 1,
    }
}

#[tokio::test]
async fn requests_cancelled_at_random_points_leave_no_connection_in_a_transaction() {
    let warnings = TransactionWarnings::capture();
    let app = TestApp::spawn().await;
    cancelled_at_random_points_then_served(&app, &warnings).await;
}

#[tokio::test]
async fn uncoalesced_requests_cancelled_at_random_points_leave_no_connection_in_a_transaction() {
    let warnings = TransactionWarnings::capture();
    let app = TestApp::spawn_uncoalesced().await;
    cancelled_at_random_points_then_served(&app, &warnings).await;
}
