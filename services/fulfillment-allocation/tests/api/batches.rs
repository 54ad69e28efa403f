//! Concurrent AllocateOrder calls share transactions (the default): each order is still
//! allocated whole or refused, nothing is oversold or held twice, a duplicate is answered once,
//! and an order stock moved under is planned again on its own.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use fulfillment_allocation_service::api::Batches;
use fulfillment_allocation_service::app::MIGRATOR;
use inventory_proto::allocation::v1::allocation_service_server::AllocationService;
use inventory_stock_client::{StockError, pb as stock};
use inventory_testkit::TestDatabase;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{MUNICH, POTSDAM, TestApp, order, sources};
use crate::replan::{api_over, scripted_stock, warehouse};

/// 60 orders of two lines race for 40 mugs and 40 plates spread over two warehouses: every
/// allocated order is held in stock exactly as recorded, every refused one holds nothing, no
/// row passes its stock, and the orders were recorded in fewer transactions than orders.
#[tokio::test]
async fn racing_orders_share_transactions_and_each_is_allocated_whole_or_refused() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let munich = app.warehouse("Munich", MUNICH).await;
    let (mug, plate) = (app.product("MUG").await, app.product("PLATE").await);
    for warehouse in [&potsdam, &munich] {
        app.receive(&mug, warehouse, 20).await;
        app.receive(&plate, warehouse, 20).await;
    }
    let racers: Vec<_> = (0..60)
        .map(|i| {
            let mut client = app.client.clone();
            let request = order(&format!("o-{i}"), &[("1", &mug, 1), ("2", &plate, 1)]);
            tokio::spawn(async move { client.allocate_order(request).await })
        })
        .collect();
    let mut allocated = HashMap::new();
    for (i, racer) in racers.into_iter().enumerate() {
        match racer.await.expect("join") {
            Ok(response) => {
                let allocation = response.into_inner().allocation.expect("allocation");
                allocated.insert(format!("o-{i}"), sources(&allocation));
            }
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(
        allocated.len(),
        40,
        "40 of each product, one of each per order"
    );
    for i in 0..60 {
        let order_id = format!("o-{i}");
        let mut held: Vec<(String, String, i64)> = app
            .reservations(&order_id)
            .await
            .into_iter()
            .map(|r| (r.order_line_id, r.warehouse_id, r.quantity_held))
            .collect();
        held.sort();
        assert_eq!(
            held,
            allocated.get(&order_id).cloned().unwrap_or_default(),
            "{order_id}: stock holds what allocation recorded, or nothing"
        );
    }
    for warehouse in [&potsdam, &munich] {
        for product in [&mug, &plate] {
            assert_eq!(app.stock_level(product, warehouse).await, (20, 20));
        }
    }
    let mut db = app.server.database.connect("allocation").await;
    let transactions: i64 =
        sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM allocations")
            .fetch_one(&mut db)
            .await
            .expect("count");
    assert!(
        transactions < 40,
        "40 allocations in {transactions} transactions: concurrent orders share them"
    );
    app.assert_ledger_clean().await;
}

/// The same request sent several times at once is allocated once; every copy gets its answer.
#[tokio::test]
async fn copies_of_one_request_sent_at_once_allocate_once_and_all_get_the_answer() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 10).await;
    let request = order("o-1", &[("1", &mug, 2)]);
    let copies: Vec<_> = (0..6)
        .map(|_| {
            let mut client = app.client.clone();
            let request = request.clone();
            tokio::spawn(async move { client.allocate_order(request).await })
        })
        .collect();
    let mut answers = Vec::new();
    for copy in copies {
        let response = copy.await.expect("join").expect("allocated");
        answers.push(response.into_inner().allocation.expect("allocation"));
    }
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "one answer for all"
    );
    assert_eq!(app.stock_level(&mug, &potsdam).await, (10, 2));
    assert_eq!(app.reservations("o-1").await.len(), 1);
}

/// With a scripted stock that refuses the batch's reservation of the nearer warehouse, the
/// order is planned again on its own with fresh numbers and allocated from the other.
#[tokio::test]
async fn an_order_stock_moved_under_in_a_batch_is_planned_again_alone() {
    let database = TestDatabase::create().await;
    let pool = database.migrate("allocation", &MIGRATOR).await;
    let (potsdam, munich, mug) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    // Potsdam looks stocked until stock refuses it; then it shows none.
    let refused = Arc::new(Mutex::new(false));
    let looked = refused.clone();
    let mut stock = scripted_stock(
        vec![
            warehouse(potsdam, "Potsdam", POTSDAM),
            warehouse(munich, "Munich", MUNICH),
        ],
        move |at| {
            if at == potsdam && *looked.lock().expect("refused") {
                0
            } else {
                5
            }
        },
    );
    let listed = Arc::new(Mutex::new(Vec::new()));
    let seen = listed.clone();
    stock.expect_list_reservations().returning(move |orders| {
        seen.lock().expect("listed").push(orders);
        Ok(Vec::new())
    });
    let reserved = Arc::new(Mutex::new(Vec::new()));
    let (record, refuse) = (reserved.clone(), refused.clone());
    // The batch holds its orders with one BatchReserveOrders, the lone path with ReserveOrder.
    let reserve = Arc::new(move |request: stock::ReserveOrderRequest| {
        record.lock().expect("record").push(request.clone());
        let line = &request.lines[0];
        if line.warehouse_id == potsdam.to_string() {
            *refuse.lock().expect("refused") = true;
            Err(StockError::InsufficientStock {
                product_id: line.product_id.clone(),
                warehouse_id: line.warehouse_id.clone(),
                requested: line.quantity,
                available: 0,
            })
        } else {
            Ok(stock::ReserveOrderResponse::default())
        }
    });
    let alone = reserve.clone();
    stock
        .expect_reserve_order()
        .returning(move |request| alone(request));
    stock
        .expect_batch_reserve_orders()
        .returning(move |orders| Ok(orders.into_iter().map(|r| reserve(r)).collect()));
    let api = api_over(&pool, stock).await.with_batches(eight_a_batch());
    let response = api
        .allocate_order(tonic::Request::new(order(
            "o-1",
            &[("1", &mug.to_string(), 2)],
        )))
        .await
        .expect("allocated on the second plan")
        .into_inner();
    assert_eq!(
        sources(&response.allocation.expect("allocation")),
        [("1".to_owned(), munich.to_string(), 2)]
    );
    let attempts = reserved.lock().expect("attempts").clone();
    assert_eq!(
        attempts
            .iter()
            .map(|r| r.lines[0].warehouse_id.clone())
            .collect::<Vec<_>>(),
        [potsdam.to_string(), munich.to_string()],
        "the batch's plan, then the lone plan on fresh numbers"
    );
    assert_ne!(attempts[0].request_id, attempts[1].request_id);
    let listed = listed.lock().expect("listed").clone();
    assert_eq!(
        listed.first().cloned(),
        Some(vec!["o-1".to_owned()]),
        "the batch asked stock once for what it holds of its orders"
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM allocation.allocations")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, 1);
}

/// A batch is read from stock while the batch before it is still in its transaction, and
/// cannot tell whether its read came before that batch's holds and room: it plans on what
/// that batch left. The first batch is kept in its transaction by a lock on Potsdam's room
/// (another replica's claim), and the second order goes to Munich in its own batch
/// meanwhile, where it would otherwise be refused (stock) or find no room (capacity), let go
/// and be planned again alone. Stock: it keeps showing the last Potsdam unit the first order
/// took. Room: Potsdam takes two open lines; with the first order's line counted, a second
/// would fill it, and the planner passes it over for Munich.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_read_while_the_one_before_holds_plans_on_what_that_one_left() {
    for (case, potsdam_units, potsdam_capacity) in [("stock", 1, 10), ("room", 5, 2)] {
        read_while_the_one_before_holds(case, potsdam_units, potsdam_capacity).await;
    }
}

async fn read_while_the_one_before_holds(case: &str, potsdam_units: i64, potsdam_capacity: i64) {
    let database = TestDatabase::create().await;
    let pool = database.migrate("allocation", &MIGRATOR).await;
    let (potsdam, munich, mug) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    // The numbers from before the first hold, every time.
    let mut stock = scripted_stock(
        vec![
            warehouse(potsdam, "Potsdam", POTSDAM),
            warehouse(munich, "Munich", MUNICH),
        ],
        move |at| if at == potsdam { potsdam_units } else { 5 },
    );
    stock
        .expect_list_reservations()
        .returning(|_| Ok(Vec::new()));
    // Potsdam's unit is held once.
    let holds = Arc::new(Mutex::new(Vec::new()));
    let (record, potsdam_taken) = (holds.clone(), Mutex::new(false));
    stock
        .expect_batch_reserve_orders()
        .returning(move |orders| {
            record.lock().expect("holds").extend(orders.clone());
            Ok(orders
                .into_iter()
                .map(|order| {
                    let line = &order.lines[0];
                    let mut taken = potsdam_taken.lock().expect("potsdam");
                    if line.warehouse_id == potsdam.to_string() && *taken && potsdam_units == 1 {
                        return Err(StockError::InsufficientStock {
                            product_id: line.product_id.clone(),
                            warehouse_id: line.warehouse_id.clone(),
                            requested: line.quantity,
                            available: 0,
                        });
                    }
                    *taken |= line.warehouse_id == potsdam.to_string();
                    Ok(stock::ReserveOrderResponse::default())
                })
                .collect())
        });
    stock.expect_reserve_order().never();
    stock.expect_release().never();
    let api = api_over(&pool, stock).await.with_batches(eight_a_batch());
    sqlx::query("INSERT INTO warehouse_profiles (warehouse_id, capacity_lines) VALUES ($1, $2)")
        .bind(potsdam)
        .bind(potsdam_capacity)
        .execute(&pool)
        .await
        .expect("Potsdam's capacity");
    let mut claim = pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM warehouse_profiles WHERE warehouse_id = $1 FOR UPDATE")
        .bind(potsdam)
        .execute(&mut *claim)
        .await
        .expect("lock Potsdam's room");
    let allocate = |order_id: &str| {
        let (api, request) = (api.clone(), order(order_id, &[("1", &mug.to_string(), 1)]));
        tokio::spawn(async move { api.allocate_order(tonic::Request::new(request)).await })
    };
    let first = allocate("o-1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while holds.lock().expect("holds").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{case}: the first order was never held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let shipped_from = |answer: Result<tonic::Response<_>, tonic::Status>| {
        let response: inventory_proto::allocation::v1::AllocateOrderResponse =
            answer.expect("allocated").into_inner();
        sources(&response.allocation.expect("allocation"))
    };
    let second = tokio::time::timeout(std::time::Duration::from_secs(10), allocate("o-2"))
        .await
        .unwrap_or_else(|_| {
            panic!("{case}: the second order is answered while the first batch waits")
        })
        .expect("join");
    assert_eq!(
        shipped_from(second),
        [("1".to_owned(), munich.to_string(), 1)],
        "{case}"
    );
    assert!(
        !first.is_finished(),
        "{case}: the first batch still waits for room"
    );
    claim.rollback().await.expect("rollback");
    assert_eq!(
        shipped_from(first.await.expect("join")),
        [("1".to_owned(), potsdam.to_string(), 1)],
        "{case}"
    );
    let holds = holds.lock().expect("holds").clone();
    assert_eq!(
        holds
            .iter()
            .map(|r| (r.order_id.clone(), r.lines[0].warehouse_id.clone()))
            .collect::<Vec<_>>(),
        [
            ("o-1".to_owned(), potsdam.to_string()),
            ("o-2".to_owned(), munich.to_string())
        ],
        "{case}: each order held once, in its batch"
    );
}

/// An order stock answered without holding it, for a reason other than the plan, is
/// planned again alone (where the stock call retries): the batch call missing from an older
/// stock (mid-upgrade), and an order whose own stock transaction aborted.
#[tokio::test]
async fn an_order_stock_held_nothing_for_is_allocated_alone_after_an_unimplemented_or_aborted_answer()
 {
    type BatchAnswer = Result<Vec<Result<stock::ReserveOrderResponse, StockError>>, StockError>;
    type Answer = fn() -> BatchAnswer;
    let answers: [(&str, Answer); 2] = [
        ("unimplemented", || {
            Err(StockError::Other {
                code: Code::Unimplemented,
                message: "unknown method BatchReserveOrders".to_owned(),
            })
        }),
        ("aborted", || {
            Ok(vec![Err(StockError::Aborted(
                "could not serialize".to_owned(),
            ))])
        }),
    ];
    for (case, answer) in answers {
        let database = TestDatabase::create().await;
        let pool = database.migrate("allocation", &MIGRATOR).await;
        let (potsdam, mug) = (Uuid::now_v7(), Uuid::now_v7());
        let mut stock = scripted_stock(vec![warehouse(potsdam, "Potsdam", POTSDAM)], |_| 5);
        stock
            .expect_list_reservations()
            .returning(|_| Ok(Vec::new()));
        stock
            .expect_batch_reserve_orders()
            .times(1)
            .returning(move |_| answer());
        stock
            .expect_reserve_order()
            .times(1)
            .returning(|_| Ok(stock::ReserveOrderResponse::default()));
        let api = api_over(&pool, stock).await.with_batches(eight_a_batch());
        let response = api
            .allocate_order(tonic::Request::new(order(
                "o-1",
                &[("1", &mug.to_string(), 2)],
            )))
            .await
            .unwrap_or_else(|status| panic!("{case}: allocated alone: {status:?}"))
            .into_inner();
        assert_eq!(
            sources(&response.allocation.expect("allocation")),
            [("1".to_owned(), potsdam.to_string(), 2)],
            "{case}"
        );
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM allocation.allocations")
            .fetch_one(&pool)
            .await
            .expect("count");
        assert_eq!(stored, 1, "{case}: recorded once");
    }
}

/// Another attempt for the same order (another replica, or a retry under a new request id)
/// holds the order's lock, holds it in stock, then rolls back its own record. This attempt,
/// waiting on that lock meanwhile, must adopt the hold it finds, not hold the order again:
/// stock is asked what it holds only once the lock is granted. Alone and in a batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_held_by_an_attempt_that_rolled_back_while_this_one_waited_is_adopted_not_held_again()
 {
    for batched in [false, true] {
        let database = TestDatabase::create().await;
        let pool = database.migrate("allocation", &MIGRATOR).await;
        let (potsdam, mug) = (Uuid::now_v7(), Uuid::now_v7());
        let held_by_the_other = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut stock = scripted_stock(vec![warehouse(potsdam, "Potsdam", POTSDAM)], |_| 5);
        let held = held_by_the_other.clone();
        stock.expect_list_reservations().returning(move |_| {
            Ok(if held.load(Ordering::SeqCst) {
                vec![stock::Reservation {
                    reservation_id: "held-by-the-other".to_owned(),
                    order_id: "o-1".to_owned(),
                    order_line_id: "1".to_owned(),
                    product_id: mug.to_string(),
                    warehouse_id: potsdam.to_string(),
                    status: stock::ReservationStatus::Active as i32,
                    quantity_requested: 2,
                    quantity_held: 2,
                    ..Default::default()
                }]
            } else {
                Vec::new()
            })
        });
        stock.expect_batch_reserve_orders().never();
        stock.expect_reserve_order().never();
        let api = api_over(&pool, stock).await;
        let api = if batched {
            api.with_batches(eight_a_batch())
        } else {
            api
        };

        // The other attempt, in its transaction with the order's lock.
        let mut other = pool.begin().await.expect("begin");
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('o-1', 0))")
            .execute(&mut *other)
            .await
            .expect("order lock");
        let waiting = tokio::spawn({
            let api = api.clone();
            async move {
                api.allocate_order(tonic::Request::new(order(
                    "o-1",
                    &[("1", &mug.to_string(), 2)],
                )))
                .await
            }
        });
        // This attempt waits on the order's lock...
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let blocked: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks
                  WHERE locktype = 'advisory' AND NOT granted
                    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .fetch_one(&pool)
            .await
            .expect("locks");
            if blocked == 1 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "batched {batched}: never waited on the order's lock"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        // ...while the other one holds in stock and rolls back its record.
        held_by_the_other.store(true, Ordering::SeqCst);
        other.rollback().await.expect("rollback");

        let response = waiting
            .await
            .expect("task")
            .unwrap_or_else(|status| panic!("batched {batched}: adopted: {status:?}"))
            .into_inner();
        let allocation = response.allocation.expect("allocation");
        assert_eq!(
            sources(&allocation),
            [("1".to_owned(), potsdam.to_string(), 2)],
            "batched {batched}: the other attempt's hold, adopted"
        );
        assert!(
            allocation.lines[0].reason.contains("adopted"),
            "batched {batched}: {:?}",
            allocation.lines[0].reason
        );
    }
}

/// A batch holds in stock before it claims its warehouses' room, and the next batch holds,
/// records and answers while the first still waits in its transaction for that room. When
/// the room is gone by then, the first batch lets go of what stock holds for it and its
/// order is planned again alone, elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_holds_while_the_one_before_waits_for_room_and_one_whose_room_is_gone_lets_go() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let munich = app.warehouse("Munich", MUNICH).await;
    let (mug, plate) = (app.product("MUG").await, app.product("PLATE").await);
    app.receive(&mug, &potsdam, 5).await;
    app.receive(&mug, &munich, 5).await;
    app.receive(&plate, &munich, 5).await;
    app.set_profile(&potsdam, Some(10), false)
        .await
        .expect("Potsdam takes 10 open lines");

    // Another replica's claim on Potsdam's room, in its transaction.
    let mut db = app.server.database.connect("allocation").await;
    let mut claim = sqlx::Connection::begin(&mut db).await.expect("begin");
    sqlx::query("SELECT 1 FROM warehouse_profiles WHERE warehouse_id = $1::uuid FOR UPDATE")
        .bind(&potsdam)
        .execute(&mut *claim)
        .await
        .expect("lock Potsdam's profile");
    let first = tokio::spawn({
        let mut client = app.client.clone();
        let request = order("o-1", &[("1", &mug, 1)]);
        async move { client.allocate_order(request).await }
    });
    // Stock holds o-1 in Potsdam (nearest to Berlin) while its batch waits for the room.
    let mut watcher = app.server.database.connect("allocation").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'allocation'
                AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .expect("activity");
        if waiting == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first batch never waited for Potsdam's room"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        app.stock_level(&mug, &potsdam).await,
        (5, 1),
        "held before the room"
    );

    let second = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        app.allocate(order("o-2", &[("1", &plate, 1)])),
    )
    .await
    .expect("the second batch is answered while the first waits")
    .expect("allocated");
    assert_eq!(sources(&second), [("1".to_owned(), munich.clone(), 1)]);
    assert!(!first.is_finished(), "the first still waits for the room");

    // The other replica fills Potsdam up and commits.
    sqlx::query(
        "UPDATE warehouse_profiles SET open_lines = capacity_lines WHERE warehouse_id = $1::uuid",
    )
    .bind(&potsdam)
    .execute(&mut *claim)
    .await
    .expect("fill Potsdam");
    claim.commit().await.expect("commit");
    let first = first
        .await
        .expect("join")
        .expect("allocated alone, elsewhere")
        .into_inner()
        .allocation
        .expect("allocation");
    assert_eq!(sources(&first), [("1".to_owned(), munich.clone(), 1)]);
    let held: Vec<(String, i64)> = app
        .reservations("o-1")
        .await
        .into_iter()
        .filter(|r| r.status == stock::ReservationStatus::Active as i32)
        .map(|r| (r.warehouse_id, r.quantity_held))
        .collect();
    assert_eq!(held, [(munich.clone(), 1)], "Potsdam's hold was let go");
    assert_eq!(app.stock_level(&mug, &potsdam).await, (5, 0));
    assert_eq!(app.stock_level(&mug, &munich).await, (5, 1));
    app.assert_ledger_clean().await;
}

/// One lane, batches of up to 8 orders, the default number in flight.
fn eight_a_batch() -> Batches {
    Batches {
        max_batch: 8,
        ..Batches::default()
    }
}
