//! PostgreSQL going away under load, as in a restart or a failover: the service reports
//! NOT_SERVING while it cannot reach the database, recovers on its own once it is back, and
//! loses no movement it acknowledged (nor applies any twice when callers retry what got no
//! answer). The database is cut off by a proxy between the service and PostgreSQL: every
//! open connection dropped, new ones closed, as a restart does from the service's side.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{TestApp, TestDatabase};
use inventory_proto::stock::v1 as pb;
use inventory_testkit::{FaultyProxy, ReceiptLoad, contract};
use tonic_health::pb::health_check_response::ServingStatus;

/// A service whose every database connection goes through a proxy the test can cut.
async fn app_behind_proxy() -> (TestApp, FaultyProxy) {
    let database = Arc::new(TestDatabase::create().await);
    let (_, after_scheme) = database.url.split_once('@').expect("a URL with a user");
    let (server, _) = after_scheme.split_once('/').expect("a URL with a database");
    let proxy = FaultyProxy::start(server.parse().expect("host:port of PostgreSQL")).await;
    let url = database.url.replacen(server, &proxy.addr.to_string(), 1);
    let app = TestApp::spawn_on(database, &[("DATABASE_URL", url.as_str())]).await;
    (app, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_postgres_gone_mid_load_the_service_is_not_serving_recovers_and_loses_nothing() {
    let (app, proxy) = app_behind_proxy().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    contract::expect_status(&app.server, pb::SERVICE_NAME, ServingStatus::Serving).await;

    let load = ReceiptLoad::start(&app.client, &p, &w, 8);
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    contract::expect_status(&app.server, pb::SERVICE_NAME, ServingStatus::NotServing).await;
    proxy.restore();
    contract::expect_status(&app.server, pb::SERVICE_NAME, ServingStatus::Serving).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let total = load.settle(&app.client).await;
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

/// Right after every database connection was cut (a restart or failover), with nothing in
/// between, requests succeed: the service's connections are tested before they are handed
/// out. A pool handing out a dead connection answered the first calls UNAVAILABLE. The
/// reservation lane keeps its connection for a moment after its last batch, so it often
/// still holds a dead one here: that batch fails and its request runs on the one-request
/// path.
#[tokio::test]
async fn requests_right_after_every_connection_was_cut_succeed() {
    let (app, proxy) = app_behind_proxy().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 50).await;
    for i in 0..4 {
        app.reserve(&format!("o-{i}"), &p, &w, 1)
            .await
            .expect("reserve before the cut");
    }

    proxy.cut();
    while proxy.open_connections() > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    proxy.restore();
    for i in 4..10 {
        app.reserve(&format!("o-{i}"), &p, &w, 1)
            .await
            .expect("a reservation right after the cut");
        app.receive_stock(crate::helpers::receive_request(&p, &w, 1))
            .await
            .expect("a receipt right after the cut");
    }
    let row = app.inventory(&p, &w).await;
    assert_eq!((row.quantity_on_hand, row.quantity_reserved), (56, 10));
    app.assert_ledger_clean().await;
}
