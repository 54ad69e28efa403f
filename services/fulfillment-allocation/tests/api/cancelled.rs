//! Callers that give up mid-request cancel allocation's work (and, through it, stock's) at
//! any point: none may leave a pooled connection inside a transaction or make the database
//! warn about transaction state, and every later order is allocated.

use std::time::Duration;

use inventory_testkit::cancel::{
    TransactionWarnings, assert_nothing_left_in_a_transaction, cancel_at_random_points,
};

use crate::helpers::{BERLIN, TestApp, order};

#[tokio::test]
async fn requests_cancelled_at_random_points_leave_no_connection_in_a_transaction() {
    let warnings = TransactionWarnings::capture();
    let app = TestApp::spawn().await;
    let w = app.warehouse("Berlin", BERLIN).await;
    let (a, b) = (app.product("A").await, app.product("B").await);
    app.receive(&a, &w, 1_000_000).await;
    app.receive(&b, &w, 1_000_000).await;

    let (calls, dropped) =
        cancel_at_random_points(Duration::from_secs(3), Duration::from_millis(6), |i| {
            let (app, a, b) = (&app, a.clone(), b.clone());
            async move {
                let id = format!("o-{i}");
                if i % 3 == 2 {
                    let _ = app.cancel(&format!("o-{}", i - 1)).await;
                } else {
                    let _ = app
                        .allocate(order(&id, &[("1", &a, 1), ("2", &b, 2)]))
                        .await;
                }
            }
        })
        .await;
    assert!(
        dropped > calls / 4,
        "most calls were cut: {dropped} of {calls}"
    );

    for i in 0..20 {
        app.allocate(order(&format!("after-{i}"), &[("1", &a, 1), ("2", &b, 1)]))
            .await
            .expect("allocated after");
    }
    assert_nothing_left_in_a_transaction(&app.server.database, &warnings).await;
    app.assert_ledger_clean().await;
}
