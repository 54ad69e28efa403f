//! Callers that give up mid-request cancel replenishment's work at any point: none may leave
//! a pooled connection inside a transaction or make the database warn about transaction
//! state, and every later request is served.

use std::time::Duration;

use inventory_testkit::cancel::{
    TransactionWarnings, assert_nothing_left_in_a_transaction, cancel_at_random_points,
};

use inventory_proto::replenishment::v1 as pb;

use crate::helpers::{TestApp, new_id};

fn offer(supplier_id: &str, product_id: &str, i: usize) -> pb::SetSupplierOfferRequest {
    pb::SetSupplierOfferRequest {
        request_id: new_id(),
        offer: Some(pb::SupplierOffer {
            supplier_id: supplier_id.to_owned(),
            product_id: product_id.to_owned(),
            unit_cost_micros: 2_500_000 + i as i64,
            minimum_order_quantity: 1,
            pack_multiple: 1,
            lead_time_days: 5,
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn requests_cancelled_at_random_points_leave_no_connection_in_a_transaction() {
    let warnings = TransactionWarnings::capture();
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 1_000_000).await.expect("a large PO");
    app.approve(&po.po_id).await.expect("approved");
    app.sent(&po.po_id).await;

    let (calls, dropped) =
        cancel_at_random_points(Duration::from_secs(3), Duration::from_millis(4), |i| {
            let (app, setup, po) = (&app, &setup, &po.po_id);
            async move {
                if i % 2 == 0 {
                    // One open PO per product and warehouse: this one is refused, after
                    // its transaction read what is open.
                    let _ = app.create_po(setup, 10).await;
                } else if i % 4 == 1 {
                    let _ = app
                        .client
                        .clone()
                        .set_supplier_offer(offer(&setup.supplier_id, &setup.product_id, i))
                        .await;
                } else {
                    let _ = app.receive(po, &new_id(), 1).await;
                }
            }
        })
        .await;
    assert!(
        dropped > calls / 4,
        "most calls were cut: {dropped} of {calls}"
    );

    for i in 0..20 {
        app.client
            .clone()
            .set_supplier_offer(offer(&setup.supplier_id, &setup.product_id, i))
            .await
            .expect("offer set after");
        app.receive(&po.po_id, &new_id(), 1)
            .await
            .expect("received after");
    }
    assert_nothing_left_in_a_transaction(&app.database, &warnings).await;
    app.assert_ledger_clean().await;
}
