//! Callers that give up mid-request cancel reconciliation's work at any point: none may leave
//! a pooled connection inside a transaction or make the database warn about transaction
//! state, and every later request is served.

use std::time::Duration;

use inventory_proto::reconciliation::v1 as pb;
use inventory_testkit::cancel::{
    TransactionWarnings, assert_nothing_left_in_a_transaction, cancel_at_random_points,
};

use crate::helpers::{TestApp, new_id};

fn new_task(warehouse: &str, products: &[String]) -> pb::CreateCountTaskRequest {
    pb::CreateCountTaskRequest {
        request_id: new_id(),
        warehouse_id: warehouse.to_owned(),
        location: String::new(),
        product_ids: products.to_vec(),
        blind: true,
        actor: "planner".into(),
    }
}

#[tokio::test]
async fn requests_cancelled_at_random_points_leave_no_connection_in_a_transaction() {
    let warnings = TransactionWarnings::capture();
    let app = TestApp::spawn().await;
    let w = app.warehouse("Munich").await;
    let products = vec![app.product("A", 1_000).await, app.product("B", 1_000).await];
    for p in &products {
        app.stocked(p, &w, 100).await;
    }
    let task = app
        .create_task(&w, &[products[0].as_str(), products[1].as_str()], true)
        .await;

    let (calls, dropped) =
        cancel_at_random_points(Duration::from_secs(3), Duration::from_millis(4), |i| {
            let (app, mut client, w, products, task) = (
                &app,
                app.client(),
                w.clone(),
                &products,
                task.task_id.clone(),
            );
            async move {
                if i % 2 == 0 {
                    let _ = client.create_count_task(new_task(&w, products)).await;
                } else {
                    let _ = app
                        .submit(&task, "counter-1", &[(products[0].as_str(), 100)])
                        .await;
                }
            }
        })
        .await;
    assert!(
        dropped > calls / 4,
        "most calls were cut: {dropped} of {calls}"
    );

    for _ in 0..20 {
        app.client()
            .create_count_task(new_task(&w, &products))
            .await
            .expect("created after");
        app.submit(&task.task_id, "counter-1", &[(products[1].as_str(), 100)])
            .await
            .expect("submitted after");
    }
    assert_nothing_left_in_a_transaction(&app.database, &warnings).await;
}
