//! A consumer following stock's feed through the shared consumer ends with exactly the
//! events stock wrote, across a restart of stock in the middle.

use std::sync::Arc;
use std::time::Duration;

use inventory_core::ServiceError;
use inventory_runtime::{Background, Tx, db_error};
use inventory_stock_client::{FeedConsumer, FeedHandler, GrpcStockClient, StockClient, pb};
use inventory_testkit::{StockServer, new_id};

use crate::{catalog, shared_client};
use sqlx::PgPool;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
const FEED: &str = "seen";

struct Recorder;

#[tonic::async_trait]
impl FeedHandler for Recorder {
    async fn apply(
        &self,
        tx: &mut Tx,
        events: &[pb::InventoryTransaction],
    ) -> Result<(), ServiceError> {
        for event in events {
            sqlx::query("INSERT INTO seen_events (sequence, txn_id) VALUES ($1, $2)")
                .bind(event.sequence)
                .bind(&event.txn_id)
                .execute(&mut **tx)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }
}

async fn receive_some(client: &GrpcStockClient, product: &str, warehouse: &str, times: usize) {
    for _ in 0..times {
        client
            .receive(pb::ReceiveStockRequest {
                request_id: new_id(),
                product_id: product.to_owned(),
                warehouse_id: warehouse.to_owned(),
                quantity: 1,
                reference_id: "PO-1".to_owned(),
                actor: "suite".to_owned(),
            })
            .await
            .expect("receive");
    }
}

async fn stock_sequences(stock: &StockServer) -> Vec<i64> {
    let mut db = stock.server.database.connect("stock").await;
    sqlx::query_scalar("SELECT sequence FROM inventory_transactions ORDER BY sequence")
        .fetch_all(&mut db)
        .await
        .expect("stock's log")
}

async fn seen_sequences(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT sequence FROM seen_events ORDER BY sequence")
        .fetch_all(pool)
        .await
        .expect("seen events")
}

async fn wait_until_seen(pool: &PgPool, last: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while FeedConsumer::cursor(pool, FEED).await.expect("cursor") < last {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the consumer stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_consumer_follows_the_feed_across_a_stock_restart_and_sees_every_event_once() {
    let mut stock = StockServer::spawn(&[]).await;
    let database = stock.server.database.clone();
    let address = stock.server.addr.to_string();
    let (product, warehouse) = catalog(&stock).await;

    let pool = database.migrate("consumer", &MIGRATOR).await;
    let client = shared_client(&stock);
    let mut background = Background::new();
    let consumer = FeedConsumer::new(
        FEED,
        pool.clone(),
        Arc::new(client.clone()),
        Arc::new(Recorder),
    );
    background.spawn(|stopping| consumer.run(stopping));

    receive_some(&client, &product, &warehouse, 20).await;
    wait_until_seen(
        &pool,
        *stock_sequences(&stock).await.last().expect("events"),
    )
    .await;

    // Stock shuts down (its feeds end with UNAVAILABLE) and comes back on the same address.
    stock.server.stop().await;
    drop(stock);
    let stock = StockServer::spawn_on(database, &[("LISTEN_ADDR", address.as_str())]).await;
    receive_some(&client, &product, &warehouse, 20).await;
    let written = stock_sequences(&stock).await;
    wait_until_seen(&pool, *written.last().expect("events")).await;
    background.stop().await;

    assert_eq!(written.len(), 40);
    assert_eq!(
        seen_sequences(&pool).await,
        written,
        "every event once, in order"
    );
}
