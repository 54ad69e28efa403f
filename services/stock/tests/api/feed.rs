//! The transaction feed: history then live, in sequence order, each transaction exactly once,
//! resumable from any cursor, and never skipping a writer that commits late.

use std::time::Duration;

use crate::helpers::TestApp;
use inventory_proto::stock::v1 as pb;
use sqlx::Connection;
use tokio_stream::StreamExt;
use tonic::Streaming;

async fn open(app: &TestApp, after_sequence: i64) -> Streaming<pb::StreamTransactionsResponse> {
    app.stream_transactions(after_sequence)
        .await
        .expect("open feed")
}

/// The next `n` sequences from the feed, failing if they do not arrive in time.
async fn take(feed: &mut Streaming<pb::StreamTransactionsResponse>, n: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(30), feed.next())
            .await
            .unwrap_or_else(|_| panic!("feed stalled after {} of {n}: {out:?}", out.len()))
            .expect("feed open")
            .expect("feed item");
        out.push(next.transaction.expect("transaction").sequence);
    }
    out
}

async fn all_sequences(app: &TestApp) -> Vec<i64> {
    let mut db = app.db().await;
    sqlx::query_scalar("SELECT sequence FROM inventory_transactions ORDER BY sequence")
        .fetch_all(&mut db)
        .await
        .expect("sequences")
}

#[tokio::test]
async fn the_feed_sends_history_then_live_transactions_in_order() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    for _ in 0..5 {
        app.receive(&p, &w, 1).await;
    }
    let mut feed = open(&app, 0).await;
    let history = take(&mut feed, 5).await;
    for _ in 0..3 {
        app.receive(&p, &w, 1).await;
    }
    let live = take(&mut feed, 3).await;
    let seen: Vec<i64> = history.into_iter().chain(live).collect();
    assert_eq!(seen, all_sequences(&app).await);
}

#[tokio::test]
async fn resuming_from_a_cursor_yields_every_transaction_exactly_once() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    for _ in 0..6 {
        app.receive(&p, &w, 1).await;
    }
    let mut feed = open(&app, 0).await;
    let first = take(&mut feed, 4).await;
    drop(feed);
    for _ in 0..4 {
        app.receive(&p, &w, 1).await;
    }
    let mut resumed = open(&app, *first.last().expect("some")).await;
    let rest = take(&mut resumed, 6).await;
    let seen: Vec<i64> = first.into_iter().chain(rest).collect();
    assert_eq!(seen, all_sequences(&app).await);
    let early = tokio::time::timeout(Duration::from_millis(300), resumed.next()).await;
    assert!(early.is_err(), "nothing beyond the log is delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_feed_read_during_concurrent_writes_misses_and_repeats_nothing() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("A").await;
    let mut products = Vec::new();
    for i in 0..8 {
        products.push(app.product(&format!("SKU-{i}")).await);
    }
    let mut feed = open(&app, 0).await;
    let writers: Vec<_> = products
        .iter()
        .map(|p| {
            let (mut client, p, w) = (app.client.clone(), p.clone(), w.clone());
            tokio::spawn(async move {
                for _ in 0..20 {
                    client
                        .receive_stock(pb::ReceiveStockRequest {
                            request_id: crate::helpers::new_id(),
                            product_id: p.clone(),
                            warehouse_id: w.clone(),
                            quantity: 1,
                            ..Default::default()
                        })
                        .await
                        .expect("receive");
                }
            })
        })
        .collect();
    let seen = take(&mut feed, 160).await;
    for writer in writers {
        writer.await.expect("writer");
    }
    assert_eq!(seen, all_sequences(&app).await);
}

#[tokio::test]
async fn a_late_committing_writer_is_delivered_before_the_transactions_after_it() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("A").await;
    let (slow_product, fast_product) = (app.product("SLOW").await, app.product("FAST").await);
    app.receive(&slow_product, &w, 1).await;
    let start = *all_sequences(&app).await.last().expect("one row");

    // A writer takes the next sequence number and holds its transaction open.
    let mut slow = app.db().await;
    let mut slow_tx = slow.begin().await.expect("begin");
    bump(&mut slow_tx, &slow_product, &w).await;
    log_receive(&mut slow_tx, &slow_product, &w, "slow-writer").await;

    // A later writer commits first, with a higher sequence number.
    app.receive(&fast_product, &w, 1).await;
    waits_for_the_slow_writer_then_delivers_both(&app, start, slow_tx).await;
}

/// A feed from `start`, where `slow` holds sequence `start + 1` open and `start + 2` is
/// committed: nothing comes until `slow` commits, then both in order.
async fn waits_for_the_slow_writer_then_delivers_both(
    app: &TestApp,
    start: i64,
    slow: sqlx::Transaction<'_, sqlx::Postgres>,
) {
    let mut feed = open(app, start).await;
    let early = tokio::time::timeout(Duration::from_millis(400), feed.next()).await;
    assert!(
        early.is_err(),
        "the feed must wait for the open writer, not skip past it"
    );
    slow.commit().await.expect("commit");
    assert_eq!(take(&mut feed, 2).await, vec![start + 1, start + 2]);
    app.assert_ledger_clean().await;
}

/// A snapshot lists as in progress only transactions below the newest one that has ended;
/// a writer that took its transaction id after the writer behind it, and is the newest of
/// all, is absent from that list though it still holds a number below what the feed read.
#[tokio::test]
async fn a_late_writer_newer_than_every_finished_transaction_is_still_waited_for() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("A").await;
    let (slow_product, fast_product) = (app.product("SLOW").await, app.product("FAST").await);
    app.receive(&slow_product, &w, 1).await;
    app.receive(&fast_product, &w, 1).await;
    let start = *all_sequences(&app).await.last().expect("rows");

    // The fast writer takes its transaction id first, the slow one after it; the slow one
    // draws the lower sequence number, the fast one the next and commits.
    let (mut fast, mut slow) = (app.db().await, app.db().await);
    let mut fast_tx = fast.begin().await.expect("begin");
    bump(&mut fast_tx, &fast_product, &w).await;
    let mut slow_tx = slow.begin().await.expect("begin");
    bump(&mut slow_tx, &slow_product, &w).await;
    log_receive(&mut slow_tx, &slow_product, &w, "slow-writer").await;
    log_receive(&mut fast_tx, &fast_product, &w, "fast-writer").await;
    fast_tx.commit().await.expect("commit");
    waits_for_the_slow_writer_then_delivers_both(&app, start, slow_tx).await;
}

/// Adds one unit on hand to a row (which gives the transaction its id).
async fn bump(tx: &mut sqlx::PgConnection, product: &str, warehouse: &str) {
    sqlx::query(
        "UPDATE inventory SET quantity_on_hand = quantity_on_hand + 1
          WHERE product_id = $1::uuid AND warehouse_id = $2::uuid",
    )
    .bind(product)
    .bind(warehouse)
    .execute(tx)
    .await
    .expect("update");
}

/// Logs the receipt of the unit `bump` added to a row that held one.
async fn log_receive(tx: &mut sqlx::PgConnection, product: &str, warehouse: &str, request: &str) {
    sqlx::query(
        "INSERT INTO inventory_transactions (txn_id, product_id, warehouse_id, txn_type, quantity,
             on_hand_delta, reserved_delta, on_hand_after, reserved_after, request_id)
         VALUES (gen_random_uuid(), $1::uuid, $2::uuid, 'RECEIVE', 1, 1, 0, 2, 0, $3)",
    )
    .bind(product)
    .bind(warehouse)
    .bind(request)
    .execute(tx)
    .await
    .expect("insert");
}

#[tokio::test]
async fn a_sequence_number_lost_to_a_rollback_does_not_stall_the_feed() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 1).await;
    let mut db = app.db().await;
    let mut tx = db.begin().await.expect("begin");
    let _: i64 = sqlx::query_scalar("SELECT next_transaction_sequence()")
        .fetch_one(&mut *tx)
        .await
        .expect("burn a sequence number");
    tx.rollback().await.expect("rollback");
    db.close().await.ok();
    app.receive(&p, &w, 1).await;

    let mut feed = open(&app, 0).await;
    let seen = take(&mut feed, 2).await;
    assert_eq!(seen, all_sequences(&app).await);
    assert_eq!(seen[1] - seen[0], 2, "one number was skipped");
}

#[tokio::test]
async fn an_unrelated_open_transaction_does_not_stall_the_feed_at_a_gap() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 1).await;

    // A session elsewhere in the database holds a transaction id and stays open.
    let mut idle = app.db().await;
    let mut idle_tx = idle.begin().await.expect("begin");
    sqlx::raw_sql("CREATE TEMP TABLE scratch (x int); INSERT INTO scratch VALUES (1)")
        .execute(&mut *idle_tx)
        .await
        .expect("unrelated write");

    // A gap: a number drawn and rolled back, then a later committed row.
    let mut db = app.db().await;
    let mut tx = db.begin().await.expect("begin");
    let _: i64 = sqlx::query_scalar("SELECT next_transaction_sequence()")
        .fetch_one(&mut *tx)
        .await
        .expect("burn a sequence number");
    tx.rollback().await.expect("rollback");
    app.receive(&p, &w, 1).await;

    let mut feed = open(&app, 0).await;
    let seen = take(&mut feed, 2).await;
    assert_eq!(seen, all_sequences(&app).await);
    idle_tx.rollback().await.expect("rollback the idle session");
}

/// The window two-phase commit opens on Citus: a writer committed on the coordinator whose
/// row is still only prepared on its worker (or left in doubt there by a lost connection).
/// Made by hand here: a sequence number drawn on the coordinator, the row inserted into its
/// shard on the worker and prepared, a later row committed. The feed must wait for the
/// prepared row, not skip its number. (Citus only: one server has no such window.)
#[tokio::test]
async fn on_citus_a_row_prepared_on_a_worker_is_waited_for_not_skipped() {
    let app = TestApp::spawn().await;
    let Some(worker) = ({
        let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
        app.receive(&p, &w, 1).await;
        app.worker_of(&p).await.map(|worker| (worker, p, w))
    }) else {
        assert_eq!(crate::helpers::worker_count(), 0);
        return;
    };
    let (worker, p, w) = worker;
    let start = *all_sequences(&app).await.last().expect("one row");
    let mut coordinator = app.db().await;
    let sequence: i64 = sqlx::query_scalar("SELECT nextval('inventory_transactions_sequence')")
        .fetch_one(&mut coordinator)
        .await
        .expect("a sequence number");
    let (shard_log, shard_inventory): (String, String) = sqlx::query_as(
        "SELECT (SELECT shard_name FROM citus_shards WHERE table_name = t.log AND shardid =
                    get_shard_id_for_distribution_column(t.log, $1::uuid)),
                (SELECT shard_name FROM citus_shards WHERE table_name = t.inv AND shardid =
                    get_shard_id_for_distribution_column(t.inv, $1::uuid))
           FROM (SELECT 'inventory_transactions'::regclass AS log,
                        'inventory'::regclass AS inv) t",
    )
    .bind(&p)
    .fetch_one(&mut coordinator)
    .await
    .expect("shards");

    let admin = inventory_testkit::admin_url();
    let user = admin.split_once("://").map_or("", |(_, r)| r);
    let user = user.split_once('@').map_or("postgres", |(u, _)| u);
    let mut on_worker =
        sqlx::PgConnection::connect(&format!("postgres://{user}@{worker}/{}", app.database.name))
            .await
            .expect("connect worker");
    let gid = format!("inventory_test_{}", crate::helpers::new_id());
    sqlx::raw_sql(&format!(
        "BEGIN;
         UPDATE {shard_inventory} SET quantity_on_hand = quantity_on_hand + 1
          WHERE product_id = '{p}' AND warehouse_id = '{w}';
         INSERT INTO {shard_log} (sequence, txn_id, product_id, warehouse_id, txn_type, quantity,
             on_hand_delta, reserved_delta, on_hand_after, reserved_after, request_id)
         VALUES ({sequence}, gen_random_uuid(), '{p}', '{w}', 'RECEIVE', 1, 1, 0, 2, 0, 'prepared');
         PREPARE TRANSACTION '{gid}'"
    ))
    .execute(&mut on_worker)
    .await
    .expect("prepared on the worker");

    // A later writer commits, with a higher number.
    let later = app.product("SKU-2").await;
    app.receive(&later, &w, 1).await;
    let mut feed = open(&app, start).await;
    let early = tokio::time::timeout(Duration::from_millis(500), feed.next()).await;
    let resolved = sqlx::raw_sql(&format!("COMMIT PREPARED '{gid}'"))
        .execute(&mut on_worker)
        .await;
    assert!(
        early.is_err(),
        "the feed must wait for the prepared row, not skip past it: {early:?}"
    );
    resolved.expect("commit prepared");
    let seen = take(&mut feed, 2).await;
    assert_eq!(seen, vec![sequence, sequence + 1]);
    app.assert_ledger_clean().await;
}
