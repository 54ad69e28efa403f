//! BatchReserveOrders: many orders in one call, each held all or nothing on its own and
//! answered as ReserveOrder would answer it, coalesced or not.

use inventory_proto::stock::v1 as pb;
use pb::reserve_order_result::Result as Entry;

use crate::helpers::{TestApp, bad_fields, error_info, new_id};

/// Both ways the service can run: batches of reservations, or one transaction each.
async fn both_services() -> [TestApp; 2] {
    [TestApp::spawn().await, TestApp::spawn_uncoalesced().await]
}

fn order(order_id: &str, lines: &[(&str, &str, &str, i64)]) -> pb::ReserveOrderRequest {
    pb::ReserveOrderRequest {
        request_id: new_id(),
        order_id: order_id.into(),
        lines: lines
            .iter()
            .map(|(line, p, w, q)| pb::ReservationLine {
                order_line_id: (*line).into(),
                product_id: (*p).into(),
                warehouse_id: (*w).into(),
                quantity: *q,
            })
            .collect(),
        ..Default::default()
    }
}

/// The entry's error as the unary call would have returned it.
fn refusal(result: &pb::ReserveOrderResult) -> tonic::Status {
    match &result.result {
        Some(Entry::Error(status)) => tonic::Status::with_details(
            tonic::Code::from(status.code),
            status.message.clone(),
            prost::Message::encode_to_vec(status).into(),
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn held(result: &pb::ReserveOrderResult) -> &pb::ReserveOrderResponse {
    match &result.result {
        Some(Entry::Reserved(reserved)) => reserved,
        other => panic!("expected the order held, got {other:?}"),
    }
}

#[tokio::test]
async fn each_order_of_a_batch_is_held_or_refused_on_its_own() {
    for app in both_services().await {
        let (p1, p2) = (app.product("SKU-1").await, app.product("SKU-2").await);
        let (w1, w2) = (app.warehouse("A").await, app.warehouse("B").await);
        app.receive(&p1, &w1, 5).await;
        app.receive(&p2, &w2, 1).await;
        let results = app
            .batch_reserve_orders(vec![
                order("o-1", &[("1", &p1, &w1, 3), ("2", &p2, &w2, 1)]),
                // Its first line fits; its second asks for what o-1 took.
                order("o-2", &[("1", &p1, &w1, 1), ("2", &p2, &w2, 1)]),
                order("o-3", &[("1", &p1, &w1, 0)]),
                order("o-4", &[("1", &p1, &w1, 1)]),
            ])
            .await
            .expect("batch");
        assert_eq!(results.len(), 4);
        let first = held(&results[0]);
        assert_eq!(
            first
                .reservations
                .iter()
                .map(|r| (r.order_line_id.as_str(), r.quantity_held))
                .collect::<Vec<_>>(),
            [("1", 3), ("2", 1)]
        );
        let (reason, metadata) = error_info(&refusal(&results[1]));
        assert_eq!(
            (reason.as_str(), metadata["product_id"].as_str()),
            ("INSUFFICIENT_STOCK", p2.as_str())
        );
        assert_eq!(bad_fields(&refusal(&results[2])), ["lines[0].quantity"]);
        assert_eq!(held(&results[3]).reservations[0].quantity_held, 1);
        // o-2 rolled back whole: only o-1 and o-4 hold anything.
        assert_eq!(app.inventory(&p1, &w1).await.quantity_reserved, 4);
        assert_eq!(app.inventory(&p2, &w2).await.quantity_reserved, 1);
        assert_eq!(
            app.count("SELECT count(*) FROM reservations WHERE order_id = 'o-2'")
                .await,
            0
        );
        assert_eq!(app.count("SELECT count(*) FROM reservations").await, 3);
        app.assert_ledger_clean().await;
    }
}

#[tokio::test]
async fn a_retried_batch_replays_each_answer_and_holds_nothing_twice() {
    for app in both_services().await {
        let p = app.product("SKU-1").await;
        let w = app.warehouse("A").await;
        app.receive(&p, &w, 3).await;
        let orders = vec![
            order("o-1", &[("1", &p, &w, 2)]),
            order("o-2", &[("1", &p, &w, 2)]),
        ];
        let first = app
            .batch_reserve_orders(orders.clone())
            .await
            .expect("batch");
        let again = app
            .batch_reserve_orders(orders.clone())
            .await
            .expect("retry");
        assert_eq!(first[0], again[0], "a retry replays the order's answer");
        // The same request alone replays its answer from the batch, as one ReserveOrder.
        let alone = app
            .reserve_order(orders[0].clone())
            .await
            .expect("replayed alone");
        assert_eq!(&alone, held(&first[0]));
        assert_eq!(
            error_info(&refusal(&again[1])).0,
            "INSUFFICIENT_STOCK",
            "a refusal is decided again, and stock still has 1"
        );
        assert_eq!(app.inventory(&p, &w).await.quantity_reserved, 2);
        assert_eq!(app.count("SELECT count(*) FROM reservations").await, 1);
        app.assert_ledger_clean().await;
    }
}

#[tokio::test]
async fn a_batch_without_orders_or_with_a_repeated_request_id_is_invalid_and_holds_nothing() {
    let app = TestApp::spawn().await;
    let p = app.product("SKU-1").await;
    let w = app.warehouse("A").await;
    app.receive(&p, &w, 5).await;
    let empty = app
        .batch_reserve_orders(Vec::new())
        .await
        .expect_err("no orders");
    assert_eq!(bad_fields(&empty), ["orders"]);
    let one = order("o-1", &[("1", &p, &w, 1)]);
    let mut twice = order("o-2", &[("1", &p, &w, 1)]);
    twice.request_id = one.request_id.clone();
    let repeated = app
        .batch_reserve_orders(vec![one, twice])
        .await
        .expect_err("a request id twice");
    assert_eq!(bad_fields(&repeated), ["orders[1].request_id"]);
    let lines = (0..11)
        .map(|i| order(&format!("o-{i}"), &[("1", &p, &w, 1)]))
        .map(|mut o| {
            o.lines = vec![o.lines[0].clone(); 1000];
            o
        })
        .collect();
    let too_many = app
        .batch_reserve_orders(lines)
        .await
        .expect_err("11,000 lines");
    assert_eq!(bad_fields(&too_many), ["orders"]);
    assert_eq!(app.inventory(&p, &w).await.quantity_reserved, 0);
    assert_eq!(app.count("SELECT count(*) FROM reservations").await, 0);
}

#[tokio::test]
async fn batches_racing_for_the_last_units_never_oversell() {
    let app = TestApp::spawn().await;
    let p = app.product("SKU-1").await;
    let (w1, w2) = (app.warehouse("A").await, app.warehouse("B").await);
    app.receive(&p, &w1, 7).await;
    app.receive(&p, &w2, 5).await;
    let mut racing = tokio::task::JoinSet::new();
    for batch in 0..8 {
        let orders: Vec<pb::ReserveOrderRequest> = (0..5)
            .map(|i| {
                order(
                    &format!("o-{batch}-{i}"),
                    &[("1", &p, &w1, 1), ("2", &p, &w2, 1)],
                )
            })
            .collect();
        let client = app.client.clone();
        racing.spawn(async move {
            client
                .clone()
                .batch_reserve_orders(pb::BatchReserveOrdersRequest { orders })
                .await
                .expect("batch")
                .into_inner()
                .results
        });
    }
    let mut granted = 0;
    while let Some(results) = racing.join_next().await {
        for result in results.expect("joined") {
            match result.result {
                Some(Entry::Reserved(_)) => granted += 1,
                Some(Entry::Error(status)) => {
                    assert_eq!(
                        tonic::Code::from(status.code),
                        tonic::Code::FailedPrecondition
                    )
                }
                None => panic!("an entry without its answer"),
            }
        }
    }
    assert_eq!(granted, 5, "B's five units bound the orders");
    assert_eq!(app.inventory(&p, &w1).await.quantity_reserved, 5);
    assert_eq!(app.inventory(&p, &w2).await.quantity_reserved, 5);
    app.assert_ledger_clean().await;
}
