//! `kill -9` at each step that crosses into stock, then the same request again on a
//! restarted process: the order ends up held exactly once (no reservation lost, none
//! doubled) and stock's ledger replays clean. The process stops at a failpoint, so the kill
//! lands exactly there.

use std::sync::Arc;

use crate::helpers::{MUNICH, POTSDAM, order, sources};
use inventory_proto::allocation::v1 as pb;
use inventory_proto::stock::v1 as stock;
use inventory_testkit::{ServiceProcess, StockServer, TestDatabase};
use pb::allocation_service_client::AllocationServiceClient;

const BINARY: &str = env!("CARGO_BIN_EXE_fulfillment-allocation-service");

async fn allocation(
    database: &TestDatabase,
    stock: &StockServer,
    failpoints: &str,
) -> ServiceProcess {
    let url = stock.url();
    ServiceProcess::start(
        BINARY,
        pb::SERVICE_NAME,
        database,
        &[
            ("STOCK_URL", url.as_str()),
            ("WAREHOUSE_REFRESH_MS", "0"),
            ("FAILPOINTS", failpoints),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_plan_and_reserve_the_retry_allocates_once() {
    crash_and_retry("allocation.before_reserve").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_reserve_and_storing_the_retry_adopts_the_hold_once() {
    crash_and_retry("allocation.after_reserve").await;
}

async fn crash_and_retry(failpoint: &str) {
    let database = Arc::new(TestDatabase::create().await);
    let stock = StockServer::spawn_on(database.clone(), &[]).await;
    let potsdam = stock.create_warehouse("Potsdam", POTSDAM).await;
    let munich = stock.create_warehouse("Munich", MUNICH).await;
    let (a, b) = (
        stock.create_product("A").await,
        stock.create_product("B").await,
    );
    stock.receive(&a, &potsdam, 5, "PO-1").await;
    stock.receive(&b, &munich, 5, "PO-1").await;
    // No warehouse has both: the order is held in two, by one ReserveOrder.
    let request = order("order-1", &[("1", &a, 2), ("2", &b, 3)]);

    let crashing = allocation(&database, &stock, failpoint).await;
    let mut client = AllocationServiceClient::new(crashing.channel().await);
    let call = tokio::spawn({
        let request = request.clone();
        async move { client.allocate_order(request).await }
    });
    crashing.reached(failpoint).await;
    drop(crashing);
    assert!(
        call.await.expect("join").is_err(),
        "a process killed mid-request answers nothing"
    );

    let restarted = allocation(&database, &stock, "").await;
    let mut client = AllocationServiceClient::new(restarted.channel().await);
    let allocated = client
        .allocate_order(request.clone())
        .await
        .expect("the retry completes")
        .into_inner()
        .allocation
        .expect("allocation");
    let mut expected = vec![
        ("1".to_owned(), potsdam.clone(), 2),
        ("2".to_owned(), munich.clone(), 3),
    ];
    expected.sort();
    assert_eq!(sources(&allocated), expected);
    let replayed = client
        .allocate_order(request)
        .await
        .expect("a second retry replays")
        .into_inner()
        .allocation
        .expect("allocation");
    assert_eq!(replayed, allocated);

    assert_eq!(stock.level(&a, &potsdam).await, Some((5, 2)));
    assert_eq!(stock.level(&b, &munich).await, Some((5, 3)));
    let held = stock
        .client
        .clone()
        .list_reservations(stock::ListReservationsRequest {
            order_id: "order-1".to_owned(),
            ..Default::default()
        })
        .await
        .expect("reservations")
        .into_inner()
        .reservations;
    assert_eq!(held.len(), 2, "one hold per line, none doubled: {held:?}");
    stock.assert_ledger_clean().await;
}
