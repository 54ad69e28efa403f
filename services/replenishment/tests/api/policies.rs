//! Reorder policies and the reorder scan, on positions and demand derived from stock's feed.

use inventory_proto::replenishment::v1 as pb;
use tonic::Code;

use crate::helpers::{TestApp, bad_fields, new_id};

#[tokio::test]
async fn shipping_below_the_reorder_point_makes_the_scan_draft_exactly_one_po() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    app.set_fixed_policy(&setup, 50, 100).await;
    assert_eq!(
        app.scan(false).await.drafted,
        0,
        "before the feed has seen the pair its available is unknown, not 0"
    );
    app.stock_up(&setup, 60).await;
    app.feed_shows(&setup, 60).await;
    assert_eq!(app.scan(false).await.drafted, 0, "60 is not below 50");

    app.ship(&setup, 20).await;
    app.feed_shows(&setup, 40).await;
    let scan = app.scan(false).await;
    assert_eq!(scan.drafted, 1);
    let decision = &scan.decisions[0];
    assert_eq!(
        (
            decision.quantity_available,
            decision.reorder_point,
            decision.quantity
        ),
        (40, 50, 100)
    );
    assert_eq!(decision.supplier_id, setup.supplier_id);
    // 100 x 2.50 = 250: under the threshold, approved and sent.
    assert_eq!(decision.status(), pb::PurchaseOrderStatus::Approved);
    let po = app.sent(&decision.po_id).await;
    assert_eq!(po.created_by, "reorder-scan");
    assert_eq!(po.ordered_qty, 100);

    // The open PO stops a second one.
    let again = app.scan(false).await;
    assert_eq!(again.drafted, 0);
    assert_eq!(app.purchase_orders().await.len(), 1);
}

#[tokio::test]
async fn three_scans_at_once_draft_one_po() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    app.set_fixed_policy(&setup, 50, 100).await;
    app.stock_up(&setup, 10).await;
    app.feed_shows(&setup, 10).await;
    let (a, b, c) = tokio::join!(app.scan(false), app.scan(false), app.scan(false));
    assert_eq!(a.drafted + b.drafted + c.drafted, 1, "{a:?} {b:?} {c:?}");
    assert_eq!(app.purchase_orders().await.len(), 1);
}

#[tokio::test]
async fn a_dry_run_says_what_it_would_draft_and_drafts_nothing() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    app.set_fixed_policy(&setup, 50, 1_000).await;
    app.stock_up(&setup, 10).await;
    app.feed_shows(&setup, 10).await;
    let dry = app.scan(true).await;
    assert!(dry.dry_run);
    assert_eq!(dry.drafted, 1);
    assert_eq!(dry.decisions[0].quantity, 1_000);
    assert!(dry.decisions[0].po_id.is_empty());
    assert!(app.purchase_orders().await.is_empty());

    // For real: 1,000 x 2.50 = 2,500 is not under the threshold, so it waits.
    let real = app.scan(false).await;
    assert_eq!(
        real.decisions[0].status(),
        pb::PurchaseOrderStatus::PendingApproval
    );
}

#[tokio::test]
async fn a_pair_nobody_offers_is_reported_not_drafted() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let lonely = crate::helpers::Setup {
        product_id: app.product("SKU-LONELY").await,
        warehouse_id: setup.warehouse_id.clone(),
        supplier_id: String::new(),
    };
    app.set_fixed_policy(&lonely, 5, 10).await;
    app.stock_up(&lonely, 1).await;
    app.feed_shows(&lonely, 1).await;
    let scan = app.scan(false).await;
    assert_eq!((scan.drafted, scan.without_offer), (0, 1));
    assert_eq!(scan.unoffered[0].product_id, lonely.product_id);
    assert!(app.purchase_orders().await.is_empty());
}

#[tokio::test]
async fn the_order_quantity_is_rounded_up_to_the_offers_pack() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    app.offer(&setup.supplier_id, &setup.product_id, 2_500_000, 12)
        .await
        .expect("packs of 12");
    app.set_fixed_policy(&setup, 50, 100).await;
    app.stock_up(&setup, 10).await;
    app.feed_shows(&setup, 10).await;
    let scan = app.scan(false).await;
    assert_eq!(scan.decisions[0].quantity, 108);
}

#[tokio::test]
async fn a_computed_policy_without_history_takes_the_products_defaults() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let mut stock = app.stock.client.clone();
    let product = stock
        .create_product(inventory_proto::stock::v1::CreateProductRequest {
            request_id: new_id(),
            product: Some(inventory_proto::stock::v1::Product {
                sku: "SKU-DEFAULTS".to_owned(),
                name: "Defaults".to_owned(),
                unit_of_measure: "each".to_owned(),
                reorder_point: 30,
                reorder_quantity: 70,
                lead_time_days: 4,
                ..Default::default()
            }),
        })
        .await
        .expect("product")
        .into_inner()
        .product
        .expect("product")
        .product_id;
    let policy = app
        .client
        .clone()
        .set_reorder_policy(pb::SetReorderPolicyRequest {
            request_id: new_id(),
            product_id: product.clone(),
            warehouse_id: setup.warehouse_id.clone(),
            source: pb::PolicySource::Computed.into(),
            service_level: 0.98,
            actor: "buyer@example.com".to_owned(),
            ..Default::default()
        })
        .await
        .expect("set")
        .into_inner()
        .policy
        .expect("policy");
    assert_eq!(policy.method(), pb::ComputationMethod::ProductDefaults);
    assert_eq!((policy.reorder_point, policy.reorder_quantity), (30, 70));
    assert_eq!(policy.service_level, 0.98);
    assert_eq!(
        policy.lead_time_days, 4.0,
        "no offer: the product's lead time"
    );
    assert!(policy.compute_time.is_some());
}

#[tokio::test]
async fn a_pair_without_a_policy_gets_the_default_one_at_the_scan() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    app.stock_up(&setup, 5).await;
    app.feed_shows(&setup, 5).await;
    let before = app.policy(&setup).await.policy.expect("policy");
    assert!(before.update_time.is_some());
    // The product's defaults are 0 and 1: nothing is below a point of 0.
    assert_eq!(app.scan(false).await.drafted, 0);
    let stored = app.policy(&setup).await.policy.expect("policy");
    assert_eq!(stored.source(), pb::PolicySource::Computed);
    assert_eq!(stored.updated_by, "reorder-scan");
}

#[tokio::test]
async fn demand_counts_every_shipment_once_when_stopped_mid_stream() {
    let mut app = TestApp::spawn().await;
    let setup = app.setup().await;
    app.stock_up(&setup, 1_000).await;
    // Stopped while the feed is still at work on the first shipments, more shipped while it
    // is down, then started again.
    for quantity in [3, 4, 5] {
        app.ship(&setup, quantity).await;
    }
    app.server.stop().await;
    for quantity in [6, 7] {
        app.ship(&setup, quantity).await;
    }
    app.restart().await;
    app.feed_shows(&setup, 975).await;
    let mut conn = app.database.connect("replenishment").await;
    let shipped: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(quantity), 0)::int8 FROM demand_daily
          WHERE product_id = $1::uuid AND warehouse_id = $2::uuid",
    )
    .bind(&setup.product_id)
    .bind(&setup.warehouse_id)
    .fetch_one(&mut conn)
    .await
    .expect("demand");
    assert_eq!(shipped, 3 + 4 + 5 + 6 + 7);
}

#[tokio::test]
async fn bad_policies_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let fixed = app
        .client
        .clone()
        .set_reorder_policy(pb::SetReorderPolicyRequest {
            request_id: new_id(),
            product_id: setup.product_id.clone(),
            warehouse_id: setup.warehouse_id.clone(),
            source: pb::PolicySource::Fixed.into(),
            reorder_point: -1,
            reorder_quantity: 0,
            service_level: 0.0,
            actor: "buyer".to_owned(),
        })
        .await
        .expect_err("bad fixed numbers");
    assert_eq!(bad_fields(&fixed), ["reorder_point", "reorder_quantity"]);
    let level = app
        .client
        .clone()
        .set_reorder_policy(pb::SetReorderPolicyRequest {
            request_id: new_id(),
            product_id: setup.product_id.clone(),
            warehouse_id: setup.warehouse_id.clone(),
            source: pb::PolicySource::Computed.into(),
            service_level: 1.5,
            actor: "buyer".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("a level above 1");
    assert_eq!(bad_fields(&level), ["service_level"]);
    let nothing = app
        .client
        .clone()
        .set_reorder_policy(pb::SetReorderPolicyRequest::default())
        .await
        .expect_err("empty");
    assert_eq!(
        bad_fields(&nothing),
        [
            "request_id",
            "product_id",
            "warehouse_id",
            "source",
            "actor"
        ]
    );
    let unknown = app
        .client
        .clone()
        .get_reorder_policy(pb::GetReorderPolicyRequest {
            product_id: uuid::Uuid::now_v7().to_string(),
            warehouse_id: setup.warehouse_id.clone(),
        })
        .await
        .expect_err("unknown product");
    assert_eq!(unknown.code(), Code::NotFound);
}
