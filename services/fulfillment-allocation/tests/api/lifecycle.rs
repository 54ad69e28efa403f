//! After allocation: reading, listing, cancelling and shipping, each reflected in stock.

use inventory_proto::allocation::v1 as pb;
use tonic::Code;

use crate::helpers::{MUNICH, POTSDAM, TestApp, order};

#[tokio::test]
async fn an_allocation_reads_back_as_it_was_answered() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 5).await;
    let allocated = app
        .allocate(order("o-1", &[("1", &mug, 2)]))
        .await
        .expect("allocated");
    assert_eq!(app.get("o-1").await.expect("get"), allocated);
    let status = app.get("o-404").await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn cancelling_releases_the_hold_in_stock() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 5).await;
    app.allocate(order("o-1", &[("1", &mug, 2)]))
        .await
        .expect("allocated");
    let cancelled = app.cancel("o-1").await.expect("cancelled");
    assert_eq!(cancelled.status(), pb::AllocationStatus::Cancelled);
    assert_eq!(app.stock_level(&mug, &potsdam).await, (5, 0));
    // Cancelling again changes nothing and says so calmly.
    let again = app.cancel("o-1").await.expect("still cancelled");
    assert_eq!(again.status(), pb::AllocationStatus::Cancelled);
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn shipping_decrements_on_hand_and_frees_the_warehouse() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 5).await;
    app.set_profile(&potsdam, Some(1), false)
        .await
        .expect("capacity 1");
    app.allocate(order("o-1", &[("1", &mug, 3)]))
        .await
        .expect("allocated");
    let partly = app
        .ship("o-1", &potsdam, &[("1", 1)])
        .await
        .expect("shipped 1");
    assert_eq!(partly.status(), pb::AllocationStatus::PartiallyShipped);
    assert_eq!(app.stock_level(&mug, &potsdam).await, (4, 2));
    let status = app
        .allocate(order("o-2", &[("1", &mug, 1)]))
        .await
        .expect_err("Potsdam is still full");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let shipped = app
        .ship("o-1", &potsdam, &[("1", 2)])
        .await
        .expect("shipped the rest");
    assert_eq!(shipped.status(), pb::AllocationStatus::Shipped);
    assert_eq!(app.stock_level(&mug, &potsdam).await, (2, 0));
    app.allocate(order("o-2", &[("1", &mug, 1)]))
        .await
        .expect("room again once shipped");
    app.assert_ledger_clean().await;
}

#[tokio::test]
async fn a_shipped_order_cannot_be_cancelled_and_says_so() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 5).await;
    app.allocate(order("o-1", &[("1", &mug, 2)]))
        .await
        .expect("allocated");
    app.ship("o-1", &potsdam, &[("1", 2)])
        .await
        .expect("shipped");
    let status = app.cancel("o-1").await.expect_err("shipped");
    assert_eq!(status.code(), Code::FailedPrecondition);
    let info = inventory_testkit::error_info(&status, "allocation");
    assert_eq!(info.0, "ORDER_ALREADY_SHIPPED");
}

#[tokio::test]
async fn shipping_more_than_was_allocated_is_refused_and_ships_nothing() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let munich = app.warehouse("Munich", MUNICH).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 5).await;
    app.allocate(order("o-1", &[("1", &mug, 2)]))
        .await
        .expect("allocated");
    let status = app
        .ship("o-1", &potsdam, &[("1", 3)])
        .await
        .expect_err("only 2 allocated");
    assert_eq!(
        inventory_testkit::error_info(&status, "allocation").0,
        "EXCEEDS_ALLOCATED_QUANTITY"
    );
    let status = app
        .ship("o-1", &munich, &[("1", 1)])
        .await
        .expect_err("not allocated to Munich");
    assert_eq!(
        inventory_testkit::bad_fields(&status),
        ["lines[0].order_line_id"]
    );
    assert_eq!(app.stock_level(&mug, &potsdam).await, (5, 2));
}

#[tokio::test]
async fn allocations_are_listed_by_warehouse_and_status_page_by_page() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let munich = app.warehouse("Munich", MUNICH).await;
    let (mug, plate) = (app.product("MUG").await, app.product("PLATE").await);
    app.receive(&mug, &potsdam, 10).await;
    app.receive(&plate, &munich, 10).await;
    for i in 0..3 {
        app.allocate(order(&format!("mug-{i}"), &[("1", &mug, 1)]))
            .await
            .expect("mug order");
    }
    app.allocate(order("plate-0", &[("1", &plate, 1)]))
        .await
        .expect("plate order");
    app.cancel("mug-1").await.expect("cancel");
    let mut seen = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = app
            .client
            .clone()
            .list_allocations(pb::ListAllocationsRequest {
                page_size: 1,
                page_token,
                warehouse_id: potsdam.clone(),
                status: pb::AllocationStatus::Allocated.into(),
            })
            .await
            .expect("list")
            .into_inner();
        seen.extend(page.allocations.into_iter().map(|a| a.order_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, ["mug-0", "mug-2"]);
}

#[tokio::test]
async fn profiles_list_every_warehouse_with_its_open_lines_capped_or_not() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let munich = app.warehouse("Munich", MUNICH).await;
    let (mug, plate) = (app.product("MUG").await, app.product("PLATE").await);
    app.receive(&mug, &potsdam, 5).await;
    app.receive(&plate, &munich, 5).await;
    app.allocate(order("o-1", &[("1", &mug, 1), ("2", &plate, 1)]))
        .await
        .expect("allocated");
    // A capacity set after the fact starts from the lines already open there.
    let capped = app
        .set_profile(&munich, Some(10), false)
        .await
        .expect("capped");
    assert_eq!((capped.capacity_lines, capped.open_lines), (Some(10), 1));
    let profiles = app
        .client
        .clone()
        .list_warehouse_profiles(pb::ListWarehouseProfilesRequest {})
        .await
        .expect("profiles")
        .into_inner()
        .profiles;
    let open = |id: &str| {
        profiles
            .iter()
            .find(|p| p.warehouse_id == id)
            .map(|p| (p.capacity_lines, p.open_lines, p.has_coordinates))
    };
    assert_eq!(open(&potsdam), Some((None, 1, true)));
    assert_eq!(open(&munich), Some((Some(10), 1, true)));
}

#[tokio::test]
async fn shipping_a_line_whose_hold_expired_is_refused_before_anything_ships() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let (mug, plate) = (app.product("MUG").await, app.product("PLATE").await);
    app.receive(&mug, &potsdam, 5).await;
    app.receive(&plate, &potsdam, 5).await;
    let mut request = order("o-1", &[("1", &mug, 1), ("2", &plate, 1)]);
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    request.options = Some(pb::AllocationOptions {
        reservation_expire_time: Some(prost_types::Timestamp {
            seconds: soon.timestamp(),
            nanos: soon.timestamp_subsec_nanos() as i32,
        }),
        ..Default::default()
    });
    app.allocate(request.clone()).await.expect("allocated");
    // Stock's expiry releases both holds.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    while app.stock_level(&mug, &potsdam).await.1 > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "holds never expired"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status = app
        .ship("o-1", &potsdam, &[("1", 1), ("2", 1)])
        .await
        .expect_err("nothing is held any more");
    assert_eq!(
        inventory_testkit::error_info(&status, "allocation").0,
        "RESERVATION_NOT_HELD"
    );
    assert_eq!(app.stock_level(&mug, &potsdam).await, (5, 0));
    assert_eq!(app.stock_level(&plate, &potsdam).await, (5, 0));
    // A retry of the allocation after its expiry passed replays the first answer.
    let replayed = app.allocate(request).await.expect("replayed");
    assert_eq!(replayed.order_id, "o-1");
}

#[tokio::test]
async fn a_shipment_retried_after_failing_half_way_ships_each_line_once() {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let (mug, plate) = (app.product("MUG").await, app.product("PLATE").await);
    app.receive(&mug, &potsdam, 5).await;
    app.receive(&plate, &potsdam, 5).await;
    app.allocate(order("o-1", &[("1", &mug, 2), ("2", &plate, 2)]))
        .await
        .expect("allocated");
    // An earlier attempt of this request shipped line 1 in stock, then failed on line 2
    // (stock unreachable) and recorded nothing.
    let request_id = inventory_testkit::new_id();
    app.stock
        .client
        .clone()
        .ship_reservation(inventory_proto::stock::v1::ShipReservationRequest {
            request_id: fulfillment_allocation_service::api::stock_request_id(
                &request_id,
                "ship:0",
            ),
            order_id: "o-1".to_owned(),
            order_line_id: "1".to_owned(),
            warehouse_id: potsdam.clone(),
            quantity: 2,
            actor: "test".to_owned(),
        })
        .await
        .expect("the first attempt's line 1");
    let shipped = app
        .client
        .clone()
        .confirm_shipment(pb::ConfirmShipmentRequest {
            request_id,
            order_id: "o-1".to_owned(),
            warehouse_id: potsdam.clone(),
            lines: vec![
                pb::ShipmentLineQuantity {
                    order_line_id: "1".to_owned(),
                    quantity: 2,
                },
                pb::ShipmentLineQuantity {
                    order_line_id: "2".to_owned(),
                    quantity: 2,
                },
            ],
            actor: "test".to_owned(),
        })
        .await
        .expect("the retry completes")
        .into_inner()
        .allocation
        .expect("allocation");
    assert_eq!(shipped.status(), pb::AllocationStatus::Shipped);
    assert_eq!(
        app.stock_level(&mug, &potsdam).await,
        (3, 0),
        "line 1 shipped once"
    );
    assert_eq!(app.stock_level(&plate, &potsdam).await, (3, 0));
    app.assert_ledger_clean().await;
}
