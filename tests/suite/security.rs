//! Who may call what: mutual TLS on stock and between allocation and stock, certificates
//! renewed without a restart, tokens where mutual TLS is off, each role held to its RPCs, and
//! the actor in the log taken from the verified caller. Certificates come from a fresh test
//! authority (`inventory_testkit::pki`).

use std::sync::Arc;
use std::time::Duration;

use fulfillment_allocation_service::AllocationApp;
use inventory_proto::allocation::v1 as allocation;
use inventory_proto::allocation::v1::allocation_service_client::AllocationServiceClient;
use inventory_proto::stock::v1 as stock;
use inventory_proto::stock::v1::stock_service_client::StockServiceClient;
use inventory_runtime::Role;
use inventory_runtime::auth::sign_token;
use inventory_runtime::tls::{TlsFiles, endpoint_channel};
use inventory_testkit::pki::{CertFiles, TestCa, tls_channel};
use inventory_testkit::{StockServer, TestDatabase, TestServer, contract, new_id};
use stock_service::StockApp;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;

const SECRET: &str = "a-token-secret-of-at-least-32-bytes!";

fn vars(files: &CertFiles, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut vars = files.vars();
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    vars
}

/// Stock serving mutual TLS with a certificate from `ca`, and an operator's client for it.
async fn stock_with_mtls(ca: &TestCa, extra: &[(&'static str, &str)]) -> StockServer {
    let files = ca.issue("stock", &[]);
    let vars = vars(&files, extra);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let database = Arc::new(TestDatabase::create().await);
    let server = TestServer::spawn::<StockApp>(database, &vars).await;
    let operator = ca.issue("operator", &["spiffe://inventory/operator/console"]);
    let client = StockServiceClient::new(tls_channel(&server.tls_url(), &operator));
    StockServer { server, client }
}

fn client_as(
    stock: &StockServer,
    ca: &TestCa,
    name: &str,
    uri: &str,
) -> StockServiceClient<Channel> {
    StockServiceClient::new(tls_channel(
        &stock.server.tls_url(),
        &ca.issue(name, &[uri]),
    ))
}

/// Stock under mutual TLS with 10 units of a product in a warehouse (received by the
/// operator, actor "test"), and order management's client.
async fn stocked(ca: &TestCa) -> (StockServer, String, String, StockServiceClient<Channel>) {
    let stock = stock_with_mtls(ca, &[]).await;
    let product = stock.create_product("MUG-1").await;
    let warehouse = stock.create_warehouse("Berlin", (52.52, 13.405)).await;
    stock.receive(&product, &warehouse, 10, "PO-1").await;
    let checkout = client_as(
        &stock,
        ca,
        "checkout",
        "spiffe://inventory/order-management/checkout",
    );
    (stock, product, warehouse, checkout)
}

fn get_product(id: &str) -> stock::GetProductRequest {
    stock::GetProductRequest {
        product_id: id.to_owned(),
    }
}

fn product_request(sku: &str) -> stock::CreateProductRequest {
    stock::CreateProductRequest {
        request_id: new_id(),
        product: Some(stock::Product {
            sku: sku.to_owned(),
            name: sku.to_owned(),
            unit_of_measure: "each".to_owned(),
            ..Default::default()
        }),
    }
}

fn reserve(
    product: &str,
    warehouse: &str,
    quantity: i64,
    actor: &str,
) -> stock::ReserveStockRequest {
    stock::ReserveStockRequest {
        request_id: new_id(),
        order_id: new_id(),
        line: Some(stock::ReservationLine {
            order_line_id: "1".to_owned(),
            product_id: product.to_owned(),
            warehouse_id: warehouse.to_owned(),
            quantity,
        }),
        expire_time: None,
        actor: actor.to_owned(),
    }
}

/// The actors of a pair's log rows, oldest first.
async fn actors(stock: &StockServer, product: &str) -> Vec<(stock::TransactionType, String)> {
    stock
        .client
        .clone()
        .list_transactions(stock::ListTransactionsRequest {
            product_id: product.to_owned(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .expect("transactions")
        .into_inner()
        .transactions
        .into_iter()
        .map(|t| (t.txn_type(), t.actor))
        .collect()
}

#[tokio::test]
async fn under_mutual_tls_only_a_caller_with_a_certificate_of_the_authority_gets_in() {
    let ca = TestCa::new("inventory test CA");
    let stock = stock_with_mtls(&ca, &[]).await;
    let product = stock.create_product("MUG-1").await;

    // Plain HTTP/2 to a TLS port: no answer.
    let plain = Channel::from_shared(stock.url())
        .expect("url")
        .connect_lazy();
    let refused = StockServiceClient::new(plain)
        .get_product(get_product(&product))
        .await;
    assert!(refused.is_err(), "plain text answered: {refused:?}");

    // TLS that trusts the server but shows no certificate: refused in the handshake.
    let anonymous = TlsFiles {
        ca: Some(ca.ca_file()),
        ..Default::default()
    };
    let endpoint = Endpoint::from_shared(stock.server.tls_url()).expect("url");
    let mut anonymous =
        StockServiceClient::new(endpoint_channel(endpoint, &anonymous).expect("channel"));
    let refused = anonymous.get_product(get_product(&product)).await;
    assert!(
        refused.is_err(),
        "a caller without a certificate got in: {refused:?}"
    );

    // A certificate from another authority, however it names itself: refused.
    let stranger = TestCa::new("someone else's CA");
    let mut forged = StockServiceClient::new(tls_channel(
        &stock.server.tls_url(),
        &CertFiles {
            ca: ca.ca_file(),
            ..stranger.issue("forged-operator", &["spiffe://inventory/operator/console"])
        },
    ));
    assert!(forged.get_product(get_product(&product)).await.is_err());

    // The authority's operator gets in, and the probe speaks TLS with the service's own files.
    let found = stock
        .client
        .clone()
        .get_product(get_product(&product))
        .await;
    assert_eq!(
        found
            .expect("operator reads")
            .into_inner()
            .product
            .map(|p| p.sku)
            .as_deref(),
        Some("MUG-1")
    );
    let probe_files = ca.issue("prober", &[]);
    let settings = inventory_runtime::Settings::defaults()
        .overlay(probe_files.vars())
        .overlay([("TLS_SERVER_NAME", "localhost")]);
    let target = format!("127.0.0.1:{}", stock.server.addr.port());
    inventory_runtime::probe::probe(&stock_service::app::SPEC, &settings, Some(&target))
        .await
        .expect("the health probe over mutual TLS");
}

#[tokio::test]
async fn each_caller_may_call_only_what_its_role_allows_and_a_refusal_changes_nothing() {
    let ca = TestCa::new("inventory test CA");
    let (stock, product, warehouse, mut checkout) = stocked(&ca).await;
    checkout
        .reserve_stock(reserve(&product, &warehouse, 2, ""))
        .await
        .expect("order management reserves");
    let denied = checkout
        .create_product(product_request("MUG-2"))
        .await
        .expect_err("order management may not change the catalog");
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(
        denied.message().contains("order-management/checkout")
            && denied.message().contains("CreateProduct"),
        "{}",
        denied.message()
    );
    let adjust = stock::AdjustStockRequest {
        request_id: new_id(),
        product_id: product.clone(),
        warehouse_id: warehouse.clone(),
        quantity_delta: 100,
        reason: "found".to_owned(),
        ..Default::default()
    };
    assert_eq!(
        checkout
            .adjust_stock(adjust.clone())
            .await
            .expect_err("no adjusting")
            .code(),
        Code::PermissionDenied
    );
    // An operator may not adjust either: adjustments come from approved counts or a manager.
    assert_eq!(
        stock
            .client
            .clone()
            .adjust_stock(adjust)
            .await
            .expect_err("operators do not adjust")
            .code(),
        Code::PermissionDenied
    );

    let mut supplier = client_as(
        &stock,
        &ca,
        "edi",
        "spiffe://inventory/supplier-integration/edi",
    );
    assert_eq!(
        supplier
            .get_product(get_product(&product))
            .await
            .expect_err("suppliers read nothing")
            .code(),
        Code::PermissionDenied
    );

    // A certificate of the authority that names no caller of this trust domain.
    let mut nameless = client_as(
        &stock,
        &ca,
        "nameless",
        "spiffe://elsewhere/operator/console",
    );
    let refused = nameless
        .get_product(get_product(&product))
        .await
        .expect_err("nameless");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(
        refused.message().contains("names no caller"),
        "{}",
        refused.message()
    );
    // Reflection describes the API to verified callers only; health answers anyone.
    let nameless_files = ca.issue("nameless", &["spiffe://elsewhere/operator/console"]);
    let channel = tls_channel(&stock.server.tls_url(), &nameless_files);
    let refused = contract::reflected_services(channel.clone())
        .await
        .expect_err("nameless");
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(
        contract::health_on(channel, stock::SERVICE_NAME).await.ok(),
        Some(ServingStatus::Serving)
    );
    let reader = ca.issue("reader", &["spiffe://inventory/operator/console"]);
    let listed = contract::reflected_services(tls_channel(&stock.server.tls_url(), &reader))
        .await
        .expect("an operator reads the API");
    assert!(
        listed.iter().any(|s| s == stock::SERVICE_NAME),
        "{listed:?}"
    );

    assert_eq!(stock.level(&product, &warehouse).await, Some((10, 2)));
    let products = stock
        .client
        .clone()
        .list_products(stock::ListProductsRequest::default())
        .await
        .expect("products")
        .into_inner()
        .products;
    assert_eq!(products.len(), 1, "a refused CreateProduct made nothing");
}

#[tokio::test]
async fn the_log_names_the_verified_caller_and_an_actor_field_only_narrows_it() {
    let ca = TestCa::new("inventory test CA");
    // The operator's receive says actor "test": recorded under the operator's identity.
    let (stock, product, warehouse, mut checkout) = stocked(&ca).await;
    checkout
        .reserve_stock(reserve(&product, &warehouse, 1, ""))
        .await
        .expect("reserve");
    // Claiming to be someone else only names a person under the verified caller.
    checkout
        .reserve_stock(reserve(&product, &warehouse, 1, "manager/boss"))
        .await
        .expect("reserve");

    let seen = actors(&stock, &product).await;
    assert_eq!(
        seen,
        vec![
            (
                stock::TransactionType::Receive,
                "operator/console > test".to_owned()
            ),
            (
                stock::TransactionType::Reserve,
                "order-management/checkout".to_owned()
            ),
            (
                stock::TransactionType::Reserve,
                "order-management/checkout > manager/boss".to_owned()
            ),
        ]
    );
}

#[tokio::test]
async fn a_renewed_certificate_and_authority_are_served_without_a_restart() {
    let old_ca = TestCa::new("this year's CA");
    let stock = stock_with_mtls(&old_ca, &[("TLS_RELOAD_INTERVAL_MS", "100")]).await;
    let product = stock.create_product("MUG-1").await;
    let new_ca = TestCa::new("next year's CA");
    let renewed_operator = new_ca.issue("operator", &["spiffe://inventory/operator/console"]);
    let connect = |files: &CertFiles| {
        let mut client = StockServiceClient::new(tls_channel(&stock.server.tls_url(), files));
        let id = product.clone();
        async move { client.get_product(get_product(&id)).await }
    };
    assert!(
        connect(&renewed_operator).await.is_err(),
        "the new authority is not trusted yet"
    );

    // What cert-manager does on renewal: new key, certificate and authority in the mounted files.
    let stock_cert = old_ca.ca_file().with_file_name("stock.crt");
    let stock_key = old_ca.ca_file().with_file_name("stock.key");
    new_ca.issue_into(&stock_cert, &stock_key, "stock", &[]);
    std::fs::copy(new_ca.ca_file(), old_ca.ca_file()).expect("authority renewed");

    let mut waited = Duration::ZERO;
    while connect(&renewed_operator).await.is_err() {
        assert!(
            waited < Duration::from_secs(15),
            "the renewed files were never served"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
    // The old authority's callers are out on their next connection.
    let old_operator = CertFiles {
        ca: new_ca.ca_file(),
        ..old_ca.issue("old-operator", &["spiffe://inventory/operator/console"])
    };
    assert!(
        connect(&old_operator).await.is_err(),
        "a certificate of the replaced authority got in"
    );
}

#[tokio::test]
async fn without_mutual_tls_a_signed_token_names_the_caller() {
    let database = Arc::new(TestDatabase::create().await);
    let server = TestServer::spawn::<StockApp>(database, &[("AUTH_TOKEN_SECRET", SECRET)]).await;
    let mut client = StockServiceClient::new(server.channel().await);
    let now = chrono::Utc::now().timestamp();
    let with = |token: Option<String>, request: stock::CreateProductRequest| {
        let mut request = tonic::Request::new(request);
        if let Some(token) = token {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        request
    };
    let operator = sign_token(SECRET.as_bytes(), "alice", &[Role::Operator], now + 60);

    let cases = [
        (None, "no bearer token"),
        (Some("not.a.token".to_owned()), "signature"),
        (
            Some(sign_token(
                b"another-secret-another-secret-32b",
                "alice",
                &[Role::Operator],
                now + 60,
            )),
            "does not verify",
        ),
        (
            Some(sign_token(
                SECRET.as_bytes(),
                "alice",
                &[Role::Operator],
                now - 1,
            )),
            "expired",
        ),
    ];
    for (token, reason) in cases {
        let refused = client
            .create_product(with(token, product_request("MUG-1")))
            .await
            .expect_err("refused");
        assert_eq!(
            refused.code(),
            Code::Unauthenticated,
            "{}",
            refused.message()
        );
        assert!(
            refused.message().contains(reason),
            "{} lacks {reason}",
            refused.message()
        );
    }
    let checkout = sign_token(
        SECRET.as_bytes(),
        "checkout",
        &[Role::OrderManagement],
        now + 60,
    );
    let denied = client
        .create_product(with(Some(checkout), product_request("MUG-1")))
        .await
        .expect_err("order management may not");
    assert_eq!(denied.code(), Code::PermissionDenied);

    let created = client
        .create_product(with(Some(operator), product_request("MUG-1")))
        .await
        .expect("the operator's token")
        .into_inner();
    assert_eq!(created.product.map(|p| p.sku).as_deref(), Some("MUG-1"));
}

#[tokio::test]
async fn allocation_calls_stock_over_mutual_tls_and_stock_records_it_acting_for_the_router() {
    let ca = TestCa::new("inventory test CA");
    let stock = stock_with_mtls(&ca, &[]).await;
    let product = stock.create_product("MUG-1").await;
    let warehouse = stock.create_warehouse("Berlin", (52.52, 13.405)).await;
    stock.receive(&product, &warehouse, 5, "PO-1").await;

    let own = ca.issue(
        "allocation",
        &["spiffe://inventory/fulfillment-allocation/alloc-0"],
    );
    let stock_url = stock.server.tls_url();
    let vars = vars(
        &own,
        &[("STOCK_URL", &stock_url), ("WAREHOUSE_REFRESH_MS", "0")],
    );
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = TestServer::spawn::<AllocationApp>(stock.server.database.clone(), &vars).await;
    let router = ca.issue("router", &["spiffe://inventory/fulfillment-router/eu-1"]);
    let mut allocations = AllocationServiceClient::new(tls_channel(&server.tls_url(), &router));

    let order = new_id();
    let allocated = allocations
        .allocate_order(allocation::AllocateOrderRequest {
            request_id: new_id(),
            order_id: order.clone(),
            destination: Some(allocation::Destination {
                latitude: 52.5,
                longitude: 13.4,
                ..Default::default()
            }),
            lines: vec![allocation::OrderLine {
                order_line_id: "1".to_owned(),
                product_id: product.clone(),
                quantity: 2,
            }],
            options: None,
            actor: String::new(),
        })
        .await
        .expect("allocated over mutual TLS")
        .into_inner();
    assert_eq!(allocated.allocation.map(|a| a.order_id), Some(order));
    assert_eq!(stock.level(&product, &warehouse).await, Some((5, 2)));
    let reserved_by: Vec<String> = actors(&stock, &product)
        .await
        .into_iter()
        .filter(|(kind, _)| *kind == stock::TransactionType::Reserve)
        .map(|(_, actor)| actor)
        .collect();
    assert_eq!(
        reserved_by,
        vec!["fulfillment-allocation/alloc-0 > fulfillment-router/eu-1"]
    );

    // A router may allocate but not set warehouses' operating profiles.
    let denied = allocations
        .set_warehouse_profile(allocation::SetWarehouseProfileRequest {
            request_id: new_id(),
            ..Default::default()
        })
        .await
        .expect_err("routers do not run warehouses");
    assert_eq!(denied.code(), Code::PermissionDenied);
}
