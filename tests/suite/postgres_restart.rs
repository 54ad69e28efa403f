//! A real PostgreSQL crashed and restarted under load: a private server of the test's own
//! (initdb on a free port, fsync on), stopped in `immediate` mode (no checkpoint, every
//! connection cut, recovery from the write-ahead log at the next start) while eight clients
//! receive stock. Stock reports NOT_SERVING while it is down, SERVING again on its own, and
//! every movement it acknowledged is there afterwards, none twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use inventory_proto::stock::v1 as pb;
use inventory_proto::stock::v1::stock_service_client::StockServiceClient;
use inventory_suite::database::{postgres_programs, start_private};
use inventory_testkit::{StockServer, TestDatabase, contract, new_id};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

/// Receipts of one unit each, sent until `stop`: every request with its answer.
async fn receive_until(
    mut client: StockServiceClient<Channel>,
    product: String,
    warehouse: String,
    stop: Arc<AtomicBool>,
) -> Vec<(pb::ReceiveStockRequest, Result<(), tonic::Status>)> {
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
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sent.push((request, answer));
    }
    sent
}

async fn wait_for(stock: &StockServer, wanted: ServingStatus) {
    let answer = contract::wait_for_status(
        &stock.url(),
        pb::SERVICE_NAME,
        wanted,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        answer.ok(),
        Some(wanted),
        "health never reported {wanted:?}"
    );
}

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
    wait_for(&stock, ServingStatus::Serving).await;

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let client = stock.client.clone();
            let (p, w, stop) = (product.clone(), warehouse.clone(), stop.clone());
            tokio::spawn(receive_until(client, p, w, stop))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.crash().await;
    wait_for(&stock, ServingStatus::NotServing).await;
    let restarted = start_private(&programs, &data_dir, port)
        .await
        .expect("PostgreSQL starts again, recovering from its log");
    wait_for(&stock, ServingStatus::Serving).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
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
        "the load ran on both sides of the crash: {acknowledged} answered, {} not",
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
    // What got no answer may or may not have committed before the crash: the same request
    // again settles it, once. What was acknowledged is not retried: it must have survived.
    for request in unanswered {
        stock
            .client
            .clone()
            .receive_stock(request.clone())
            .await
            .expect("a retry once the database is back");
    }
    let total = i64::try_from(sent.len()).expect("count");
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
