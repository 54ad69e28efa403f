//! A real PostgreSQL crashed and restarted under load: a private server of the test's own
//! (initdb on a free port, fsync on), stopped in `immediate` mode (no checkpoint, every
//! connection cut, recovery from the write-ahead log at the next start) while eight clients
//! receive stock. Stock reports NOT_SERVING while it is down, SERVING again on its own, and
//! every movement it acknowledged is there afterwards, none twice.

use std::sync::Arc;
use std::time::Duration;

use inventory_proto::stock::v1 as pb;
use inventory_suite::database::{postgres_programs, start_private};
use inventory_testkit::{ReceiptLoad, StockServer, TestDatabase, contract, new_id};
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_postgres_crashed_and_restarted_under_load_no_acknowledged_movement_is_lost() {
    let programs = postgres_programs().expect("PostgreSQL's programs (initdb, pg_ctl) installed");
    let data_dir = std::env::temp_dir().join(format!("inventory-pg-{}", new_id()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let server = start_private(&programs, &data_dir, port)
        .await
        .expect("a private PostgreSQL starts");
    let database = Arc::new(
        TestDatabase::create_on(
            &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            vec![],
        )
        .await,
    );
    let stock = StockServer::spawn_on(database.clone(), &[]).await;
    let product = stock.create_product("MUG-1").await;
    let warehouse = stock.create_warehouse("Berlin", (52.52, 13.405)).await;
    contract::expect_status(&stock.server, pb::SERVICE_NAME, ServingStatus::Serving).await;

    let load = ReceiptLoad::start(&stock.client, &product, &warehouse, 8);
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.crash().await;
    contract::expect_status(&stock.server, pb::SERVICE_NAME, ServingStatus::NotServing).await;
    let restarted = start_private(&programs, &data_dir, port)
        .await
        .expect("PostgreSQL starts again, recovering from its log");
    contract::expect_status(&stock.server, pb::SERVICE_NAME, ServingStatus::Serving).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total = load.settle(&stock.client).await;
    assert_eq!(stock.level(&product, &warehouse).await, Some((total, 0)));
    let mut connection = database.connect("stock").await;
    let (rows, requests): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT request_id) FROM inventory_transactions")
            .fetch_one(&mut connection)
            .await
            .expect("log counted");
    assert_eq!((rows, requests), (total, total), "one log row per request");
    stock.assert_ledger_clean().await;

    drop(connection);
    drop(stock);
    drop(database);
    restarted.stop().await;
    let _ = std::fs::remove_dir_all(&data_dir);
}
