//! The platform contract, kept by replenishment: health, both reflection versions, the request
//! size limit; and the one-open-PO rule held by the database itself.

use inventory_proto::replenishment::v1 as pb;
use inventory_testkit::{TestDatabase, contract};
use replenishment_service::app::MIGRATOR;
use uuid::Uuid;

use crate::helpers::TestApp;

#[tokio::test]
async fn health_reports_serving_for_the_replenishment_service() {
    let app = TestApp::spawn().await;
    contract::assert_health(&app.server, pb::SERVICE_NAME).await;
}

#[tokio::test]
async fn reflection_lists_the_replenishment_service_in_both_versions() {
    let app = TestApp::spawn().await;
    contract::assert_reflection(&app.server, pb::SERVICE_NAME).await;
}

#[tokio::test]
async fn the_database_refuses_a_second_open_po_for_a_product_and_warehouse() {
    let database = TestDatabase::create().await;
    let pool = database.migrate("replenishment", &MIGRATOR).await;
    let supplier = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO suppliers (supplier_id, name, channel, edi_qualifier, edi_id,
                                default_lead_time_days)
         VALUES ($1, 'Acme', 'EDI', 'ZZ', 'ACME', 3)",
    )
    .bind(supplier)
    .execute(&pool)
    .await
    .expect("supplier");
    let (product, warehouse) = (Uuid::now_v7(), Uuid::now_v7());
    let insert = |status: &'static str| {
        sqlx::query(
            "INSERT INTO purchase_orders (po_id, supplier_id, product_id, warehouse_id,
                 ordered_qty, status, unit_cost_micros, lead_time_days, expected_delivery,
                 created_by, decide_time)
             VALUES ($1, $2, $3, $4, 10, $5, 1, 3, now(), 'test', now())",
        )
        .bind(Uuid::now_v7())
        .bind(supplier)
        .bind(product)
        .bind(warehouse)
        .bind(status)
        .execute(&pool)
    };
    insert("PENDING_APPROVAL").await.expect("first open PO");
    let second = insert("DRAFT").await.expect_err("a second open PO");
    assert!(
        second.to_string().contains("purchase_orders_one_open"),
        "{second}"
    );
    // Closed ones do not count.
    insert("REJECTED")
        .await
        .expect("a rejected PO beside the open one");
    // And the statuses must agree with the quantities: no goods on a PO not yet sent.
    let received = sqlx::query(
        "UPDATE purchase_orders SET received_qty = 5 WHERE status = 'PENDING_APPROVAL'",
    )
    .execute(&pool)
    .await
    .expect_err("goods on an unsent PO");
    assert!(
        received
            .to_string()
            .contains("purchase_orders_received_matches_status"),
        "{received}"
    );
}

#[tokio::test]
async fn a_request_over_the_size_limit_is_refused_naming_the_limit() {
    let app = TestApp::spawn_with(&[("MAX_MESSAGE_BYTES", "1024")]).await;
    contract::assert_message_limit(&app.server, 1024, |channel, text| async move {
        pb::replenishment_service_client::ReplenishmentServiceClient::new(channel)
            .create_supplier(pb::CreateSupplierRequest {
                request_id: crate::helpers::new_id(),
                name: text,
                ..Default::default()
            })
            .await
            .map(|_| ())
    })
    .await;
}

/// A client of `server` that shows `token` on every call.
fn with_token(
    channel: tonic::transport::Channel,
    token: String,
) -> pb::replenishment_service_client::ReplenishmentServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        impl tonic::service::Interceptor + Clone,
    >,
> {
    let header: tonic::metadata::MetadataValue<_> =
        format!("Bearer {token}").parse().expect("a header value");
    pb::replenishment_service_client::ReplenishmentServiceClient::with_interceptor(
        channel,
        move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
            Ok(request)
        },
    )
}

#[tokio::test]
async fn under_tokens_only_a_manager_approves_and_the_approver_recorded_is_the_verified_one() {
    use inventory_runtime::Role;
    use inventory_runtime::auth::sign_token;
    const SECRET: &str = "replenishment-token-key-0123456789abcdef";

    // Set up through an open replica, then work through a replica that checks tokens (the
    // same database: what one replica writes the other reads).
    let app = TestApp::spawn().await;
    let setup = app.setup().await;
    let secured = TestApp::replenishment(
        &app.database,
        &app.stock,
        &app.drop_dir,
        &[("AUTH_TOKEN_SECRET", SECRET)],
    )
    .await;
    let expires = chrono::Utc::now().timestamp() + 300;
    let token = |who: &str, role: Role| sign_token(SECRET.as_bytes(), who, &[role], expires);
    let mut operator = with_token(secured.channel().await, token("buyer-1", Role::Operator));
    let mut manager = with_token(secured.channel().await, token("bob", Role::Manager));
    let mut supplier = with_token(
        secured.channel().await,
        token("edi", Role::SupplierIntegration),
    );

    // Above the auto-approval threshold (1,000 units at 2.50), so it waits for a manager.
    let po = operator
        .create_purchase_order(pb::CreatePurchaseOrderRequest {
            request_id: Uuid::now_v7().to_string(),
            product_id: setup.product_id.clone(),
            warehouse_id: setup.warehouse_id.clone(),
            quantity: 1_000,
            supplier_id: String::new(),
            actor: String::new(),
        })
        .await
        .expect("an operator drafts a PO")
        .into_inner()
        .purchase_order
        .expect("po");
    assert_eq!(po.status(), pb::PurchaseOrderStatus::PendingApproval);

    let approve = |approver: &str| pb::ApprovePurchaseOrderRequest {
        request_id: Uuid::now_v7().to_string(),
        po_id: po.po_id.clone(),
        approver: approver.to_owned(),
        note: "season".to_owned(),
    };
    let denied = operator
        .approve_purchase_order(approve("manager@example.com"))
        .await
        .expect_err("an operator naming a manager is still an operator");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    let denied = supplier
        .get_purchase_order(pb::GetPurchaseOrderRequest {
            po_id: po.po_id.clone(),
        })
        .await
        .expect_err("the supplier integration only pushes receipts");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    let approved = manager
        .approve_purchase_order(approve("at-desk-3"))
        .await
        .expect("the manager approves")
        .into_inner()
        .purchase_order
        .expect("po");
    assert_eq!(approved.decided_by, "bob > at-desk-3");
    let anonymous =
        pb::replenishment_service_client::ReplenishmentServiceClient::new(secured.channel().await)
            .get_purchase_order(pb::GetPurchaseOrderRequest {
                po_id: po.po_id.clone(),
            })
            .await
            .expect_err("no token, no answer");
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
}
