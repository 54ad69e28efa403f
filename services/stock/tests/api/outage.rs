//! PostgreSQL going away under load, as in a restart or a failover: the service reports
//! NOT_SERVING while it cannot reach the database, recovers on its own once it is back, and
//! loses no movement it acknowledged (nor applies any twice when callers retry what got no
//! answer). The database is cut off by a proxy between the service and PostgreSQL: every
//! open connection dropped, new ones closed, as a restart does from the service's side.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::helpers::{TestApp, TestDatabase, new_id};
use inventory_proto::stock::v1 as pb;
use inventory_testkit::{FaultyProxy, contract};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

/// Receipts (request, answered) sent by one client until `stop`.
async fn receive_until(
    app: &TestApp,
    product: String,
    warehouse: String,
    stop: Arc<AtomicBool>,
) -> Vec<(pb::ReceiveStockRequest, Result<(), tonic::Status>)> {
    let mut client = app.client.clone();
    let mut sent = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let request = pb::ReceiveStockRequest {
            request_id: new_id(),
            product_id: product.clone(),
            warehouse_id: warehouse.clone(),
            quantity: 1,
            ..Default::default()
        };
        let answer = client.receive_stock(request.clone()).await.map(|_| ());
        if answer.is_err() {
            // Not a busy loop while the database is away.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sent.push((request, answer));
    }
    sent
}

async fn wait_for_health(app: &TestApp, wanted: ServingStatus) {
    let answer = contract::wait_for_status(
        &app.server.url(),
        pb::SERVICE_NAME,
        wanted,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        answer.ok(),
        Some(wanted),
        "health never reported {wanted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_postgres_gone_mid_load_the_service_is_not_serving_recovers_and_loses_nothing() {
    let database = Arc::new(TestDatabase::create().await);
    let (_, after_scheme) = database.url.split_once('@').expect("a URL with a user");
    let (server, _) = after_scheme.split_once('/').expect("a URL with a database");
    let proxy = FaultyProxy::start(server.parse().expect("host:port of PostgreSQL")).await;
    let url = database.url.replacen(server, &proxy.addr.to_string(), 1);
    let app = Arc::new(TestApp::spawn_on(database, &[("DATABASE_URL", url.as_str())]).await);
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    wait_for_health(&app, ServingStatus::Serving).await;

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (app, p, w, stop) = (app.clone(), p.clone(), w.clone(), stop.clone());
            tokio::spawn(async move { receive_until(&app, p, w, stop).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    wait_for_health(&app, ServingStatus::NotServing).await;
    proxy.restore();
    wait_for_health(&app, ServingStatus::Serving).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut sent = Vec::new();
    for client in clients {
        sent.extend(client.await.expect("client"));
    }

    let acknowledged = sent.iter().filter(|(_, a)| a.is_ok()).count();
    let unanswered: Vec<&pb::ReceiveStockRequest> = sent
        .iter()
        .filter(|(_, a)| a.is_err())
        .map(|(r, _)| r)
        .collect();
    assert!(
        acknowledged > 0 && !unanswered.is_empty(),
        "the load ran on both sides of the outage: {acknowledged} answered, {} not",
        unanswered.len()
    );
    for (_, answer) in &sent {
        if let Err(status) = answer {
            assert_eq!(
                status.code(),
                Code::Unavailable,
                "a caller is told to retry: {status:?}"
            );
        }
    }
    // What got no answer may or may not have been applied: the same request again settles
    // it, once.
    for request in unanswered {
        app.client
            .clone()
            .receive_stock(request.clone())
            .await
            .expect("a retry once the database is back");
    }
    let total = i64::try_from(sent.len()).expect("count");
    assert_eq!(app.inventory(&p, &w).await.quantity_on_hand, total);
    assert_eq!(
        app.count("SELECT count(DISTINCT request_id) FROM inventory_transactions")
            .await,
        total,
        "one log row per request"
    );
    assert_eq!(app.transaction_count().await, total);
    app.assert_ledger_clean().await;
}
