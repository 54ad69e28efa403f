//! AllocateOrder against real stock: where each order ships from, what stock then holds,
//! and the retry story.

use inventory_proto::allocation::v1 as pb;
use inventory_proto::stock::v1 as stock;
use inventory_testkit::assert_idempotent;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::{HAMBURG, MUNICH, POTSDAM, TestApp, order, sources};

#[tokio::test]
async fn an_order_ships_from_the_nearest_warehouse_that_holds_all_of_it() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let munich = app.warehouse("Munich", MUNICH).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 2).await;
    app.receive(&mug, &munich, 10).await;
    let allocation = app
        .allocate(order("o-1", &[("1", &mug, 2)]))
        .await
        .expect("allocated");
    assert_eq!(sources(&allocation), [("1".to_owned(), potsdam.clone(), 2)]);
    assert_eq!(allocation.shipments.len(), 1);
    assert_eq!(allocation.shipments[0].warehouse_name, "Potsdam");
    assert!(
        allocation.lines[0].reason.contains("nearest"),
        "{}",
        allocation.lines[0].reason
    );
    assert_eq!(app.stock_level(&mug, &potsdam).await, (2, 2));
    assert_eq!(app.stock_level(&mug, &munich).await, (10, 0));
}

#[tokio::test]
async fn a_closer_warehouse_short_of_stock_is_passed_over_with_its_reason() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let hamburg = app.warehouse("Hamburg", HAMBURG).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 1).await;
    app.receive(&mug, &hamburg, 10).await;
    let allocation = app
        .allocate(order("o-1", &[("1", &mug, 3)]))
        .await
        .expect("allocated");
    assert_eq!(sources(&allocation), [("1".to_owned(), hamburg, 3)]);
    let passed = &allocation.lines[0].passed_over;
    assert_eq!(passed.len(), 1, "{passed:?}");
    assert_eq!(passed[0].warehouse_id, potsdam);
    assert_eq!(passed[0].reason(), pb::PassOverReason::NoStock);
    assert_eq!(passed[0].available, 1);
}

#[tokio::test]
async fn one_warehouse_ships_the_whole_order_even_past_a_closer_one_for_a_line() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let hamburg = app.warehouse("Hamburg", HAMBURG).await;
    let (mug, plate) = (app.product("MUG").await, app.product("PLATE").await);
    app.receive(&mug, &potsdam, 5).await;
    app.receive(&mug, &hamburg, 5).await;
    app.receive(&plate, &hamburg, 5).await;
    let allocation = app
        .allocate(order("o-1", &[("1", &mug, 1), ("2", &plate, 1)]))
        .await
        .expect("allocated");
    assert_eq!(allocation.shipments.len(), 1);
    assert_eq!(allocation.shipments[0].warehouse_id, hamburg);
    let mug_line = &allocation.lines[0];
    assert_eq!(
        mug_line.passed_over[0].reason(),
        pb::PassOverReason::Consolidation
    );
}

#[tokio::test]
async fn an_order_no_single_warehouse_holds_is_reserved_across_two() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let munich = app.warehouse("Munich", MUNICH).await;
    let (mug, plate) = (app.product("MUG").await, app.product("PLATE").await);
    app.receive(&mug, &potsdam, 5).await;
    app.receive(&plate, &munich, 5).await;
    let allocation = app
        .allocate(order("o-1", &[("1", &mug, 2), ("2", &plate, 3)]))
        .await
        .expect("allocated");
    assert_eq!(
        sources(&allocation),
        [
            ("1".to_owned(), potsdam.clone(), 2),
            ("2".to_owned(), munich.clone(), 3)
        ]
    );
    assert_eq!(app.stock_level(&mug, &potsdam).await, (5, 2));
    assert_eq!(app.stock_level(&plate, &munich).await, (5, 3));
    assert_eq!(app.reservations("o-1").await.len(), 2);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn an_order_nothing_can_serve_names_each_short_line_and_reserves_nothing() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let (mug, plate) = (app.product("MUG").await, app.product("PLATE").await);
    app.receive(&mug, &potsdam, 5).await;
    app.receive(&plate, &potsdam, 1).await;
    let status = app
        .allocate(order("o-1", &[("1", &mug, 2), ("2", &plate, 3)]))
        .await
        .expect_err("only one plate");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let info = status.get_details_error_info().expect("error info");
    assert_eq!(info.reason, "ORDER_NOT_SERVABLE");
    assert_eq!(info.domain, "allocation");
    let failure = status
        .get_details_precondition_failure()
        .expect("precondition failure");
    let subjects: Vec<&str> = failure
        .violations
        .iter()
        .map(|v| v.subject.as_str())
        .collect();
    assert_eq!(subjects, ["lines[1]"]);
    assert!(failure.violations[0].description.contains("requested 3"));
    assert!(app.reservations("o-1").await.is_empty());
    assert_eq!(app.stock_level(&mug, &potsdam).await, (5, 0));
}

#[tokio::test]
async fn with_partial_allowed_what_can_be_served_is_allocated_and_the_rest_reported() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let (mug, plate) = (app.product("MUG").await, app.product("PLATE").await);
    app.receive(&mug, &potsdam, 5).await;
    let mut request = order("o-1", &[("1", &mug, 2), ("2", &plate, 3)]);
    request.options = Some(pb::AllocationOptions {
        allow_partial: true,
        ..Default::default()
    });
    let allocation = app.allocate(request).await.expect("partly allocated");
    assert_eq!(sources(&allocation), [("1".to_owned(), potsdam, 2)]);
    assert_eq!(
        allocation.shortfalls,
        [pb::LineShortfall {
            order_line_id: "2".to_owned(),
            requested: 3,
            allocated: 0
        }]
    );
}

#[tokio::test]
async fn a_retried_allocation_reserves_once_and_its_id_cannot_be_reused() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 5).await;
    let request = order("o-1", &[("1", &mug, 2)]);
    let altered = pb::AllocateOrderRequest {
        order_id: "o-2".to_owned(),
        ..request.clone()
    };
    let allocate = |request| {
        let mut client = app.client.clone();
        async move {
            client
                .allocate_order(request)
                .await
                .map(tonic::Response::into_inner)
        }
    };
    assert_idempotent(allocate, request, altered).await;
    assert_eq!(app.stock_level(&mug, &potsdam).await, (5, 2));
    assert_eq!(app.reservations("o-1").await.len(), 1);
    assert!(app.reservations("o-2").await.is_empty());
}

#[tokio::test]
async fn allocating_an_order_twice_with_new_request_ids_is_already_exists() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 5).await;
    app.allocate(order("o-1", &[("1", &mug, 2)]))
        .await
        .expect("first");
    let status = app
        .allocate(order("o-1", &[("1", &mug, 2)]))
        .await
        .expect_err("the order is allocated");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert_eq!(app.stock_level(&mug, &potsdam).await, (5, 2));
}

#[tokio::test]
async fn two_orders_racing_for_the_last_unit_leave_exactly_one_winner() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 1).await;
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let mut client = app.client.clone();
            let request = order(&format!("o-{i}"), &[("1", &mug, 1)]);
            tokio::spawn(async move { client.allocate_order(request).await })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.expect("join") {
            Ok(_) => won += 1,
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(app.stock_level(&mug, &potsdam).await, (1, 1));
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_nearly_full_warehouse_gives_way_to_a_farther_one_and_a_full_or_paused_one_is_skipped() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let hamburg = app.warehouse("Hamburg", HAMBURG).await;
    let munich = app.warehouse("Munich", MUNICH).await;
    let mug = app.product("MUG").await;
    for w in [&potsdam, &hamburg, &munich] {
        app.receive(&mug, w, 10).await;
    }
    app.set_profile(&hamburg, None, true).await.expect("paused");
    // One line would fill Potsdam to capacity: Munich, 500 km farther, ships instead.
    app.set_profile(&potsdam, Some(1), false)
        .await
        .expect("capacity 1");
    let nearly_full = app
        .allocate(order("o-1", &[("1", &mug, 1)]))
        .await
        .expect("allocated");
    assert_eq!(sources(&nearly_full)[0].1, munich);
    let reasons = |a: &pb::Allocation| -> Vec<(String, pb::PassOverReason)> {
        a.lines[0]
            .passed_over
            .iter()
            .map(|p| (p.warehouse_id.clone(), p.reason()))
            .collect()
    };
    let why = reasons(&nearly_full);
    assert!(
        why.contains(&(potsdam.clone(), pb::PassOverReason::Workload)),
        "{why:?}"
    );
    assert!(
        why.contains(&(hamburg.clone(), pb::PassOverReason::Paused)),
        "{why:?}"
    );
    // At capacity, it is never chosen.
    app.set_profile(&potsdam, Some(0), false)
        .await
        .expect("capacity 0");
    let full = app
        .allocate(order("o-2", &[("1", &mug, 1)]))
        .await
        .expect("allocated");
    assert_eq!(sources(&full)[0].1, munich);
    assert!(reasons(&full).contains(&(potsdam, pb::PassOverReason::AtCapacity)));
}

#[tokio::test]
async fn a_warehouse_created_in_stock_is_used_without_a_restart() {
    let app = TestApp::spawn().await;
    let munich = app.warehouse("Munich", MUNICH).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &munich, 5).await;
    let first = app
        .allocate(order("o-1", &[("1", &mug, 1)]))
        .await
        .expect("first");
    assert_eq!(sources(&first)[0].1, munich);
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    app.receive(&mug, &potsdam, 5).await;
    let second = app
        .allocate(order("o-2", &[("1", &mug, 1)]))
        .await
        .expect("second");
    assert_eq!(sources(&second)[0].1, potsdam);
}

/// Holds line "1" of an order in stock as an attempt of AllocateOrder that died before
/// recording anything would have left it.
async fn hold_as_an_interrupted_attempt(
    app: &TestApp,
    order_id: &str,
    product_id: &str,
    warehouse_id: &str,
    quantity: i64,
) {
    app.stock
        .client
        .clone()
        .reserve_order(stock::ReserveOrderRequest {
            request_id: format!("crashed:reserve:{order_id}"),
            order_id: order_id.to_owned(),
            lines: vec![stock::ReservationLine {
                order_line_id: "1".to_owned(),
                product_id: product_id.to_owned(),
                warehouse_id: warehouse_id.to_owned(),
                quantity,
            }],
            ..Default::default()
        })
        .await
        .expect("held by the interrupted attempt");
}

#[tokio::test]
async fn holds_an_interrupted_attempt_left_in_stock_are_adopted_not_reserved_again() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let munich = app.warehouse("Munich", MUNICH).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 5).await;
    app.receive(&mug, &munich, 5).await;
    // An attempt that reserved in stock (from Munich) and died before recording anything.
    hold_as_an_interrupted_attempt(&app, "o-1", &mug, &munich, 2).await;
    let allocation = app
        .allocate(order("o-1", &[("1", &mug, 2)]))
        .await
        .expect("the retry");
    assert_eq!(sources(&allocation), [("1".to_owned(), munich.clone(), 2)]);
    assert_eq!(app.stock_level(&mug, &munich).await, (5, 2));
    assert_eq!(
        app.stock_level(&mug, &potsdam).await,
        (5, 0),
        "nothing reserved twice"
    );
    assert_eq!(app.reservations("o-1").await.len(), 1);
}

#[tokio::test]
async fn a_hold_left_in_a_warehouse_that_filled_up_since_is_released_and_the_order_planned_again() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let munich = app.warehouse("Munich", MUNICH).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &munich, 5).await;
    app.set_profile(&munich, Some(1), false)
        .await
        .expect("room for one line");
    // An attempt that held o-1 in Munich and died before counting its line there.
    hold_as_an_interrupted_attempt(&app, "o-1", &mug, &munich, 1).await;
    // Meanwhile another order took Munich's one line of room.
    let other = app
        .allocate(order("o-0", &[("1", &mug, 1)]))
        .await
        .expect("o-0");
    assert_eq!(sources(&other), [("1".to_owned(), munich.clone(), 1)]);
    app.receive(&mug, &potsdam, 5).await;

    let allocation = app
        .allocate(order("o-1", &[("1", &mug, 1)]))
        .await
        .expect("the retry");
    assert_eq!(sources(&allocation), [("1".to_owned(), potsdam.clone(), 1)]);
    assert_eq!(
        app.stock_level(&mug, &munich).await,
        (5, 1),
        "the hold left in Munich released, o-0's kept"
    );
    assert_eq!(app.stock_level(&mug, &potsdam).await, (5, 1));
    let active: Vec<String> = app
        .reservations("o-1")
        .await
        .into_iter()
        .filter(|r| r.status == stock::ReservationStatus::Active as i32)
        .map(|r| r.warehouse_id)
        .collect();
    assert_eq!(active, [potsdam]);
    let profile = app
        .set_profile(&munich, Some(1), false)
        .await
        .expect("recount");
    assert_eq!(profile.open_lines, 1, "Munich never passed its capacity");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn orders_racing_for_the_last_room_in_a_warehouse_never_pass_its_capacity() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 100).await;
    app.set_profile(&potsdam, Some(2), false)
        .await
        .expect("capacity 2");
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let mut client = app.client.clone();
            let request = order(&format!("o-{i}"), &[("1", &mug, 1)]);
            tokio::spawn(async move { client.allocate_order(request).await })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.expect("join") {
            Ok(_) => won += 1,
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(won, 2, "room for two lines");
    assert_eq!(
        app.stock_level(&mug, &potsdam).await,
        (100, 2),
        "held only for the winners"
    );
    let profile = app
        .set_profile(&potsdam, Some(2), false)
        .await
        .expect("recount");
    assert_eq!(profile.open_lines, 2);
    app.assert_ledger_clean().await;
}
