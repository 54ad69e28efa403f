//! The transaction feed: history then live, each committed transaction exactly once in the
//! feed's order (writer, then sequence), resumable from any cursor, never skipping a writer
//! that commits late, whatever its callers cancel or roll back meanwhile.

use std::time::Duration;

use crate::helpers::TestApp;
use inventory_proto::stock::v1 as pb;
use sqlx::Connection;
use tokio_stream::StreamExt;
use tonic::{Code, Streaming};

async fn open(app: &TestApp, after_sequence: i64) -> Streaming<pb::StreamTransactionsResponse> {
    app.stream_transactions(after_sequence)
        .await
        .expect("open feed")
}

async fn open_at(app: &TestApp, cursor: &str) -> Streaming<pb::StreamTransactionsResponse> {
    app.stream_from(pb::StreamTransactionsRequest {
        after_cursor: cursor.to_owned(),
        ..Default::default()
    })
    .await
    .expect("open feed at a cursor")
}

/// The next `n` transactions from the feed as (sequence, cursor after it), failing if they
/// do not arrive in time.
async fn take_with_cursors(
    feed: &mut Streaming<pb::StreamTransactionsResponse>,
    n: usize,
) -> Vec<(i64, String)> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = tokio::time::timeout(Duration::from_secs(30), feed.next())
            .await
            .unwrap_or_else(|_| panic!("feed stalled after {} of {n}: {out:?}", out.len()))
            .expect("feed open")
            .expect("feed item");
        out.push((next.transaction.expect("transaction").sequence, next.cursor));
    }
    out
}

/// The next `n` sequences from the feed.
async fn take(feed: &mut Streaming<pb::StreamTransactionsResponse>, n: usize) -> Vec<i64> {
    take_with_cursors(feed, n)
        .await
        .into_iter()
        .map(|(sequence, _)| sequence)
        .collect()
}

/// Nothing more arrives within `wait`.
async fn assert_quiet(feed: &mut Streaming<pb::StreamTransactionsResponse>, wait: u64, why: &str) {
    let early = tokio::time::timeout(Duration::from_millis(wait), feed.next()).await;
    assert!(early.is_err(), "{why}: {early:?}");
}

/// The committed log in the feed's order.
async fn log_in_feed_order(app: &TestApp) -> Vec<i64> {
    let mut db = app.db().await;
    sqlx::query_scalar("SELECT sequence FROM inventory_transactions ORDER BY writer_xid, sequence")
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
    assert_eq!(seen, log_in_feed_order(&app).await);
}

#[tokio::test]
async fn resuming_from_a_cursor_yields_every_transaction_exactly_once() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    for _ in 0..6 {
        app.receive(&p, &w, 1).await;
    }
    let mut feed = open(&app, 0).await;
    let first = take_with_cursors(&mut feed, 4).await;
    drop(feed);
    for _ in 0..4 {
        app.receive(&p, &w, 1).await;
    }
    let (_, cursor) = first.last().expect("some").clone();
    let mut resumed = open_at(&app, &cursor).await;
    let rest = take(&mut resumed, 6).await;
    let seen: Vec<i64> = first.into_iter().map(|(s, _)| s).chain(rest).collect();
    assert_eq!(seen, log_in_feed_order(&app).await);
    assert_quiet(&mut resumed, 300, "nothing beyond the log is delivered").await;
}

#[tokio::test]
async fn a_cursor_not_made_by_the_feed_is_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    for bad in ["42", "1.2.3", "1.-5.2.0", "1.1.1.1.1"] {
        let status = app
            .stream_from(pb::StreamTransactionsRequest {
                after_cursor: bad.to_owned(),
                ..Default::default()
            })
            .await
            .expect_err("a made-up cursor");
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}: {status:?}");
        assert_eq!(
            crate::helpers::bad_fields(&status),
            ["after_cursor"],
            "{bad}"
        );
    }
}

/// A consumer of the feed before cursors stored the last sequence it saw; that feed went in
/// sequence order. Rows logged before the cursor migration carry writer 0 (as the migration
/// left them): such a sequence resumes exactly where that consumer stood.
#[tokio::test]
async fn a_sequence_stored_from_the_feed_before_cursors_resumes_without_a_skip_or_a_repeat() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 1).await;
    // Six rows as the migration left the rows logged before it: writer 0.
    let mut db = app.db().await;
    for on_hand in 2..8 {
        sqlx::query(
            "INSERT INTO inventory_transactions (writer_xid, txn_id, product_id, warehouse_id,
                 txn_type, quantity, on_hand_delta, reserved_delta, on_hand_after,
                 reserved_after, request_id)
             VALUES (0, gen_random_uuid(), $1::uuid, $2::uuid, 'RECEIVE', 1, 1, 0, $3, 0,
                     'before cursors')",
        )
        .bind(&p)
        .bind(&w)
        .bind(on_hand)
        .execute(&mut db)
        .await
        .expect("a row from before the migration");
    }
    let old: Vec<i64> = sqlx::query_scalar(
        "SELECT sequence FROM inventory_transactions WHERE writer_xid = 0 ORDER BY sequence",
    )
    .fetch_all(&mut db)
    .await
    .expect("old rows");
    for _ in 0..3 {
        app.receive(&p, &w, 1).await;
    }
    let mut feed = open(&app, old[2]).await;
    let seen = take(&mut feed, 6).await;
    let mut expected = old[3..].to_vec();
    let all = log_in_feed_order(&app).await;
    let first_receipt = all
        .iter()
        .position(|s| !old.contains(s))
        .expect("a receipt");
    expected.extend(
        all.iter()
            .skip(first_receipt + 1)
            .filter(|s| !old.contains(s)),
    );
    assert_eq!(seen, expected);
    assert_quiet(
        &mut feed,
        300,
        "nothing at or below the stored sequence again",
    )
    .await;
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
    assert_eq!(seen, log_in_feed_order(&app).await);
}

/// Writers whose callers give up mid-flight (1-3 ms deadlines), reservations racing for the
/// same units, and transactions rolled back by hand, while readers follow the feed from the
/// start and from a cursor behind the head: every reader delivers exactly the committed log.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_feed_read_during_cancelled_and_rolled_back_writers_delivers_exactly_the_committed_log() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("A").await;
    let mut products = Vec::new();
    for i in 0..6 {
        let p = app.product(&format!("SKU-{i}")).await;
        app.receive(&p, &w, 5).await;
        products.push(p);
    }
    let head = take_with_cursors(&mut open(&app, 0).await, 6).await;
    let behind = head[2].1.clone();
    let mut from_start = open(&app, 0).await;
    let mut from_behind = open_at(&app, &behind).await;

    let writers: Vec<_> = products
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (mut client, p, w) = (app.client.clone(), p.clone(), w.clone());
            tokio::spawn(async move {
                for round in 0..40_u64 {
                    let deadline = Duration::from_millis(1 + (round + i as u64) % 3);
                    let mut receive = tonic::Request::new(pb::ReceiveStockRequest {
                        request_id: crate::helpers::new_id(),
                        product_id: p.clone(),
                        warehouse_id: w.clone(),
                        quantity: 1,
                        ..Default::default()
                    });
                    if round % 2 == 0 {
                        receive.set_timeout(deadline);
                    }
                    let _ = client.receive_stock(receive).await;
                    let mut reserve = tonic::Request::new(pb::ReserveStockRequest {
                        request_id: crate::helpers::new_id(),
                        order_id: format!("o-{i}-{round}"),
                        line: Some(pb::ReservationLine {
                            order_line_id: "1".to_owned(),
                            product_id: p.clone(),
                            warehouse_id: w.clone(),
                            quantity: 1,
                        }),
                        ..Default::default()
                    });
                    reserve.set_timeout(deadline);
                    let _ = client.reserve_stock(reserve).await;
                }
            })
        })
        .collect();
    let rollbacks = {
        let mut db = app.db().await;
        let (p, w) = (products[0].clone(), w.clone());
        tokio::spawn(async move {
            for _ in 0..20 {
                let mut tx = db.begin().await.expect("begin");
                bump(&mut tx, &p, &w).await;
                log_receive_any(&mut tx, &p, &w).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
                tx.rollback().await.expect("rollback");
            }
        })
    };
    for writer in writers {
        writer.await.expect("writer");
    }
    rollbacks.await.expect("rollbacks");

    let log = log_in_feed_order(&app).await;
    let start_seen = take(&mut from_start, log.len()).await;
    assert_eq!(start_seen, log, "from the start");
    let behind_seen = take(&mut from_behind, log.len() - 3).await;
    assert_eq!(behind_seen, log[3..], "from a cursor behind the head");
    assert_quiet(&mut from_start, 300, "nothing beyond the committed log").await;
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_late_committing_writer_is_delivered_before_the_transactions_after_it() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("A").await;
    let (slow_product, fast_product) = (app.product("SLOW").await, app.product("FAST").await);
    app.receive(&slow_product, &w, 1).await;
    let start = *log_in_feed_order(&app).await.last().expect("one row");

    // A writer takes its transaction id and the next sequence number, and stays open.
    let mut slow = app.db().await;
    let mut slow_tx = slow.begin().await.expect("begin");
    bump(&mut slow_tx, &slow_product, &w).await;
    log_receive(&mut slow_tx, &slow_product, &w, "slow-writer").await;

    // A later writer commits first, with a higher sequence number.
    app.receive(&fast_product, &w, 1).await;
    let mut feed = open(&app, start).await;
    assert_quiet(
        &mut feed,
        400,
        "the feed must wait for the open writer, not skip past it",
    )
    .await;
    slow_tx.commit().await.expect("commit");
    assert_eq!(take(&mut feed, 2).await, vec![start + 1, start + 2]);
    app.assert_ledger_clean().await;
}

/// Sequence order is not commit order: a writer that took its transaction id first may draw
/// a higher sequence number than one that began after it. The feed's order is the writers'
/// (then sequence): the older writer's row comes as soon as it commits, the newer writer's
/// once it commits, each exactly once.
#[tokio::test]
async fn a_writer_older_than_an_open_one_is_delivered_at_once_and_the_open_one_when_it_commits() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("A").await;
    let (slow_product, fast_product) = (app.product("SLOW").await, app.product("FAST").await);
    app.receive(&slow_product, &w, 1).await;
    app.receive(&fast_product, &w, 1).await;
    let start = *log_in_feed_order(&app).await.last().expect("rows");

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

    let mut feed = open(&app, start).await;
    assert_eq!(
        take(&mut feed, 1).await,
        vec![start + 2],
        "the older writer"
    );
    assert_quiet(&mut feed, 300, "the open writer's row is not final yet").await;
    slow_tx.commit().await.expect("commit");
    assert_eq!(
        take(&mut feed, 1).await,
        vec![start + 1],
        "the newer writer"
    );
    assert_quiet(&mut feed, 300, "each exactly once").await;
    app.assert_ledger_clean().await;
}

/// Adds one unit on hand to a row, after giving the transaction its id (on Citus the
/// coordinator's: a statement routed to a worker takes none there).
async fn bump(tx: &mut sqlx::PgConnection, product: &str, warehouse: &str) {
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *tx)
        .await
        .expect("a transaction id");
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

/// Logs the receipt of the unit `bump` added, whatever the row held (the after-values are
/// read from the row), for a transaction that will roll back.
async fn log_receive_any(tx: &mut sqlx::PgConnection, product: &str, warehouse: &str) {
    sqlx::query(
        "INSERT INTO inventory_transactions (txn_id, product_id, warehouse_id, txn_type, quantity,
             on_hand_delta, reserved_delta, on_hand_after, reserved_after, request_id)
         SELECT gen_random_uuid(), product_id, warehouse_id, 'RECEIVE', 1, 1, 0,
                quantity_on_hand, quantity_reserved, 'rolled-back'
           FROM inventory WHERE product_id = $1::uuid AND warehouse_id = $2::uuid",
    )
    .bind(product)
    .bind(warehouse)
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
    assert_eq!(seen, log_in_feed_order(&app).await);
    assert_eq!(seen[1] - seen[0], 2, "one number was skipped");
}

/// What the feed's guarantee costs: any transaction holding an xid holds back the rows
/// written by transactions that began after it, until it ends; the service names it.
#[tokio::test]
async fn an_open_transaction_holds_back_rows_logged_after_it_began_until_it_ends() {
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
    let idle_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *idle_tx)
        .await
        .expect("pid");
    app.receive(&p, &w, 1).await;

    let mut feed = open(&app, 0).await;
    let log = log_in_feed_order(&app).await;
    assert_eq!(take(&mut feed, 1).await, log[..1], "logged before it began");
    assert_quiet(&mut feed, 300, "logged after it began: held back").await;
    let (age, who) = stock_service::store::oldest_writer(&mut app.db().await)
        .await
        .expect("sampled")
        .expect("a transaction holds an xid");
    assert!(age >= 0.0);
    assert!(who.contains(&format!("pid {idle_pid}")), "{who}");

    idle_tx.rollback().await.expect("rollback the idle session");
    assert_eq!(
        take(&mut feed, 1).await,
        log[1..],
        "delivered once it ended"
    );
}

/// The window two-phase commit opens on Citus: a writer committed on the coordinator whose
/// row is still only prepared on its worker (or left in doubt there by a lost connection).
/// Made by hand here: a transaction id taken on the coordinator and its transaction ended
/// there, the row inserted into its shard on the worker with that writer and prepared, a
/// later row committed. The feed must wait for the prepared row, not skip it. (Citus only:
/// one server has no such window.)
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
    let start = *log_in_feed_order(&app).await.last().expect("one row");
    let mut coordinator = app.db().await;
    let (writer, sequence): (i64, i64) = sqlx::query_as(
        "SELECT pg_current_xact_id()::text::bigint, nextval('inventory_transactions_sequence')",
    )
    .fetch_one(&mut coordinator)
    .await
    .expect("a writer and a sequence number");
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
         INSERT INTO {shard_log} (sequence, writer_xid, txn_id, product_id, warehouse_id,
             txn_type, quantity, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
             request_id)
         VALUES ({sequence}, {writer}, gen_random_uuid(), '{p}', '{w}', 'RECEIVE', 1, 1, 0, 2, 0,
                 'prepared');
         PREPARE TRANSACTION '{gid}'"
    ))
    .execute(&mut on_worker)
    .await
    .expect("prepared on the worker");

    // A later writer commits.
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
    assert_eq!(
        seen[0], sequence,
        "the prepared row first: its writer is older"
    );
    assert_eq!(seen, log_in_feed_order(&app).await[1..]);
    app.assert_ledger_clean().await;
}
