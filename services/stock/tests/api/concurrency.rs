//! Races: many clients at once on the same rows. No oversell, no deadlock, no half order,
//! and the ledger always replays to the stored rows.

use std::time::Duration;

use crate::helpers::{TestApp, error_info, new_id, reserve_request, worker_count};
use inventory_proto::stock::v1 as pb;
use proptest::prelude::*;
use prost::Message;
use sqlx::Connection;
use stock_service::domain::movement::InventoryKey;
use stock_service::domain::reservation::Reservation;
use stock_service::store::{BatchOutcome, BatchRequest, Store};
use tonic::Code;

/// Races `buyers` one-unit reservations for `units` units across every given replica and
/// checks that exactly `units` buyers won. Returns how many database transactions wrote
/// the winning reservations (rows written by one transaction share its xmin).
async fn race_for_the_last_units(replicas: &[&TestApp], units: i64, buyers: usize) -> i64 {
    let app = replicas[0];
    let (p, w) = (app.product("HOT-1").await, app.warehouse("A").await);
    app.receive(&p, &w, units).await;

    let mut channels = Vec::new();
    for replica in replicas {
        for _ in 0..4 {
            channels.push(replica.channel().await);
        }
    }
    let calls: Vec<_> = (0..buyers)
        .map(|i| {
            let mut client = pb::stock_service_client::StockServiceClient::new(
                channels[i % channels.len()].clone(),
            );
            let request = reserve_request(&format!("order-{i}"), &p, &w, 1);
            tokio::spawn(async move { client.reserve_stock(request).await })
        })
        .collect();
    let (mut granted, mut refused) = (0, 0);
    for call in calls {
        match call.await.expect("join") {
            Ok(_) => granted += 1,
            Err(status) => {
                assert_eq!(error_info(&status).0, "INSUFFICIENT_STOCK", "{status:?}");
                refused += 1;
            }
        }
    }
    assert_eq!(granted, units);
    assert_eq!(refused, buyers as i64 - units);
    let inv = app.inventory(&p, &w).await;
    assert_eq!(
        (
            inv.quantity_on_hand,
            inv.quantity_reserved,
            inv.quantity_available
        ),
        (units, units, 0)
    );
    assert_eq!(
        app.count("SELECT count(*) FROM reservations WHERE status = 'ACTIVE'")
            .await,
        units
    );
    assert_eq!(
        app.count("SELECT count(*) FROM inventory_transactions WHERE txn_type = 'RESERVE'")
            .await,
        units
    );
    assert_eq!(
        app.count("SELECT count(*) FROM idempotency_keys WHERE method = 'ReserveStock'")
            .await,
        units,
        "refused requests leave no request id behind"
    );
    app.assert_ledger_clean().await;
    app.count(
        "SELECT count(DISTINCT xmin::text) FROM inventory_transactions WHERE txn_type = 'RESERVE'",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_units_go_to_exactly_as_many_buyers_as_there_are_units() {
    let app = TestApp::spawn().await;
    let transactions = race_for_the_last_units(&[&app], 25, 200).await;
    if worker_count() == 0 {
        assert!(
            transactions < 25,
            "concurrent reservations shared transactions: {transactions}"
        );
    } else {
        // On Citus the stock service does not coalesce (see its README section).
        assert_eq!(transactions, 25, "one transaction per reservation on Citus");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_units_race_holds_without_coalescing_too() {
    let app = TestApp::spawn_uncoalesced().await;
    let transactions = race_for_the_last_units(&[&app], 25, 200).await;
    assert_eq!(transactions, 25, "one transaction per reservation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_last_units_race_holds_across_three_replicas() {
    let first = TestApp::spawn().await;
    let second = first.replica().await;
    let third = first.replica().await;
    race_for_the_last_units(&[&first, &second, &third], 40, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_retries_of_one_reservation_reserve_once_and_answer_alike() {
    let app = TestApp::spawn().await;
    let replica = app.replica().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 10).await;
    let request = reserve_request("order-1", &p, &w, 3);
    let calls: Vec<_> = (0..24)
        .map(|i| {
            let mut client = if i % 2 == 0 {
                app.client.clone()
            } else {
                replica.client.clone()
            };
            let request = request.clone();
            tokio::spawn(async move {
                client
                    .reserve_stock(request)
                    .await
                    .map(tonic::Response::into_inner)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.expect("join").expect("every retry succeeds"));
    }
    assert!(
        answers.windows(2).all(|a| a[0] == a[1]),
        "every retry sees the first answer"
    );
    assert_eq!(app.inventory(&p, &w).await.quantity_reserved, 3);
    assert_eq!(app.transaction_count().await, 2, "one receive, one reserve");
    app.assert_ledger_clean().await;
}

/// One order line asked for under many request ids at once, on two replicas: their batches
/// race to insert the same reservation, and whichever loses writes nothing and answers
/// ALREADY_EXISTS.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_order_line_raced_under_different_request_ids_is_reserved_once() {
    let app = TestApp::spawn().await;
    let replica = app.replica().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 100).await;
    let calls: Vec<_> = (0..48)
        .map(|i| {
            let mut client = if i % 2 == 0 {
                app.client.clone()
            } else {
                replica.client.clone()
            };
            let request = reserve_request("order-1", &p, &w, 2);
            tokio::spawn(async move { client.reserve_stock(request).await })
        })
        .collect();
    let mut granted = 0;
    for call in calls {
        match call.await.expect("join") {
            Ok(_) => granted += 1,
            Err(status) => assert_eq!(status.code(), Code::AlreadyExists, "{status:?}"),
        }
    }
    assert_eq!(granted, 1);
    assert_eq!(app.inventory(&p, &w).await.quantity_reserved, 2);
    assert_eq!(app.count("SELECT count(*) FROM reservations").await, 1);
    assert_eq!(app.transaction_count().await, 2, "one receive, one reserve");
    assert_eq!(
        app.count("SELECT count(*) FROM idempotency_keys WHERE method = 'ReserveStock'")
            .await,
        1,
        "refused requests leave no request id behind"
    );
    app.assert_ledger_clean().await;
}

/// One request id at once in a coalesced batch under row locks and on the one-request
/// path: whichever claims the id first answers, the other replays it, and neither waits
/// for PostgreSQL to break a deadlock (the one-request path claims the id, then locks the
/// row; the batch must take them in the same order).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_id_in_a_locked_batch_and_on_the_one_request_path_at_once_reserves_once() {
    if worker_count() > 0 {
        // Stock turns coalescing off on Citus, so batches never run there; and the row
        // locks this test watches for are taken on a worker, out of the coordinator's sight.
        eprintln!("skipped on Citus: no coalesced batches there");
        return;
    }
    let app = TestApp::spawn_uncoalesced().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("A").await);
    app.receive(&p, &w, 10).await;
    let request = reserve_request("order-1", &p, &w, 3);
    let store = Store::new(
        app.database
            .migrate("stock", &stock_service::app::MIGRATOR)
            .await,
    );
    let batch_request = BatchRequest {
        request_id: request.request_id.clone(),
        method: "ReserveStock",
        fingerprint: request.encode_to_vec(),
        actor: String::new(),
        lines: vec![Reservation::new(
            "order-1".into(),
            "1".into(),
            InventoryKey {
                product_id: p.parse().expect("uuid"),
                warehouse_id: w.parse().expect("uuid"),
            },
            3,
            None,
            chrono::Utc::now(),
        )],
    };

    // Someone holds the row, so both attempts queue on it: the batch first.
    let mut holder = app.db().await;
    let mut held = holder.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM inventory WHERE product_id = $1::uuid FOR UPDATE")
        .bind(&p)
        .execute(&mut *held)
        .await
        .expect("lock the row");
    let batch = tokio::spawn(async move {
        store
            .reserve_batch_locked(&[batch_request], |request, rows| {
                stock_service::api::reservation_response(&request.lines[0], &rows[0])
                    .encode_to_vec()
            })
            .await
    });
    wait_for_lock_waiters(&app, 1).await;
    let single = tokio::spawn({
        let (mut client, request) = (app.client.clone(), request.clone());
        async move { client.reserve_stock(request).await }
    });
    wait_for_lock_waiters(&app, 2).await;
    held.commit().await.expect("release the row");

    let outcome = batch.await.expect("join").expect("the batch applies");
    let answer = single
        .await
        .expect("join")
        .expect("the one-request path answers")
        .into_inner();
    match outcome.outcomes.as_slice() {
        [BatchOutcome::Granted(granted)] => assert_eq!(
            answer.reservation.expect("reservation").reservation_id,
            granted[0].0.reservation_id.to_string(),
            "the one-request path replays the batch's answer"
        ),
        // The one-request path claimed the id first; the batch leaves it to that path.
        [BatchOutcome::Single] => {}
        _ => panic!("the batch neither granted nor deferred its one request"),
    }
    assert_eq!(app.inventory(&p, &w).await.quantity_reserved, 3);
    assert_eq!(app.transaction_count().await, 2, "one receive, one reserve");
    let mut db = app.db().await;
    let deadlocks: i64 = sqlx::query_scalar(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
    )
    .fetch_one(&mut db)
    .await
    .expect("deadlocks");
    assert_eq!(deadlocks, 0, "no deadlock was broken by PostgreSQL");
    app.assert_ledger_clean().await;
}

/// Waits until `n` sessions of the test's database wait on a lock.
async fn wait_for_lock_waiters(app: &TestApp, n: i64) {
    let mut db = app.db().await;
    for _ in 0..500 {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut db)
        .await
        .expect("waiters");
        if waiting >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} sessions never waited on a lock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_multi_line_orders_never_deadlock_and_never_half_reserve() {
    let app = TestApp::spawn().await;
    let warehouses = [app.warehouse("A").await, app.warehouse("B").await];
    let products = app.products_across_workers("SKU", 4).await;
    for p in &products {
        for w in &warehouses {
            app.receive(p, w, 12).await;
        }
    }
    // Each order takes 2 units of every (product, warehouse) pair, listed in a different
    // order per client, so lock order would matter if the service did not impose its own.
    let orders = 30;
    let calls: Vec<_> = (0..orders)
        .map(|i| {
            let mut lines = Vec::new();
            for (pi, p) in products.iter().enumerate() {
                for w in &warehouses {
                    lines.push(pb::ReservationLine {
                        order_line_id: format!("{pi}"),
                        product_id: p.clone(),
                        warehouse_id: w.clone(),
                        quantity: 2,
                    });
                }
            }
            if i % 2 == 1 {
                lines.reverse();
            }
            let len = lines.len();
            lines.rotate_left(i % len);
            let request = pb::ReserveOrderRequest {
                request_id: new_id(),
                order_id: format!("order-{i}"),
                lines,
                ..Default::default()
            };
            let mut client = app.client.clone();
            tokio::spawn(async move { client.reserve_order(request).await })
        })
        .collect();
    let mut granted = 0;
    for call in calls {
        match call.await.expect("join") {
            Ok(response) => {
                assert_eq!(response.into_inner().reservations.len(), 8);
                granted += 1;
            }
            Err(status) => assert_eq!(
                status.code(),
                Code::FailedPrecondition,
                "no deadlock or abort: {status:?}"
            ),
        }
    }
    assert_eq!(granted, 6, "12 units per row, 2 per order");
    for p in &products {
        for w in &warehouses {
            assert_eq!(app.inventory(p, w).await.quantity_reserved, 12);
        }
    }
    // Every order is either whole or absent.
    let per_order: i64 = app
        .count("SELECT count(*) FROM (SELECT order_id FROM reservations GROUP BY order_id HAVING count(*) <> 8) partial")
        .await;
    assert_eq!(per_order, 0);
    app.assert_ledger_clean().await;
}

/// One random step of a client.
#[derive(Debug, Clone)]
enum Step {
    Receive { row: usize, quantity: i64 },
    Reserve { row: usize, quantity: i64 },
    Ship { quantity: i64 },
    Release,
    Adjust { row: usize, delta: i64 },
    Transfer { product: usize, quantity: i64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..4usize, 1..6i64).prop_map(|(row, quantity)| Step::Receive { row, quantity }),
        (0..4usize, 1..5i64).prop_map(|(row, quantity)| Step::Reserve { row, quantity }),
        (1..4i64).prop_map(|quantity| Step::Ship { quantity }),
        Just(Step::Release),
        (0..4usize, -4..4i64).prop_map(|(row, delta)| Step::Adjust { row, delta }),
        (0..2usize, 1..4i64).prop_map(|(product, quantity)| Step::Transfer { product, quantity }),
    ]
}

/// Runs one client's steps; refusals are fine, anything else is a failure.
async fn run_client(
    mut client: pb::stock_service_client::StockServiceClient<tonic::transport::Channel>,
    client_id: usize,
    rows: Vec<(String, String)>,
    products: Vec<String>,
    warehouses: Vec<String>,
    steps: Vec<Step>,
) -> Result<(), String> {
    let run = new_id();
    let mut my_orders: Vec<(String, String, i64)> = Vec::new();
    for (n, step) in steps.into_iter().enumerate() {
        let result = match step {
            Step::Receive { row, quantity } => client
                .receive_stock(pb::ReceiveStockRequest {
                    request_id: new_id(),
                    product_id: rows[row].0.clone(),
                    warehouse_id: rows[row].1.clone(),
                    quantity,
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Step::Reserve { row, quantity } => {
                let order = format!("{run}-c{client_id}-o{n}");
                let result = client
                    .reserve_stock(reserve_request(
                        &order,
                        &rows[row].0,
                        &rows[row].1,
                        quantity,
                    ))
                    .await
                    .map(|_| ());
                if result.is_ok() {
                    my_orders.push((order, rows[row].1.clone(), quantity));
                }
                result
            }
            Step::Ship { quantity } => match my_orders.last() {
                Some((order, warehouse, _)) => client
                    .ship_reservation(pb::ShipReservationRequest {
                        request_id: new_id(),
                        order_id: order.clone(),
                        order_line_id: "1".into(),
                        warehouse_id: warehouse.clone(),
                        quantity,
                        ..Default::default()
                    })
                    .await
                    .map(|_| ()),
                None => Ok(()),
            },
            Step::Release => match my_orders.pop() {
                Some((order, _, _)) => client
                    .release_reservation(pb::ReleaseReservationRequest {
                        request_id: new_id(),
                        order_id: order,
                        ..Default::default()
                    })
                    .await
                    .map(|_| ()),
                None => Ok(()),
            },
            Step::Adjust { row, delta } if delta != 0 => client
                .adjust_stock(pb::AdjustStockRequest {
                    request_id: new_id(),
                    product_id: rows[row].0.clone(),
                    warehouse_id: rows[row].1.clone(),
                    quantity_delta: delta,
                    reason: "property test".into(),
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            Step::Adjust { .. } => Ok(()),
            Step::Transfer { product, quantity } => {
                let (from, to) = if n % 2 == 0 { (0, 1) } else { (1, 0) };
                client
                    .transfer_stock(pb::TransferStockRequest {
                        request_id: new_id(),
                        product_id: products[product].clone(),
                        from_warehouse_id: warehouses[from].clone(),
                        to_warehouse_id: warehouses[to].clone(),
                        quantity,
                        ..Default::default()
                    })
                    .await
                    .map(|_| ())
            }
        };
        if let Err(status) = result
            && status.code() != Code::FailedPrecondition
        {
            return Err(format!(
                "client {client_id} step {n}: unexpected {status:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn random_concurrent_movements_keep_every_invariant_and_a_clean_ledger() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let app = runtime.block_on(TestApp::spawn());
    let (products, warehouses, rows) = runtime.block_on(async {
        let products = app.products_across_workers("P", 2).await;
        let warehouses = vec![app.warehouse("W-0").await, app.warehouse("W-1").await];
        let mut rows = Vec::new();
        for p in &products {
            for w in &warehouses {
                app.receive(p, w, 5).await;
                rows.push((p.clone(), w.clone()));
            }
        }
        (products, warehouses, rows)
    });

    let config = ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(plans in prop::collection::vec(prop::collection::vec(step(), 1..25), 4))| {
        runtime.block_on(async {
            let tasks: Vec<_> = plans
                .into_iter()
                .enumerate()
                .map(|(i, steps)| {
                    tokio::spawn(run_client(app.client.clone(), i, rows.clone(), products.clone(), warehouses.clone(), steps))
                })
                .collect();
            for task in tasks {
                task.await.expect("join").map_err(TestCaseError::fail)?;
            }
            let report = app
                .check_ledger()
                .await
                .map_err(|s| TestCaseError::fail(format!("{s:?}")))?;
            prop_assert!(report.drifts.is_empty(), "drift: {:?}", report.drifts);
            for (p, w) in &rows {
                let inv = app.inventory(p, w).await;
                prop_assert!(inv.quantity_on_hand >= 0 && inv.quantity_reserved >= 0);
                prop_assert!(inv.quantity_reserved <= inv.quantity_on_hand);
                prop_assert_eq!(inv.quantity_available, inv.quantity_on_hand - inv.quantity_reserved);
            }
            Ok(())
        })?;
    });
}

/// A coalesced batch of whole orders: each order's lines are held all or none, in arrival
/// order; an order that does not fit takes nothing and is left to the one-request path
/// (which names the line that cannot be held); the granted ones are answered once, and a
/// retry through the API replays the batch's answer.
#[tokio::test]
async fn a_batch_holds_each_order_all_or_none_and_a_retry_replays_its_answer() {
    if worker_count() > 0 {
        eprintln!("skipped on Citus: no coalesced batches there");
        return;
    }
    let app = TestApp::spawn_uncoalesced().await;
    let w = app.warehouse("A").await;
    let (mug, cap) = (app.product("MUG").await, app.product("CAP").await);
    app.receive(&mug, &w, 5).await;
    app.receive(&cap, &w, 1).await;
    let line = |id: &str, product: &str, quantity| pb::ReservationLine {
        order_line_id: id.to_owned(),
        product_id: product.to_owned(),
        warehouse_id: w.clone(),
        quantity,
    };
    let order = |order_id: &str, lines: Vec<pb::ReservationLine>| pb::ReserveOrderRequest {
        request_id: new_id(),
        order_id: order_id.to_owned(),
        lines,
        expire_time: None,
        actor: "checkout".to_owned(),
    };
    let orders = [
        order("A", vec![line("1", &mug, 2), line("2", &cap, 1)]),
        // The cap is gone once A has it: B takes nothing, not even its mugs.
        order("B", vec![line("1", &mug, 2), line("2", &cap, 1)]),
        order("C", vec![line("1", &mug, 1)]),
    ];
    let requests: Vec<BatchRequest> = orders
        .iter()
        .map(|o| BatchRequest {
            request_id: o.request_id.clone(),
            method: "ReserveOrder",
            fingerprint: o.encode_to_vec(),
            actor: o.actor.clone(),
            lines: o
                .lines
                .iter()
                .map(|l| {
                    Reservation::new(
                        o.order_id.clone(),
                        l.order_line_id.clone(),
                        InventoryKey {
                            product_id: l.product_id.parse().expect("uuid"),
                            warehouse_id: l.warehouse_id.parse().expect("uuid"),
                        },
                        l.quantity,
                        None,
                        chrono::Utc::now(),
                    )
                })
                .collect(),
        })
        .collect();
    let store = Store::new(
        app.database
            .migrate("stock", &stock_service::app::MIGRATOR)
            .await,
    );
    let result = store
        .reserve_batch_locked(&requests, stock_service::api::encode_answer)
        .await
        .expect("the batch applies");
    let held: Vec<Option<Vec<i64>>> = result
        .outcomes
        .iter()
        .map(|o| match o {
            BatchOutcome::Granted(lines) => {
                Some(lines.iter().map(|(_, row)| row.quantity_reserved).collect())
            }
            BatchOutcome::Single => None,
            BatchOutcome::Refused(error) => panic!("an order is left to its own path: {error:?}"),
        })
        .collect();
    // A's rows right after each of its lines; C's mug after A's two.
    assert_eq!(held, [Some(vec![2, 1]), None, Some(vec![3])]);
    assert_eq!(app.inventory(&mug, &w).await.quantity_reserved, 3);
    assert_eq!(app.inventory(&cap, &w).await.quantity_reserved, 1);
    assert_eq!(
        app.transaction_count().await,
        2 + 3,
        "two receipts, one log row per held line"
    );

    // A retry of A replays what the batch answered; B on its own path names the cap.
    let replay = app
        .reserve_order(orders[0].clone())
        .await
        .expect("replayed");
    let ids = |answer: &pb::ReserveOrderResponse| {
        answer
            .reservations
            .iter()
            .map(|r| r.reservation_id.clone())
            .collect::<Vec<_>>()
    };
    let BatchOutcome::Granted(granted) = &result.outcomes[0] else {
        panic!("A was granted")
    };
    let batch_ids: Vec<String> = granted
        .iter()
        .map(|(r, _)| r.reservation_id.to_string())
        .collect();
    assert_eq!(ids(&replay), batch_ids);
    let refused = app
        .reserve_order(orders[1].clone())
        .await
        .expect_err("B does not fit");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    let (reason, metadata) = error_info(&refused);
    assert_eq!(reason, "INSUFFICIENT_STOCK");
    assert_eq!(metadata.get("product_id"), Some(&cap));
    assert_eq!(
        app.transaction_count().await,
        5,
        "the refusal wrote nothing"
    );

    // An order naming a line already held is left to the one-request path too, so its
    // answer is the same as on that path whichever check fails first there.
    let again = BatchRequest {
        request_id: new_id(),
        ..requests.into_iter().next().expect("A")
    };
    let result = store
        .reserve_batch_locked(&[again], stock_service::api::encode_answer)
        .await
        .expect("the batch runs");
    assert!(matches!(result.outcomes.as_slice(), [BatchOutcome::Single]));
    assert_eq!(app.transaction_count().await, 5, "nothing written");
    app.assert_ledger_clean().await;
}

/// On remembered rows, a batch naming a request id already taken (a retry) or an order line
/// already held writes nothing and is ABORTED, so the lane runs it again under locks, which
/// answers it. Any other failure would send each of its requests down the one-request path.
/// (On Citus reservations are not coalesced, so there is no such batch to run.)
#[tokio::test]
async fn a_batch_on_remembered_rows_with_a_taken_id_or_line_is_aborted_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("MUG").await, app.warehouse("A").await);
    app.receive(&p, &w, 10).await;
    let store = Store::open(
        app.database
            .migrate("stock", &stock_service::app::MIGRATOR)
            .await,
    )
    .await
    .expect("store");
    if store.is_distributed() {
        return;
    }
    let key = InventoryKey {
        product_id: p.parse().expect("uuid"),
        warehouse_id: w.parse().expect("uuid"),
    };
    let request = |request_id: &str, order_line_id: &str| BatchRequest {
        request_id: request_id.to_owned(),
        method: "ReserveStock",
        fingerprint: request_id.as_bytes().to_vec(),
        actor: "test".to_owned(),
        lines: vec![Reservation::new(
            "o-1".to_owned(),
            order_line_id.to_owned(),
            key,
            1,
            None,
            chrono::Utc::now(),
        )],
    };
    let rows = store
        .get_inventory_many(&[key])
        .await
        .expect("read")
        .into_iter()
        .map(|row| (row.key(), row))
        .collect();
    let mut conn = store.pool().acquire().await.expect("connection");
    let first = store
        .reserve_batch_on(
            &mut conn,
            &[request("r-1", "l-1")],
            &rows,
            stock_service::api::encode_answer,
        )
        .await
        .expect("the batch applies")
        .expect("nothing to look up");
    for (again, what) in [
        (request("r-1", "l-2"), "a taken request id"),
        (request("r-2", "l-1"), "a held order line"),
    ] {
        let result = store
            .reserve_batch_on(
                &mut conn,
                &[again],
                &first.rows,
                stock_service::api::encode_answer,
            )
            .await;
        assert!(
            matches!(result, Err(inventory_core::ServiceError::Aborted(_))),
            "{what}: {:?}",
            result.err()
        );
    }
    assert_eq!(
        app.transaction_count().await,
        2,
        "a receipt and one reservation"
    );
    assert_eq!(app.inventory(&p, &w).await.quantity_reserved, 1);
    app.assert_ledger_clean().await;
}

/// Many two-line orders over a few products at once, through the coalescer: more demand
/// than stock, so some orders are refused; every order is held whole or not at all, no row
/// goes past its stock, and (on one server) the orders shared transactions.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_orders_over_many_products_are_held_whole_or_not_at_all_in_shared_transactions() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("A").await;
    let mut products = Vec::new();
    for i in 0..8 {
        let p = app.product(&format!("SKU-{i}")).await;
        app.receive(&p, &w, 10).await;
        products.push(p);
    }
    let channels = [
        app.channel().await,
        app.channel().await,
        app.channel().await,
    ];
    let calls: Vec<_> = (0..96)
        .map(|i| {
            let mut client =
                pb::stock_service_client::StockServiceClient::new(channels[i % 3].clone());
            // Two different products: the second 1 to 7 places after the first.
            let (a, b) = (&products[i % 8], &products[(i + 1 + (i / 8) % 7) % 8]);
            let line = |id: &str, product: &str| pb::ReservationLine {
                order_line_id: id.to_owned(),
                product_id: product.to_owned(),
                warehouse_id: w.clone(),
                quantity: 1,
            };
            let request = pb::ReserveOrderRequest {
                request_id: new_id(),
                order_id: format!("order-{i}"),
                lines: vec![line("1", a), line("2", b)],
                expire_time: None,
                actor: String::new(),
            };
            tokio::spawn(async move { client.reserve_order(request).await })
        })
        .collect();
    let mut granted = 0;
    for call in calls {
        match call.await.expect("join") {
            Ok(answer) => {
                assert_eq!(answer.into_inner().reservations.len(), 2);
                granted += 1;
            }
            Err(status) => assert_eq!(error_info(&status).0, "INSUFFICIENT_STOCK", "{status:?}"),
        }
    }
    assert!(
        granted > 0 && granted < 96,
        "some orders fit, some not: {granted}"
    );
    assert_eq!(
        app.count(
            "SELECT count(*) FROM (SELECT order_id FROM reservations GROUP BY order_id
              HAVING count(*) <> 2) AS half"
        )
        .await,
        0,
        "no order is held in part"
    );
    assert_eq!(
        app.count("SELECT count(*) FROM reservations").await,
        2 * granted
    );
    assert_eq!(
        app.count("SELECT count(*) FROM inventory WHERE quantity_reserved > quantity_on_hand")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT sum(quantity_reserved)::int8 FROM inventory")
            .await,
        2 * granted
    );
    // Rows one transaction wrote share its xmin. On Citus stock does not coalesce, and an
    // order's rows live on several workers, each with transaction ids of its own, so the
    // count says nothing there.
    if worker_count() == 0 {
        let transactions = app
            .count("SELECT count(DISTINCT xmin::text) FROM inventory_transactions WHERE txn_type = 'RESERVE'")
            .await;
        assert!(
            transactions < granted,
            "orders shared transactions: {transactions} for {granted}"
        );
    }
    app.assert_ledger_clean().await;
}

/// A row held by another transaction (a long report, an operator's session) does not make a
/// request wait without bound: after LOCK_TIMEOUT_MS it answers ABORTED, retryable, naming
/// what was held, and changes nothing; the same request id succeeds once the row is free.
#[tokio::test]
async fn a_request_blocked_behind_a_held_row_answers_aborted_naming_it_and_changes_nothing() {
    for coalescing in ["true", "false"] {
        let app = TestApp::spawn_with(&[
            ("LOCK_TIMEOUT_MS", "200"),
            ("RESERVE_COALESCING", coalescing),
        ])
        .await;
        let (p, w) = (app.product("HELD").await, app.warehouse("A").await);
        app.receive(&p, &w, 10).await;
        let before = app.inventory(&p, &w).await;

        let mut holder = app.db().await;
        let mut held = sqlx::Connection::begin(&mut holder).await.expect("begin");
        sqlx::query("SELECT 1 FROM inventory WHERE product_id = $1::uuid FOR UPDATE")
            .bind(&p)
            .execute(&mut *held)
            .await
            .expect("hold the row");

        let receipt = crate::helpers::receive_request(&p, &w, 5);
        let reservation = crate::helpers::reserve_request("o-held", &p, &w, 2);
        for status in [
            app.receive_stock(receipt.clone())
                .await
                .expect_err("blocked receipt"),
            app.reserve_stock(reservation.clone())
                .await
                .expect_err("blocked reservation"),
        ] {
            assert_eq!(
                status.code(),
                tonic::Code::Aborted,
                "{coalescing}: {status:?}"
            );
            assert!(
                status.message().contains("a row of inventory")
                    && status.message().contains("LOCK_TIMEOUT_MS"),
                "{status:?}"
            );
        }
        held.rollback().await.expect("free the row");
        assert_eq!(app.inventory(&p, &w).await, before, "nothing changed");

        app.receive_stock(receipt)
            .await
            .expect("the same receipt, retried");
        app.reserve_stock(reservation)
            .await
            .expect("the same reservation, retried");
        let after = app.inventory(&p, &w).await;
        assert_eq!(
            (after.quantity_on_hand, after.quantity_reserved),
            (15, 2),
            "{coalescing}"
        );
        app.assert_ledger_clean().await;
    }
}

/// A reservation whose caller's deadline passes while it waits for a held row is never
/// committed afterwards (on the coalesced path and alone): once the row is free, nothing is
/// held for it and the log has no RESERVE.
#[tokio::test]
async fn a_reservation_whose_deadline_passes_while_it_waits_is_not_committed_later() {
    for coalescing in ["true", "false"] {
        let app = TestApp::spawn_with(&[("RESERVE_COALESCING", coalescing)]).await;
        let (p, w) = (app.product("LATE").await, app.warehouse("A").await);
        app.receive(&p, &w, 10).await;

        let mut holder = app.db().await;
        let mut held = sqlx::Connection::begin(&mut holder).await.expect("begin");
        sqlx::query("SELECT 1 FROM inventory WHERE product_id = $1::uuid FOR UPDATE")
            .bind(&p)
            .execute(&mut *held)
            .await
            .expect("hold the row");
        let mut late = tonic::Request::new(reserve_request("o-late", &p, &w, 3));
        late.set_timeout(Duration::from_millis(150));
        let status = app
            .client
            .clone()
            .reserve_stock(late)
            .await
            .expect_err("the deadline passes while the row is held");
        assert!(
            matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
            "{coalescing}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        held.rollback().await.expect("free the row");
        // Whatever was still waiting has had time to finish.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let row = app.inventory(&p, &w).await;
        assert_eq!(row.quantity_reserved, 0, "{coalescing}: nothing held late");
        let reserves: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM inventory_transactions WHERE txn_type = 'RESERVE'",
        )
        .fetch_one(&mut app.db().await)
        .await
        .expect("count");
        assert_eq!(reserves, 0, "{coalescing}");
        app.reserve("o-after", &p, &w, 3)
            .await
            .expect("served once the row is free");
        app.assert_ledger_clean().await;
    }
}
