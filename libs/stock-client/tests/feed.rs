//! The feed consumer's cursor, against a real database and a scripted feed: killed between
//! events and restarted, or run twice at once, it counts every event exactly once.

use std::sync::Arc;
use std::time::Duration;

use inventory_runtime::{Background, Tx, db_error};
use inventory_stock_client::{
    FeedConsumer, FeedHandler, MockStockClient, StockError, TransactionStream, pb,
};
use inventory_testkit::TestDatabase;
use sqlx::PgPool;
use tokio_stream::wrappers::ReceiverStream;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./tests/migrations");

const FEED: &str = "counted";

/// Counts each event into `counted`, slowly, so a kill can land inside a batch.
struct Counter;

#[tonic::async_trait]
impl FeedHandler for Counter {
    async fn apply(
        &self,
        tx: &mut Tx,
        events: &[pb::InventoryTransaction],
    ) -> Result<(), inventory_core::ServiceError> {
        for event in events {
            sqlx::query("INSERT INTO counted (sequence, quantity) VALUES ($1, $2)")
                .bind(event.sequence)
                .bind(event.quantity)
                .execute(&mut **tx)
                .await
                .map_err(db_error)?;
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
        Ok(())
    }
}

fn event(sequence: i64) -> pb::InventoryTransaction {
    pb::InventoryTransaction {
        sequence,
        quantity: 1,
        txn_type: pb::TransactionType::Ship.into(),
        ..Default::default()
    }
}

/// A feed of events 1..=total, one every millisecond, from any cursor.
fn scripted_stock(total: i64) -> Arc<MockStockClient> {
    let mut stock = MockStockClient::new();
    stock.expect_stream_transactions().returning(move |after| {
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            for sequence in after + 1..=total {
                tokio::time::sleep(Duration::from_millis(1)).await;
                if sender.send(Ok(event(sequence))).await.is_err() {
                    return;
                }
            }
            // Then the feed ends, as when a stock replica shuts down.
            let _ = sender
                .send(Err(StockError::Unavailable("shutting down".to_owned())))
                .await;
        });
        Ok(Box::pin(ReceiverStream::new(receiver)) as TransactionStream)
    });
    Arc::new(stock)
}

async fn consumer_database(database: &TestDatabase) -> PgPool {
    inventory_testkit::init_logs();
    database.migrate("consumer", &MIGRATOR).await
}

fn start(pool: &PgPool, stock: &Arc<MockStockClient>, background: &mut Background) {
    let consumer = FeedConsumer::new(FEED, pool.clone(), stock.clone(), Arc::new(Counter));
    background.spawn(|stopping| consumer.run(stopping));
}

async fn wait_for_cursor(pool: &PgPool, total: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while FeedConsumer::cursor(pool, FEED).await.expect("cursor") < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the consumer stalled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn counts(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT sequence) FROM counted")
        .fetch_one(pool)
        .await
        .expect("counts")
}

#[tokio::test]
async fn a_consumer_killed_between_events_and_restarted_counts_every_event_once() {
    const TOTAL: i64 = 400;
    let database = TestDatabase::create().await;
    let pool = consumer_database(&database).await;
    let stock = scripted_stock(TOTAL);
    for round in 0..5_u64 {
        let mut background = Background::new();
        start(&pool, &stock, &mut background);
        tokio::time::sleep(Duration::from_millis(20 + 7 * round)).await;
        // Killed: the task is dropped wherever it is, mid-batch included.
        drop(background);
    }
    let cursor_after_kills = FeedConsumer::cursor(&pool, FEED).await.expect("cursor");
    assert!(
        cursor_after_kills < TOTAL,
        "the kills came before the end of the feed ({cursor_after_kills})"
    );
    let mut background = Background::new();
    start(&pool, &stock, &mut background);
    wait_for_cursor(&pool, TOTAL).await;
    background.stop().await;
    assert_eq!(counts(&pool).await, (TOTAL, TOTAL));
}

#[tokio::test]
async fn two_replicas_consuming_one_feed_count_every_event_once() {
    const TOTAL: i64 = 200;
    let database = TestDatabase::create().await;
    let pool = consumer_database(&database).await;
    let stock = scripted_stock(TOTAL);
    let mut background = Background::new();
    start(&pool, &stock, &mut background);
    start(&pool, &stock, &mut background);
    wait_for_cursor(&pool, TOTAL).await;
    background.stop().await;
    assert_eq!(counts(&pool).await, (TOTAL, TOTAL));
}

#[tokio::test]
async fn the_status_reports_the_last_sequence_applied() {
    const TOTAL: i64 = 50;
    let database = TestDatabase::create().await;
    let pool = consumer_database(&database).await;
    let consumer = FeedConsumer::new(FEED, pool.clone(), scripted_stock(TOTAL), Arc::new(Counter));
    let mut status = consumer.status();
    let mut background = Background::new();
    background.spawn(|stopping| consumer.run(stopping));
    let reached = tokio::time::timeout(
        Duration::from_secs(30),
        status.wait_for(|s| s.last_sequence == TOTAL),
    )
    .await
    .expect("status reaches the end of the feed")
    .expect("status channel open")
    .clone();
    background.stop().await;
    assert_eq!(reached.last_sequence, TOTAL);
    assert!(reached.seconds_behind >= 0.0);
}
