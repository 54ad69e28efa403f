//! Purchase orders from creation to sending: auto-approval under the threshold, approval by a
//! person above it, rejection, cancellation, one open PO per product and warehouse, and the
//! X12 850 that reaches the supplier.

use inventory_proto::replenishment::v1 as pb;
use tonic::Code;

use crate::helpers::{TestApp, bad_fields, error_info, new_id, segments};

const DOMAIN: &str = "replenishment";

#[tokio::test]
async fn a_po_under_the_threshold_is_approved_and_sent_as_an_850() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    // 100 x 2.50 = 250, under the threshold of 1,000.
    let po = app.create_po(&setup, 100).await.expect("create");
    assert_eq!(po.status(), pb::PurchaseOrderStatus::Approved);
    assert_eq!(po.decided_by, "auto-approval");
    assert_eq!(po.total_cost_micros, 250_000_000);
    assert_eq!(po.created_by, "buyer@example.com");
    assert!(po.control_number > 0);
    assert!(po.po_number.starts_with("PO-"));

    let sent = app.sent(&po.po_id).await;
    assert!(sent.send_time.is_some());
    assert_eq!(sent.control_number, po.control_number);

    let documents = app.documents();
    assert_eq!(documents.len(), 1, "{documents:?}");
    let (name, document) = &documents[0];
    assert_eq!(
        name,
        &format!("{}-{:09}.x12", po.po_number, po.control_number)
    );
    let isa = &segments(document, "ISA")[0];
    assert_eq!(isa[13], format!("{:09}", po.control_number));
    assert_eq!(isa[8].trim_end(), "ACME");
    assert_eq!(isa[15], "T", "test usage unless EDI_PRODUCTION is set");
    assert_eq!(segments(document, "BEG")[0][3], po.po_number);
    let po1 = &segments(document, "PO1")[0];
    assert_eq!(
        (po1[2], po1[3], po1[4]),
        ("100", "EA", "2.5"),
        "quantity, unit, price"
    );
    assert_eq!(po1[7], setup.product_id);
    assert_eq!(segments(document, "N1")[0][2], "Berlin");
}

#[tokio::test]
async fn a_po_at_the_threshold_waits_for_a_named_approver() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    // 400 x 2.50 = 1,000: not under the threshold.
    let po = app.create_po(&setup, 400).await.expect("create");
    assert_eq!(po.status(), pb::PurchaseOrderStatus::PendingApproval);
    assert_eq!(po.control_number, 0);
    assert!(app.documents().is_empty());

    let approved = app.approve(&po.po_id).await.expect("approve");
    assert_eq!(approved.status(), pb::PurchaseOrderStatus::Approved);
    assert_eq!(approved.decided_by, "manager@example.com");
    assert_eq!(approved.decision_note, "needed for the season");
    assert!(approved.decide_time.is_some());
    app.sent(&po.po_id).await;

    let again = app.approve(&po.po_id).await.expect_err("approve twice");
    assert_eq!(again.code(), Code::FailedPrecondition);
    let (reason, metadata) = error_info(&again, DOMAIN);
    assert_eq!(reason, "PO_NOT_PENDING_APPROVAL");
    assert_eq!(metadata["status"], "SENT");
}

#[tokio::test]
async fn approval_names_its_approver() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 400).await.expect("create");
    let status = app
        .client
        .clone()
        .approve_purchase_order(pb::ApprovePurchaseOrderRequest {
            request_id: new_id(),
            po_id: po.po_id.clone(),
            approver: String::new(),
            note: String::new(),
        })
        .await
        .expect_err("no approver");
    assert_eq!(bad_fields(&status), ["approver"]);
    let still = app.get_po(&po.po_id).await.purchase_order.expect("po");
    assert_eq!(still.status(), pb::PurchaseOrderStatus::PendingApproval);
}

#[tokio::test]
async fn a_rejected_or_cancelled_po_closes_and_a_new_one_may_follow() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 400).await.expect("create");
    let rejected = app
        .client
        .clone()
        .reject_purchase_order(pb::RejectPurchaseOrderRequest {
            request_id: new_id(),
            po_id: po.po_id.clone(),
            approver: "manager@example.com".to_owned(),
            reason: "too expensive".to_owned(),
        })
        .await
        .expect("reject")
        .into_inner()
        .purchase_order
        .expect("po");
    assert_eq!(rejected.status(), pb::PurchaseOrderStatus::Rejected);
    assert_eq!(rejected.decision_note, "too expensive");

    let next = app.create_po(&setup, 400).await.expect("a new PO");
    let cancelled = app
        .client
        .clone()
        .cancel_purchase_order(pb::CancelPurchaseOrderRequest {
            request_id: new_id(),
            po_id: next.po_id.clone(),
            actor: "buyer@example.com".to_owned(),
            reason: "ordered elsewhere".to_owned(),
        })
        .await
        .expect("cancel")
        .into_inner()
        .purchase_order
        .expect("po");
    assert_eq!(cancelled.status(), pb::PurchaseOrderStatus::Cancelled);
    assert!(app.documents().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_sent_po_cannot_be_cancelled() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 10).await.expect("create");
    app.sent(&po.po_id).await;
    let status = app
        .client
        .clone()
        .cancel_purchase_order(pb::CancelPurchaseOrderRequest {
            request_id: new_id(),
            po_id: po.po_id.clone(),
            actor: "buyer@example.com".to_owned(),
            reason: String::new(),
        })
        .await
        .expect_err("cancel after sending");
    assert_eq!(error_info(&status, DOMAIN).0, "PO_ALREADY_SENT");
}

#[tokio::test]
async fn only_one_po_is_open_per_product_and_warehouse_even_when_created_at_once() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let (a, b, c) = tokio::join!(
        app.create_po(&setup, 10),
        app.create_po(&setup, 10),
        app.create_po(&setup, 10)
    );
    let results = [a, b, c];
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 1, "{results:?}");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.code(), Code::AlreadyExists, "{refused}");
    }
    let open = app
        .client
        .clone()
        .list_purchase_orders(pb::ListPurchaseOrdersRequest {
            product_id: setup.product_id.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .purchase_orders;
    assert_eq!(open.len(), 1);
}

#[tokio::test]
async fn a_retried_create_makes_one_po() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let request = pb::CreatePurchaseOrderRequest {
        request_id: new_id(),
        product_id: setup.product_id.clone(),
        warehouse_id: setup.warehouse_id.clone(),
        quantity: 10,
        supplier_id: String::new(),
        actor: "buyer@example.com".to_owned(),
    };
    let first = app.create_po_with(request.clone()).await.expect("first");
    let retry = app.create_po_with(request.clone()).await.expect("retry");
    assert_eq!(first.po_id, retry.po_id);
    let altered = app
        .create_po_with(pb::CreatePurchaseOrderRequest {
            quantity: 11,
            ..request
        })
        .await
        .expect_err("same request id, other quantity");
    assert_eq!(bad_fields(&altered), ["request_id"]);
}

#[tokio::test]
async fn the_best_offer_is_the_cheapest_then_the_fastest() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let cheaper = app.supplier("Globex", "GLOBEX").await;
    app.offer(&cheaper, &setup.product_id, 2_000_000, 1)
        .await
        .expect("offer");
    let po = app.create_po(&setup, 10).await.expect("create");
    assert_eq!(po.supplier_id, cheaper);
    assert_eq!(po.unit_cost_micros, 2_000_000);
}

#[tokio::test]
async fn bad_purchase_orders_are_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let status = app
        .create_po_with(pb::CreatePurchaseOrderRequest {
            request_id: new_id(),
            product_id: "not-a-uuid".to_owned(),
            warehouse_id: String::new(),
            quantity: 0,
            supplier_id: "x".to_owned(),
            actor: String::new(),
        })
        .await
        .expect_err("bad request");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&status),
        [
            "product_id",
            "warehouse_id",
            "quantity",
            "supplier_id",
            "actor"
        ]
    );

    let unknown = app
        .create_po_with(pb::CreatePurchaseOrderRequest {
            request_id: new_id(),
            product_id: uuid::Uuid::now_v7().to_string(),
            warehouse_id: setup.warehouse_id.clone(),
            quantity: 10,
            supplier_id: String::new(),
            actor: "buyer".to_owned(),
        })
        .await
        .expect_err("unknown product");
    assert_eq!(unknown.code(), Code::NotFound);

    let no_offer = app
        .create_po_with(pb::CreatePurchaseOrderRequest {
            request_id: new_id(),
            product_id: app.product("SKU-NONE").await,
            warehouse_id: setup.warehouse_id.clone(),
            quantity: 10,
            supplier_id: String::new(),
            actor: "buyer".to_owned(),
        })
        .await
        .expect_err("nobody offers it");
    assert_eq!(error_info(&no_offer, DOMAIN).0, "NO_SUPPLIER_OFFER");

    app.offer(&setup.supplier_id, &setup.product_id, 2_500_000, 12)
        .await
        .expect("packs of 12");
    let packs = app
        .create_po(&setup, 10)
        .await
        .expect_err("not a whole pack");
    let (reason, metadata) = error_info(&packs, DOMAIN);
    assert_eq!(reason, "QUANTITY_NOT_ORDERABLE");
    assert_eq!(metadata["pack_multiple"], "12");

    let listed = app
        .client
        .clone()
        .list_purchase_orders(pb::ListPurchaseOrdersRequest::default())
        .await
        .expect("list")
        .into_inner()
        .purchase_orders;
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn purchase_orders_are_listed_by_status_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    let warehouse = app.warehouse("Berlin").await;
    let supplier = app.supplier("Acme", "ACME").await;
    let mut created = Vec::new();
    for i in 0..3 {
        let product = app.product(&format!("SKU-{i}")).await;
        app.offer(&supplier, &product, 2_500_000, 1)
            .await
            .expect("offer");
        let po = app
            .create_po_with(pb::CreatePurchaseOrderRequest {
                request_id: new_id(),
                product_id: product,
                warehouse_id: warehouse.clone(),
                quantity: 1_000,
                supplier_id: String::new(),
                actor: "buyer".to_owned(),
            })
            .await
            .expect("create");
        created.push(po.po_id);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .client
            .clone()
            .list_purchase_orders(pb::ListPurchaseOrdersRequest {
                status: pb::PurchaseOrderStatus::PendingApproval.into(),
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        seen.extend(page.purchase_orders.into_iter().map(|p| p.po_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    created.reverse();
    assert_eq!(seen, created);
    let sent = app
        .client
        .clone()
        .list_purchase_orders(pb::ListPurchaseOrdersRequest {
            status: pb::PurchaseOrderStatus::Sent.into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .purchase_orders;
    assert!(sent.is_empty());
}

#[tokio::test]
async fn a_failed_delivery_is_retried_with_the_same_control_number() {
    // The drop directory's path is taken by a file: delivery fails until it is cleared.
    let blocked = std::env::temp_dir().join(format!("edi-blocked-{}", new_id()));
    std::fs::write(&blocked, b"not a directory").expect("block the path");
    let dir = blocked.display().to_string();
    let app = TestApp::spawn_with(&[("EDI_DROP_DIR", dir.as_str())]).await;
    let setup = app.setup().await;
    let po = app.create_po(&setup, 10).await.expect("create");
    assert_eq!(po.status(), pb::PurchaseOrderStatus::Approved);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let waiting = app.get_po(&po.po_id).await.purchase_order.expect("po");
    assert_eq!(
        waiting.status(),
        pb::PurchaseOrderStatus::Approved,
        "not sent yet"
    );

    std::fs::remove_file(&blocked).expect("unblock");
    let sent = app.sent(&po.po_id).await;
    assert_eq!(sent.control_number, po.control_number);
    let files: Vec<String> = std::fs::read_dir(&blocked)
        .expect("drop directory")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".x12"))
        .collect();
    assert_eq!(
        files,
        [format!("{}-{:09}.x12", po.po_number, po.control_number)]
    );
    let _ = std::fs::remove_dir_all(&blocked);
}

#[tokio::test]
async fn a_po_whose_delivery_was_attempted_cannot_be_cancelled_and_cancelling_keeps_the_approval() {
    let blocked = std::env::temp_dir().join(format!("edi-blocked-{}", new_id()));
    std::fs::write(&blocked, b"not a directory").expect("block the path");
    let dir = blocked.display().to_string();
    let app = TestApp::spawn_with(&[("EDI_DROP_DIR", dir.as_str())]).await;
    let setup = app.setup().await;
    let pending = app.create_po(&setup, 400).await.expect("create");
    let approved = app.approve(&pending.po_id).await.expect("approve");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let cancel = |po_id: String| {
        let mut client = app.client.clone();
        async move {
            client
                .cancel_purchase_order(pb::CancelPurchaseOrderRequest {
                    request_id: new_id(),
                    po_id,
                    actor: "buyer@example.com".to_owned(),
                    reason: "found cheaper".to_owned(),
                })
                .await
        }
    };
    let doubt = cancel(approved.po_id.clone())
        .await
        .expect_err("a delivery was attempted");
    assert_eq!(error_info(&doubt, DOMAIN).0, "PO_DELIVERY_IN_DOUBT");
    let _ = std::fs::remove_file(&blocked);
    let _ = std::fs::remove_dir_all(&blocked);

    // Approved and cancelled before any delivery: both records stay.
    let other = TestApp::spawn_with(&[("OUTBOX_POLL_MS", "600000")]).await;
    let setup = other.setup().await;
    let pending = other.create_po(&setup, 400).await.expect("create");
    let cancelled = other
        .client
        .clone()
        .cancel_purchase_order(pb::CancelPurchaseOrderRequest {
            request_id: new_id(),
            po_id: pending.po_id.clone(),
            actor: "buyer@example.com".to_owned(),
            reason: "found cheaper".to_owned(),
        })
        .await
        .expect("cancel a pending PO")
        .into_inner()
        .purchase_order
        .expect("po");
    assert_eq!(cancelled.status(), pb::PurchaseOrderStatus::Cancelled);
    assert_eq!(
        (
            cancelled.cancelled_by.as_str(),
            cancelled.cancel_reason.as_str()
        ),
        ("buyer@example.com", "found cheaper")
    );
    assert!(cancelled.cancel_time.is_some());
    assert!(cancelled.decided_by.is_empty(), "never approved");
}
