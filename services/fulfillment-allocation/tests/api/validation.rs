//! Bad input: INVALID_ARGUMENT (or NOT_FOUND) naming the field, and nothing reserved.

use inventory_proto::allocation::v1 as pb;
use tonic::Code;

use crate::helpers::{POTSDAM, TestApp, bad_fields, order};

async fn stocked() -> (TestApp, String, String) {
    let app = TestApp::spawn().await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 5).await;
    (app, potsdam, mug)
}

#[tokio::test]
async fn an_order_without_lines_is_invalid() {
    let (app, _, _) = stocked().await;
    let status = app.allocate(order("o-1", &[])).await.expect_err("no lines");
    assert_eq!(bad_fields(&status), ["lines"]);
}

#[tokio::test]
async fn more_lines_than_the_limit_are_invalid() {
    let (app, _, mug) = stocked().await;
    let ids: Vec<String> = (0..201).map(|i| i.to_string()).collect();
    let lines: Vec<(&str, &str, i64)> = ids
        .iter()
        .map(|id| (id.as_str(), mug.as_str(), 1))
        .collect();
    let status = app
        .allocate(order("o-1", &lines))
        .await
        .expect_err("201 lines");
    assert_eq!(bad_fields(&status), ["lines"]);
}

#[tokio::test]
async fn repeated_line_ids_and_bad_quantities_are_each_named() {
    let (app, potsdam, mug) = stocked().await;
    let status = app
        .allocate(order(
            "o-1",
            &[("1", &mug, 1), ("1", &mug, 0), ("2", &mug, -3)],
        ))
        .await
        .expect_err("bad lines");
    assert_eq!(
        bad_fields(&status),
        [
            "lines[1].quantity",
            "lines[1].order_line_id",
            "lines[2].quantity"
        ]
    );
    assert_eq!(app.stock_level(&mug, &potsdam).await, (5, 0));
}

#[tokio::test]
async fn coordinates_out_of_range_are_invalid() {
    let (app, _, mug) = stocked().await;
    let mut request = order("o-1", &[("1", &mug, 1)]);
    request.destination = Some(pb::Destination {
        latitude: 91.0,
        longitude: f64::NAN,
        ..Default::default()
    });
    let status = app.allocate(request).await.expect_err("bad coordinates");
    assert_eq!(
        bad_fields(&status),
        ["destination.latitude", "destination.longitude"]
    );
}

#[tokio::test]
async fn a_missing_destination_and_a_malformed_product_are_invalid() {
    let (app, _, _) = stocked().await;
    let mut request = order("o-1", &[("1", "not-a-uuid", 1)]);
    request.destination = None;
    let status = app.allocate(request).await.expect_err("bad request");
    assert_eq!(bad_fields(&status), ["destination", "lines[0].product_id"]);
}

#[tokio::test]
async fn an_unknown_product_is_not_found_and_names_its_line() {
    let (app, potsdam, mug) = stocked().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let status = app
        .allocate(order("o-1", &[("1", &mug, 1), ("2", &unknown, 1)]))
        .await
        .expect_err("unknown product");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(
        status.message().contains("lines[1]"),
        "{}",
        status.message()
    );
    assert_eq!(app.stock_level(&mug, &potsdam).await, (5, 0));
}

#[tokio::test]
async fn max_shipments_out_of_range_is_invalid() {
    let (app, _, mug) = stocked().await;
    let mut request = order("o-1", &[("1", &mug, 1)]);
    request.options = Some(pb::AllocationOptions {
        max_shipments: 51,
        ..Default::default()
    });
    let status = app.allocate(request).await.expect_err("too many");
    assert_eq!(bad_fields(&status), ["options.max_shipments"]);
}

/// Found by fuzzing: every request id and actor allocation accepts, stock accepts too (the
/// ids it derives for stock have a fixed length; the actor's limits are stock's), and what
/// allocation cannot pass on is refused by allocation, naming its own field.
#[tokio::test]
async fn ids_and_actors_at_allocations_limits_reach_stock_and_beyond_them_are_refused_here() {
    let (app, potsdam, mug) = stocked().await;
    let longest = |c: char| std::iter::repeat_n(c, 128).collect::<String>();
    let mut allocate = order("o-long", &[("1", &mug, 2)]);
    allocate.request_id = longest('a');
    allocate.actor = longest('x');
    app.allocate(allocate)
        .await
        .expect("a 128-character request id and actor");

    let ship = pb::ConfirmShipmentRequest {
        request_id: longest('s'),
        order_id: "o-long".to_owned(),
        warehouse_id: potsdam.clone(),
        lines: vec![pb::ShipmentLineQuantity {
            order_line_id: "1".to_owned(),
            quantity: 1,
        }],
        actor: longest('y'),
    };
    app.client
        .clone()
        .confirm_shipment(ship)
        .await
        .expect("a 128-character request id on a shipment");
    app.client
        .clone()
        .cancel_allocation(pb::CancelAllocationRequest {
            request_id: longest('c'),
            order_id: "o-long".to_owned(),
            reason: "customer cancelled the rest".to_owned(),
            actor: longest('z'),
        })
        .await
        .expect("a 128-character request id on a cancellation");
    assert_eq!(app.stock_level(&mug, &potsdam).await, (4, 0));

    for actor in [" ".to_owned(), " checkout".to_owned(), "x".repeat(129)] {
        let mut allocate = order("o-bad-actor", &[("1", &mug, 1)]);
        allocate.actor = actor.clone();
        let status = app.allocate(allocate).await.expect_err("a bad actor");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{actor:?}: {status:?}"
        );
        assert_eq!(bad_fields(&status), ["actor"], "{actor:?}");
        let status = app
            .client
            .clone()
            .cancel_allocation(pb::CancelAllocationRequest {
                request_id: crate::helpers::new_id(),
                order_id: "o-long".to_owned(),
                reason: "again".to_owned(),
                actor: actor.clone(),
            })
            .await
            .expect_err("a bad actor");
        assert_eq!(bad_fields(&status), ["actor"], "{actor:?}");
    }
    assert_eq!(
        app.stock_level(&mug, &potsdam).await,
        (4, 0),
        "nothing moved"
    );
    app.assert_ledger_clean().await;
}
