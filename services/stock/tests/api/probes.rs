//! What probing the running service found, each pinned: bad values are echoed only in
//! part, one bound for every quantity, unit costs bounded and summaries that cannot
//! overflow, page tokens that cannot be forged, and the shared retry story.

use inventory_core::validate::MAX_QUANTITY;
use inventory_proto::stock::v1 as pb;
use inventory_testkit::assert_idempotent;
use tonic::Code;

use crate::helpers::{TestApp, bad_fields, new_id, product, receive_request};

#[tokio::test]
async fn a_ten_thousand_character_id_is_refused_without_echoing_it() {
    let app = TestApp::spawn().await;
    let status = app
        .get_product(&"x".repeat(10_000))
        .await
        .expect_err("not a UUID");
    assert_eq!(bad_fields(&status), ["product_id"]);
    // Message and details together stay far below the 16 KiB metadata limit of common
    // clients, which would otherwise turn this into RESOURCE_EXHAUSTED.
    let size = status.message().len() + status.details().len();
    assert!(size < 1024, "error is {size} bytes: {}", status.message());
}

#[tokio::test]
async fn releasing_more_than_any_quantity_can_be_is_invalid() {
    let app = TestApp::spawn().await;
    let status = app
        .release(pb::ReleaseReservationRequest {
            request_id: new_id(),
            order_id: "order-1".to_owned(),
            quantity: MAX_QUANTITY + 1,
            ..Default::default()
        })
        .await
        .expect_err("above the bound");
    assert_eq!(bad_fields(&status), ["quantity"]);
}

#[tokio::test]
async fn a_unit_cost_above_a_million_currency_units_is_invalid() {
    let app = TestApp::spawn().await;
    let status = app
        .create_product(pb::Product {
            unit_cost_micros: i64::MAX,
            ..product("COSTLY")
        })
        .await
        .expect_err("above the bound");
    assert_eq!(bad_fields(&status), ["product.unit_cost_micros"]);
}

#[tokio::test]
async fn the_summary_saturates_instead_of_failing_when_a_value_exceeds_int64() {
    let app = TestApp::spawn().await;
    let costly = app
        .create_product(pb::Product {
            unit_cost_micros: 1_000_000_000_000,
            ..product("COSTLY")
        })
        .await
        .expect("at the bound")
        .product_id;
    let w = app.warehouse("Vault").await;
    // 2 x 10^12 units at 10^12 micros: 2 x 10^24, far above 2^63.
    app.receive(&costly, &w, MAX_QUANTITY).await;
    app.receive(&costly, &w, MAX_QUANTITY).await;
    let summary = app.summary().await.expect("the summary always reads");
    let total = summary.total.expect("total");
    assert_eq!(total.value_micros, i64::MAX);
    assert_eq!(total.quantity_on_hand, 2 * MAX_QUANTITY);
}

#[tokio::test]
async fn a_page_token_with_an_edited_cursor_is_refused() {
    let app = TestApp::spawn().await;
    for sku in ["A", "B", "C"] {
        app.product(sku).await;
    }
    let list = |page_token: String| {
        app.list_products(pb::ListProductsRequest {
            page_size: 1,
            page_token,
            ..Default::default()
        })
    };
    let first = list(String::new()).await.expect("first page");
    let token = first.next_page_token;
    assert!(list(token.clone()).await.is_ok(), "the issued token works");
    // The position is hex after "v2."; change one digit of it.
    let (head, tail) = token.split_at(3);
    let digit = if tail.starts_with('0') { "1" } else { "0" };
    let forged = format!("{head}{digit}{}", &tail[1..]);
    let status = list(forged).await.expect_err("a forged token");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(bad_fields(&status), ["page_token"]);
}

#[tokio::test]
async fn a_receipt_retried_is_applied_once_and_its_id_cannot_be_reused() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("SKU-1").await, app.warehouse("Berlin").await);
    let request = receive_request(&p, &w, 5);
    let altered = pb::ReceiveStockRequest {
        quantity: 6,
        ..request.clone()
    };
    assert_idempotent(|request| app.receive_stock(request), request, altered).await;
    assert_eq!(app.inventory(&p, &w).await.quantity_on_hand, 5);
    assert_eq!(app.transaction_count().await, 1);
}
