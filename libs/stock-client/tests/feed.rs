//! The feed consumer's cursor, against a real database and a scripted feed: killed between
//! events and restarted, or run twice at once, it counts every event exactly once. The
//! scripted feed, like stock's, is not in sequence order (each pair of neighbours swapped).

use std::sync::Arc;
use std::time::Duration;

use inventory_runtime::{Background, Tx, db_error};
use inventory_stock_client::{
    FeedConsumer, FeedEvent, FeedHandler, FeedStart, MockStockClient, StockError,
    TransactionStream, pb,
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

/// The event at `position` of the scripted feed (positions 1, 2, 3, 4 carry sequences 2, 1,
/// 4, 3), with the feed's cursor after it.
fn event(position: i64) -> FeedEvent {
    let sequence = if position % 2 == 1 {
        position + 1
    } else {
        position - 1
    };
    FeedEvent {
        transaction: pb::InventoryTransaction {
            sequence,
            quantity: 1,
            txn_type: pb::TransactionType::Ship.into(),
            ..Default::default()
        },
        cursor: format!("at-{position}"),
    }
}

/// A feed of `total` events (an even number), one every millisecond, from any cursor.
fn scripted_stock(total: i64) -> Arc<MockStockClient> {
    let mut stock = MockStockClient::new();
    stock.expect_stream_transactions().returning(move |from| {
        let after = match from {
            // Sequences up to an even n are exactly positions up to n.
            FeedStart::Sequence(n) => {
                assert_eq!(n % 2, 0, "a sequence this feed's old form stood at");
                n
            }
            FeedStart::Cursor(cursor) => cursor
                .strip_prefix("at-")
                .and_then(|p| p.parse().ok())
                .expect("a cursor of this feed"),
        };
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            for position in after + 1..=total {
                tokio::time::sleep(Duration::from_millis(1)).await;
                if sender.send(Ok(event(position))).await.is_err() {
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

/// The position the consumer stored (0 before the first event).
async fn stored_position(pool: &PgPool) -> i64 {
    let position: Option<String> =
        sqlx::query_scalar("SELECT position FROM feed_cursors WHERE feed = $1")
            .bind(FEED)
            .fetch_optional(pool)
            .await
            .expect("stored cursor");
    position
        .and_then(|p| p.strip_prefix("at-").and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

async fn wait_for_cursor(pool: &PgPool, total: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while stored_position(pool).await < total {
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
    let cursor_after_kills = stored_position(&pool).await;
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
        // The last event of the feed carries sequence TOTAL - 1 (see `event`).
        status.wait_for(|s| s.last_sequence == TOTAL - 1),
    )
    .await
    .expect("status reaches the end of the feed")
    .expect("status channel open")
    .clone();
    background.stop().await;
    assert_eq!(reached.last_sequence, TOTAL - 1);
    assert_eq!(
        FeedConsumer::cursor(&pool, FEED).await.expect("cursor"),
        TOTAL - 1
    );
    assert!(reached.seconds_behind >= 0.0);
}

#[tokio::test]
async fn a_consumer_that_stored_only_a_sequence_resumes_after_it_then_stores_cursors() {
    const TOTAL: i64 = 60;
    let database = TestDatabase::create().await;
    let pool = consumer_database(&database).await;
    // Where a consumer of the feed before cursors stood: sequence 20, no cursor.
    sqlx::query("INSERT INTO feed_cursors (feed, last_sequence) VALUES ($1, 20)")
        .bind(FEED)
        .execute(&pool)
        .await
        .expect("stored sequence");
    let stock = scripted_stock(TOTAL);
    let mut background = Background::new();
    start(&pool, &stock, &mut background);
    wait_for_cursor(&pool, TOTAL).await;
    background.stop().await;
    assert_eq!(counts(&pool).await, (TOTAL - 20, TOTAL - 20));
    let first: i64 = sqlx::query_scalar("SELECT min(sequence) FROM counted")
        .fetch_one(&pool)
        .await
        .expect("first counted");
    assert_eq!(first, 21, "nothing at or below the stored sequence again");
}
