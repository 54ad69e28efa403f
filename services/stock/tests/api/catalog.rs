//! The catalog (products, warehouses) and the read RPCs, against a real service: round trips,
//! field masks, paging, filters, validation and idempotent creates.

use std::collections::HashSet;

use crate::helpers::{TestApp, bad_fields, new_id};
use inventory_proto::stock::v1 as pb;
use tonic::{Code, Status};

const SUMMARY_UNIT_COST: i64 = 2_500_000;

/// A valid product like the harness makes (reorder point 10, unit cost 2.5 currency units).
fn product_input(sku: &str) -> pb::Product {
    pb::Product {
        sku: sku.to_owned(),
        name: format!("Product {sku}"),
        category: "widgets".to_owned(),
        unit_of_measure: "each".to_owned(),
        reorder_point: 10,
        reorder_quantity: 50,
        lead_time_days: 7,
        unit_cost_micros: SUMMARY_UNIT_COST,
        ..Default::default()
    }
}

fn warehouse_input(
    name: &str,
    kind: pb::WarehouseType,
    latitude: f64,
    longitude: f64,
) -> pb::Warehouse {
    pb::Warehouse {
        name: name.to_owned(),
        address: format!("{name} Street 1"),
        r#type: kind.into(),
        location: Some(pb::GeoPoint {
            latitude,
            longitude,
        }),
        ..Default::default()
    }
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

/// (seconds, nanos) of a timestamp that must be present.
fn at(t: Option<&prost_types::Timestamp>) -> (i64, i32) {
    let t = t.expect("timestamp present");
    (t.seconds, t.nanos)
}

async fn create_product(app: &TestApp, product: pb::Product) -> Result<pb::Product, Status> {
    app.client
        .clone()
        .create_product(pb::CreateProductRequest {
            request_id: new_id(),
            product: Some(product),
        })
        .await
        .map(|r| r.into_inner().product.expect("product in response"))
}

async fn get_product(app: &TestApp, product_id: &str) -> Result<pb::Product, Status> {
    app.client
        .clone()
        .get_product(pb::GetProductRequest {
            product_id: product_id.to_owned(),
        })
        .await
        .map(|r| r.into_inner().product.expect("product in response"))
}

async fn update_product(
    app: &TestApp,
    product: pb::Product,
    paths: &[&str],
) -> Result<pb::Product, Status> {
    app.client
        .clone()
        .update_product(pb::UpdateProductRequest {
            request_id: new_id(),
            product: Some(product),
            update_mask: mask(paths),
        })
        .await
        .map(|r| r.into_inner().product.expect("product in response"))
}

async fn list_products(
    app: &TestApp,
    page_size: i32,
    page_token: &str,
    category: &str,
) -> Result<pb::ListProductsResponse, Status> {
    app.client
        .clone()
        .list_products(pb::ListProductsRequest {
            page_size,
            page_token: page_token.to_owned(),
            category: category.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn create_warehouse(
    app: &TestApp,
    warehouse: pb::Warehouse,
) -> Result<pb::Warehouse, Status> {
    app.client
        .clone()
        .create_warehouse(pb::CreateWarehouseRequest {
            request_id: new_id(),
            warehouse: Some(warehouse),
        })
        .await
        .map(|r| r.into_inner().warehouse.expect("warehouse in response"))
}

async fn get_warehouse(app: &TestApp, warehouse_id: &str) -> Result<pb::Warehouse, Status> {
    app.client
        .clone()
        .get_warehouse(pb::GetWarehouseRequest {
            warehouse_id: warehouse_id.to_owned(),
        })
        .await
        .map(|r| r.into_inner().warehouse.expect("warehouse in response"))
}

async fn list_inventory(app: &TestApp, request: pb::ListInventoryRequest) -> Vec<(String, String)> {
    let response = app
        .client
        .clone()
        .list_inventory(request)
        .await
        .expect("list inventory")
        .into_inner();
    assert!(response.next_page_token.is_empty(), "one page expected");
    let mut keys: Vec<(String, String)> = response
        .inventory
        .into_iter()
        .map(|i| (i.product_id, i.warehouse_id))
        .collect();
    keys.sort();
    keys
}

fn sorted_keys(keys: &[(&String, &String)]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = keys
        .iter()
        .map(|(p, w)| ((*p).clone(), (*w).clone()))
        .collect();
    keys.sort();
    keys
}

async fn list_transactions(
    app: &TestApp,
    request: pb::ListTransactionsRequest,
) -> pb::ListTransactionsResponse {
    app.client
        .clone()
        .list_transactions(request)
        .await
        .expect("list transactions")
        .into_inner()
}

// ---------------------------------------------------------------------------------------------
// Products
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn creating_then_getting_a_product_round_trips_every_field_and_honours_a_chosen_id() {
    let app = TestApp::spawn().await;
    let chosen_id = new_id();
    let input = pb::Product {
        product_id: chosen_id.clone(),
        sku: "RT-1".to_owned(),
        name: "Round Trip Widget".to_owned(),
        category: "tools".to_owned(),
        unit_of_measure: "case-of-12".to_owned(),
        reorder_point: 7,
        reorder_quantity: 30,
        lead_time_days: 14,
        unit_cost_micros: 1_234_567,
        create_time: None,
        update_time: None,
    };
    let created = create_product(&app, input.clone()).await.expect("create");
    assert_eq!(created.product_id, chosen_id);
    let (created_at, updated_at) = (
        at(created.create_time.as_ref()),
        at(created.update_time.as_ref()),
    );
    assert!(created_at.0 > 0, "create_time set: {created_at:?}");
    assert_eq!(created_at, updated_at, "a new product was never updated");
    assert_eq!(
        pb::Product {
            create_time: None,
            update_time: None,
            ..created.clone()
        },
        input,
        "every input field is stored as given"
    );

    let fetched = get_product(&app, &chosen_id).await.expect("get");
    assert_eq!(fetched, created, "get returns exactly what create returned");

    // Without a chosen id the service assigns a UUID.
    let assigned = app.product("RT-2").await;
    assert!(uuid::Uuid::parse_str(&assigned).is_ok(), "{assigned}");
    assert_ne!(assigned, chosen_id);
    assert_eq!(app.count("SELECT count(*) FROM products").await, 2);
}

#[tokio::test]
async fn a_duplicate_sku_is_already_exists_and_leaves_the_first_product_unchanged() {
    let app = TestApp::spawn().await;
    let first = create_product(&app, product_input("DUP-1"))
        .await
        .expect("first create");
    let status = create_product(
        &app,
        pb::Product {
            name: "Impostor".to_owned(),
            unit_cost_micros: 1,
            ..product_input("DUP-1")
        },
    )
    .await
    .expect_err("duplicate sku");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(status.message().contains("DUP-1"), "{}", status.message());

    let stored = get_product(&app, &first.product_id).await.expect("get");
    assert_eq!(stored, first);
    assert_eq!(app.count("SELECT count(*) FROM products").await, 1);
    // The refused request's id was rolled back with it.
    assert_eq!(
        app.count("SELECT count(*) FROM idempotency_keys WHERE method = 'CreateProduct'")
            .await,
        1
    );
}

#[tokio::test]
async fn creating_a_product_with_bad_fields_names_each_bad_field() {
    let app = TestApp::spawn().await;
    let status = create_product(
        &app,
        pb::Product {
            sku: String::new(),
            name: String::new(),
            reorder_point: -1,
            lead_time_days: 99_999,
            ..product_input("ignored")
        },
    )
    .await
    .expect_err("invalid");
    assert_eq!(
        bad_fields(&status),
        [
            "product.sku",
            "product.name",
            "product.reorder_point",
            "product.lead_time_days"
        ]
    );

    let status = create_product(
        &app,
        pb::Product {
            product_id: "not-a-uuid".to_owned(),
            unit_cost_micros: -5,
            ..product_input("BAD-ID")
        },
    )
    .await
    .expect_err("invalid");
    assert_eq!(
        bad_fields(&status),
        ["product.product_id", "product.unit_cost_micros"]
    );

    let status = app
        .client
        .clone()
        .create_product(pb::CreateProductRequest {
            request_id: new_id(),
            product: None,
        })
        .await
        .expect_err("missing product");
    assert_eq!(bad_fields(&status), ["product"]);

    let status = app
        .client
        .clone()
        .create_product(pb::CreateProductRequest {
            request_id: String::new(),
            product: Some(product_input("NO-REQUEST-ID")),
        })
        .await
        .expect_err("missing request id");
    assert_eq!(bad_fields(&status), ["request_id"]);

    assert_eq!(app.count("SELECT count(*) FROM products").await, 0);
}

#[tokio::test]
async fn updating_with_a_field_mask_changes_only_the_masked_fields() {
    let app = TestApp::spawn().await;
    let id = app.product("UPD-1").await;
    let original = get_product(&app, &id).await.expect("get");

    let updated = update_product(
        &app,
        pb::Product {
            product_id: id.clone(),
            name: "Renamed".to_owned(),
            reorder_point: 99,
            // Outside the mask: neither validated nor applied.
            sku: String::new(),
            category: "ignored".to_owned(),
            unit_cost_micros: -1,
            ..Default::default()
        },
        &["name", "reorder_point"],
    )
    .await
    .expect("update");
    assert_eq!(
        updated,
        pb::Product {
            name: "Renamed".to_owned(),
            reorder_point: 99,
            update_time: updated.update_time,
            ..original.clone()
        }
    );
    assert_eq!(
        at(updated.create_time.as_ref()),
        at(original.create_time.as_ref())
    );
    assert!(
        at(updated.update_time.as_ref()) >= at(original.update_time.as_ref()),
        "update_time moves forward"
    );
    assert_eq!(get_product(&app, &id).await.expect("get"), updated);

    // "*" replaces every field.
    let replacement = pb::Product {
        product_id: id.clone(),
        name: "Fully Replaced".to_owned(),
        category: String::new(),
        unit_of_measure: "kg".to_owned(),
        reorder_point: 1,
        reorder_quantity: 2,
        lead_time_days: 3,
        unit_cost_micros: 4,
        ..product_input("UPD-1-NEW")
    };
    let replaced = update_product(&app, replacement.clone(), &["*"])
        .await
        .expect("replace all");
    assert_eq!(
        pb::Product {
            create_time: None,
            update_time: None,
            ..replaced
        },
        replacement
    );
}

#[tokio::test]
async fn updating_an_unknown_product_is_not_found() {
    let app = TestApp::spawn().await;
    let unknown = new_id();
    let status = update_product(
        &app,
        pb::Product {
            product_id: unknown.clone(),
            name: "Ghost".to_owned(),
            ..Default::default()
        },
        &["name"],
    )
    .await
    .expect_err("unknown product");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(&unknown), "{}", status.message());
    assert_eq!(app.count("SELECT count(*) FROM products").await, 0);
}

#[tokio::test]
async fn an_unknown_mask_path_or_an_empty_mask_is_invalid_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let id = app.product("MASK-1").await;
    let original = get_product(&app, &id).await.expect("get");

    let status = update_product(
        &app,
        pb::Product {
            product_id: id.clone(),
            name: "Renamed".to_owned(),
            ..Default::default()
        },
        &["name", "colour"],
    )
    .await
    .expect_err("unknown path");
    assert_eq!(bad_fields(&status), ["update_mask.paths"]);

    let status = app
        .client
        .clone()
        .update_product(pb::UpdateProductRequest {
            request_id: new_id(),
            product: Some(pb::Product {
                product_id: id.clone(),
                name: "Renamed".to_owned(),
                ..Default::default()
            }),
            update_mask: None,
        })
        .await
        .expect_err("no mask");
    assert_eq!(bad_fields(&status), ["update_mask"]);

    let status = update_product(
        &app,
        pb::Product {
            product_id: id.clone(),
            name: "Renamed".to_owned(),
            ..Default::default()
        },
        &[],
    )
    .await
    .expect_err("empty mask");
    assert_eq!(bad_fields(&status), ["update_mask"]);

    // A masked field is validated like on create.
    let status = update_product(
        &app,
        pb::Product {
            product_id: id.clone(),
            lead_time_days: -1,
            ..Default::default()
        },
        &["lead_time_days"],
    )
    .await
    .expect_err("bad masked field");
    assert_eq!(bad_fields(&status), ["product.lead_time_days"]);

    assert_eq!(get_product(&app, &id).await.expect("get"), original);
}

#[tokio::test]
async fn updating_a_sku_to_one_that_exists_is_already_exists() {
    let app = TestApp::spawn().await;
    let _a = app.product("SKU-A").await;
    let b = app.product("SKU-B").await;
    let before = get_product(&app, &b).await.expect("get");
    let status = update_product(
        &app,
        pb::Product {
            product_id: b.clone(),
            sku: "SKU-A".to_owned(),
            ..Default::default()
        },
        &["sku"],
    )
    .await
    .expect_err("taken sku");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert_eq!(get_product(&app, &b).await.expect("get"), before);

    // A free sku is accepted.
    let renamed = update_product(
        &app,
        pb::Product {
            product_id: b.clone(),
            sku: "SKU-C".to_owned(),
            ..Default::default()
        },
        &["sku"],
    )
    .await
    .expect("free sku");
    assert_eq!(renamed.sku, "SKU-C");
}

#[tokio::test]
async fn getting_a_product_by_a_malformed_id_is_invalid_and_by_an_unknown_id_not_found() {
    let app = TestApp::spawn().await;
    for bad in ["not-a-uuid", ""] {
        let status = get_product(&app, bad).await.expect_err("malformed");
        assert_eq!(bad_fields(&status), ["product_id"], "for {bad:?}");
    }
    let unknown = new_id();
    let status = get_product(&app, &unknown).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(&unknown), "{}", status.message());
}

#[tokio::test]
async fn listing_products_walks_every_page_and_sees_each_product_exactly_once() {
    let app = TestApp::spawn().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(app.product(&format!("PAGE-{i}")).await);
    }

    let mut seen = Vec::new();
    let mut page_sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = list_products(&app, 2, &token, "").await.expect("list");
        page_sizes.push(page.products.len());
        seen.extend(page.products.into_iter().map(|p| p.product_id));
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(page_sizes.len() < 10, "paging never ends: {page_sizes:?}");
        token = page.next_page_token;
    }
    assert_eq!(page_sizes, [2, 2, 1]);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "a product appeared twice: {seen:?}"
    );
    let mut expected = created.clone();
    expected.sort();
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    assert_eq!(sorted_seen, expected);
    assert_eq!(seen, sorted_seen, "pages come in product id order");

    // page_size 0 means the default: everything on one page.
    let all = list_products(&app, 0, "", "").await.expect("list");
    assert_eq!(all.products.len(), 5);
    assert!(all.next_page_token.is_empty());
}

#[tokio::test]
async fn listing_products_filters_by_category() {
    let app = TestApp::spawn().await;
    let widget_a = app.product("CAT-W1").await;
    let widget_b = app.product("CAT-W2").await;
    let tool = create_product(
        &app,
        pb::Product {
            category: "tools".to_owned(),
            ..product_input("CAT-T1")
        },
    )
    .await
    .expect("create tool")
    .product_id;

    let tools = list_products(&app, 0, "", "tools").await.expect("list");
    let ids: Vec<String> = tools.products.into_iter().map(|p| p.product_id).collect();
    assert_eq!(ids, [tool]);

    let widgets = list_products(&app, 0, "", "widgets").await.expect("list");
    let mut ids: Vec<String> = widgets
        .products
        .iter()
        .map(|p| p.product_id.clone())
        .collect();
    ids.sort();
    let mut expected = vec![widget_a, widget_b];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(widgets.products.iter().all(|p| p.category == "widgets"));

    let none = list_products(&app, 0, "", "no-such-category")
        .await
        .expect("list");
    assert!(none.products.is_empty());
    assert!(none.next_page_token.is_empty());
}

#[tokio::test]
async fn listing_with_a_bad_page_size_or_a_forged_page_token_is_invalid() {
    let app = TestApp::spawn().await;
    app.product("TOKEN-1").await;
    for size in [-1, 1001] {
        let status = list_products(&app, size, "", "")
            .await
            .expect_err("bad page size");
        assert_eq!(bad_fields(&status), ["page_size"], "for {size}");
    }
    // Not a token at all, a token of the right shape that does not decode, and a well-formed
    // token (v1. + hex of "nope") whose position is not a product id.
    for token in ["garbage", "v1.zz", "v1.6e6f7065"] {
        let status = list_products(&app, 2, token, "")
            .await
            .expect_err("forged token");
        assert_eq!(bad_fields(&status), ["page_token"], "for {token:?}");
    }
    let status = app
        .client
        .clone()
        .list_warehouses(pb::ListWarehousesRequest {
            page_size: 0,
            page_token: "garbage".to_owned(),
        })
        .await
        .expect_err("forged token");
    assert_eq!(bad_fields(&status), ["page_token"]);
    let status = app
        .client
        .clone()
        .list_inventory(pb::ListInventoryRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .expect_err("bad page size");
    assert_eq!(bad_fields(&status), ["page_size"]);
}

#[tokio::test]
async fn creating_a_product_twice_with_one_request_id_returns_the_first_response() {
    let app = TestApp::spawn().await;
    let request = pb::CreateProductRequest {
        request_id: new_id(),
        product: Some(product_input("IDEM-1")),
    };
    let first = app
        .client
        .clone()
        .create_product(request.clone())
        .await
        .expect("first")
        .into_inner();
    let second = app
        .client
        .clone()
        .create_product(request.clone())
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(first, second, "the retry replays the first response");
    assert_eq!(app.count("SELECT count(*) FROM products").await, 1);

    // The same request id with a different body is refused, not replayed.
    let mut changed = request.clone();
    changed.product.as_mut().expect("product").name = "Something Else".to_owned();
    let status = app
        .client
        .clone()
        .create_product(changed)
        .await
        .expect_err("reused request id");
    assert_eq!(bad_fields(&status), ["request_id"]);
    assert_eq!(app.count("SELECT count(*) FROM products").await, 1);
    let stored = get_product(&app, &first.product.expect("product").product_id)
        .await
        .expect("get");
    assert_eq!(stored.name, "Product IDEM-1");
}

// ---------------------------------------------------------------------------------------------
// Warehouses
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn warehouses_round_trip_through_create_get_list_and_a_masked_update() {
    let app = TestApp::spawn().await;
    let chosen_id = new_id();
    let input = pb::Warehouse {
        warehouse_id: chosen_id.clone(),
        ..warehouse_input("Munich", pb::WarehouseType::Retail, 48.137, 11.575)
    };
    let created = create_warehouse(&app, input.clone()).await.expect("create");
    assert_eq!(created.warehouse_id, chosen_id);
    assert_eq!(created.r#type(), pb::WarehouseType::Retail);
    assert_eq!(
        at(created.create_time.as_ref()),
        at(created.update_time.as_ref())
    );
    assert_eq!(
        pb::Warehouse {
            create_time: None,
            update_time: None,
            ..created.clone()
        },
        input
    );
    assert_eq!(get_warehouse(&app, &chosen_id).await.expect("get"), created);

    let other = app.warehouse("Berlin").await;
    let mut listed = Vec::new();
    let mut page_sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .client
            .clone()
            .list_warehouses(pb::ListWarehousesRequest {
                page_size: 1,
                page_token: token.clone(),
            })
            .await
            .expect("list")
            .into_inner();
        page_sizes.push(page.warehouses.len());
        listed.extend(page.warehouses);
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(page_sizes.len() < 10, "paging never ends");
        token = page.next_page_token;
    }
    assert_eq!(page_sizes, [1, 1]);
    let mut ids: Vec<String> = listed.iter().map(|w| w.warehouse_id.clone()).collect();
    ids.sort();
    let mut expected = vec![chosen_id.clone(), other];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(listed.contains(&created), "listed as created: {listed:?}");

    let updated = app
        .client
        .clone()
        .update_warehouse(pb::UpdateWarehouseRequest {
            request_id: new_id(),
            warehouse: Some(pb::Warehouse {
                warehouse_id: chosen_id.clone(),
                location: Some(pb::GeoPoint {
                    latitude: -33.8688,
                    longitude: 151.2093,
                }),
                // Outside the mask: neither validated nor applied.
                name: String::new(),
                r#type: pb::WarehouseType::Unspecified.into(),
                ..Default::default()
            }),
            update_mask: mask(&["location"]),
        })
        .await
        .expect("update")
        .into_inner()
        .warehouse
        .expect("warehouse");
    assert_eq!(
        updated,
        pb::Warehouse {
            location: Some(pb::GeoPoint {
                latitude: -33.8688,
                longitude: 151.2093,
            }),
            update_time: updated.update_time,
            ..created.clone()
        }
    );
    assert!(at(updated.update_time.as_ref()) >= at(created.update_time.as_ref()));
    assert_eq!(get_warehouse(&app, &chosen_id).await.expect("get"), updated);
}

#[tokio::test]
async fn creating_a_warehouse_with_bad_fields_names_each_bad_field() {
    let app = TestApp::spawn().await;
    let status = create_warehouse(
        &app,
        warehouse_input("North Pole+", pb::WarehouseType::Retail, 91.0, 0.0),
    )
    .await
    .expect_err("latitude out of range");
    assert_eq!(bad_fields(&status), ["warehouse.location.latitude"]);

    let status = create_warehouse(
        &app,
        warehouse_input("Untyped", pb::WarehouseType::Unspecified, 10.0, 10.0),
    )
    .await
    .expect_err("type unspecified");
    assert_eq!(bad_fields(&status), ["warehouse.type"]);

    let status = create_warehouse(
        &app,
        pb::Warehouse {
            location: None,
            ..warehouse_input("Nowhere", pb::WarehouseType::Retail, 0.0, 0.0)
        },
    )
    .await
    .expect_err("no location");
    assert_eq!(bad_fields(&status), ["warehouse.location"]);

    let status = create_warehouse(
        &app,
        pb::Warehouse {
            name: String::new(),
            r#type: 42,
            ..warehouse_input("x", pb::WarehouseType::Retail, -91.0, 181.0)
        },
    )
    .await
    .expect_err("everything wrong");
    assert_eq!(
        bad_fields(&status),
        [
            "warehouse.name",
            "warehouse.type",
            "warehouse.location.latitude",
            "warehouse.location.longitude"
        ]
    );

    let status = app
        .client
        .clone()
        .create_warehouse(pb::CreateWarehouseRequest {
            request_id: new_id(),
            warehouse: None,
        })
        .await
        .expect_err("missing warehouse");
    assert_eq!(bad_fields(&status), ["warehouse"]);

    assert_eq!(app.count("SELECT count(*) FROM warehouses").await, 0);
}

#[tokio::test]
async fn warehouse_lookups_and_updates_of_unknown_ids_are_not_found() {
    let app = TestApp::spawn().await;
    let status = get_warehouse(&app, "nope").await.expect_err("malformed");
    assert_eq!(bad_fields(&status), ["warehouse_id"]);
    let unknown = new_id();
    let status = get_warehouse(&app, &unknown).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    let status = app
        .client
        .clone()
        .update_warehouse(pb::UpdateWarehouseRequest {
            request_id: new_id(),
            warehouse: Some(pb::Warehouse {
                warehouse_id: unknown.clone(),
                name: "Ghost".to_owned(),
                ..Default::default()
            }),
            update_mask: mask(&["name"]),
        })
        .await
        .expect_err("unknown warehouse");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(&unknown), "{}", status.message());

    let w = app.warehouse("Hamburg").await;
    let status = app
        .client
        .clone()
        .update_warehouse(pb::UpdateWarehouseRequest {
            request_id: new_id(),
            warehouse: Some(pb::Warehouse {
                warehouse_id: w.clone(),
                ..Default::default()
            }),
            update_mask: mask(&["colour"]),
        })
        .await
        .expect_err("unknown path");
    assert_eq!(bad_fields(&status), ["update_mask.paths"]);
}

// ---------------------------------------------------------------------------------------------
// Inventory reads
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn list_inventory_filters_by_warehouse_by_product_and_below_reorder_point() {
    let app = TestApp::spawn().await;
    // Harness products have reorder point 10.
    let (low, high) = (app.product("LOW").await, app.product("HIGH").await);
    let (w1, w2) = (app.warehouse("One").await, app.warehouse("Two").await);
    app.receive(&low, &w1, 5).await;
    app.receive(&high, &w1, 50).await;
    app.receive(&low, &w2, 20).await;

    let by_warehouse = list_inventory(
        &app,
        pb::ListInventoryRequest {
            warehouse_id: w1.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_warehouse, sorted_keys(&[(&low, &w1), (&high, &w1)]));

    let by_product = list_inventory(
        &app,
        pb::ListInventoryRequest {
            product_id: low.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_product, sorted_keys(&[(&low, &w1), (&low, &w2)]));

    let below = list_inventory(
        &app,
        pb::ListInventoryRequest {
            below_reorder_point: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(below, sorted_keys(&[(&low, &w1)]));

    let below_in_w2 = list_inventory(
        &app,
        pb::ListInventoryRequest {
            warehouse_id: w2.clone(),
            below_reorder_point: true,
            ..Default::default()
        },
    )
    .await;
    assert!(below_in_w2.is_empty(), "{below_in_w2:?}");

    // Below reorder point compares the available quantity: reserving 45 of 50 leaves 5.
    app.reserve("order-1", &high, &w1, 45)
        .await
        .expect("reserve");
    let below = list_inventory(
        &app,
        pb::ListInventoryRequest {
            below_reorder_point: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(below, sorted_keys(&[(&low, &w1), (&high, &w1)]));

    // Every row, one per page.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .client
            .clone()
            .list_inventory(pb::ListInventoryRequest {
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list")
            .into_inner();
        assert!(page.inventory.len() <= 1);
        seen.extend(
            page.inventory
                .into_iter()
                .map(|i| (i.product_id, i.warehouse_id)),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(seen.len() < 10, "paging never ends");
        token = page.next_page_token;
    }
    assert_eq!(seen, sorted_keys(&[(&low, &w1), (&high, &w1), (&low, &w2)]));

    let status = app
        .client
        .clone()
        .list_inventory(pb::ListInventoryRequest {
            product_id: "nope".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("malformed filter");
    assert_eq!(bad_fields(&status), ["product_id"]);
}

#[tokio::test]
async fn batch_availability_answers_each_key_in_request_order_with_zeros_for_unstocked_pairs() {
    let app = TestApp::spawn().await;
    let (p1, p2) = (app.product("BA-1").await, app.product("BA-2").await);
    let (w1, w2) = (app.warehouse("One").await, app.warehouse("Two").await);
    app.receive(&p1, &w1, 8).await;
    app.reserve("order-1", &p1, &w1, 3).await.expect("reserve");

    fn key(p: &str, w: &str) -> pb::InventoryKey {
        pb::InventoryKey {
            product_id: p.to_owned(),
            warehouse_id: w.to_owned(),
        }
    }
    let response = app
        .client
        .clone()
        .batch_get_availability(pb::BatchGetAvailabilityRequest {
            keys: vec![key(&p2, &w1), key(&p1, &w1), key(&p1, &w2), key(&p1, &w1)],
        })
        .await
        .expect("batch")
        .into_inner();
    let got: Vec<(&str, &str, i64, i64, i64)> = response
        .availabilities
        .iter()
        .map(|a| {
            (
                a.product_id.as_str(),
                a.warehouse_id.as_str(),
                a.quantity_on_hand,
                a.quantity_reserved,
                a.quantity_available,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (p2.as_str(), w1.as_str(), 0, 0, 0),
            (p1.as_str(), w1.as_str(), 8, 3, 5),
            (p1.as_str(), w2.as_str(), 0, 0, 0),
            (p1.as_str(), w1.as_str(), 8, 3, 5),
        ]
    );

    let unknown = new_id();
    let status = app
        .client
        .clone()
        .batch_get_availability(pb::BatchGetAvailabilityRequest {
            keys: vec![key(&p1, &w1), key(&unknown, &w1)],
        })
        .await
        .expect_err("unknown product");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(&unknown), "{}", status.message());

    let status = app
        .client
        .clone()
        .batch_get_availability(pb::BatchGetAvailabilityRequest { keys: Vec::new() })
        .await
        .expect_err("no keys");
    assert_eq!(bad_fields(&status), ["keys"]);

    let status = app
        .client
        .clone()
        .batch_get_availability(pb::BatchGetAvailabilityRequest {
            keys: vec![key(&p1, &w1), key(&p1, "nope")],
        })
        .await
        .expect_err("malformed key");
    assert_eq!(bad_fields(&status), ["keys[1].warehouse_id"]);
}

#[tokio::test]
async fn inventory_summary_values_on_hand_at_unit_cost_per_warehouse_and_in_total() {
    let app = TestApp::spawn().await;
    let p = app.product("SUM-1").await; // unit cost 2_500_000 micros
    let cheap = create_product(
        &app,
        pb::Product {
            unit_cost_micros: 1_000_000,
            ..product_input("SUM-2")
        },
    )
    .await
    .expect("create cheap")
    .product_id;
    let (w1, w2) = (app.warehouse("One").await, app.warehouse("Two").await);
    app.receive(&p, &w1, 4).await;
    app.reserve("order-1", &p, &w1, 1).await.expect("reserve");
    app.receive(&p, &w2, 6).await;
    app.receive(&cheap, &w2, 3).await;

    let summary = app
        .client
        .clone()
        .get_inventory_summary(pb::GetInventorySummaryRequest {})
        .await
        .expect("summary")
        .into_inner();
    assert!(summary.as_of.is_some());
    let find = |w: &str| {
        summary
            .warehouses
            .iter()
            .find(|s| s.warehouse_id == w)
            .unwrap_or_else(|| panic!("warehouse {w} in summary: {:?}", summary.warehouses))
            .clone()
    };
    let one = find(w1.as_str());
    assert_eq!(
        (
            one.quantity_on_hand,
            one.quantity_reserved,
            one.quantity_available,
            one.value_micros
        ),
        (4, 1, 3, 4 * SUMMARY_UNIT_COST)
    );
    assert_eq!(one.value_micros, 10_000_000);
    let two = find(w2.as_str());
    assert_eq!(
        (
            two.quantity_on_hand,
            two.quantity_reserved,
            two.quantity_available,
            two.value_micros
        ),
        (9, 0, 9, 6 * SUMMARY_UNIT_COST + 3 * 1_000_000)
    );
    assert_eq!(summary.warehouses.len(), 2);

    let total = summary.total.clone().expect("total");
    let rows = &summary.warehouses;
    assert_eq!(
        total.quantity_on_hand,
        rows.iter().map(|s| s.quantity_on_hand).sum::<i64>()
    );
    assert_eq!(
        total.quantity_reserved,
        rows.iter().map(|s| s.quantity_reserved).sum::<i64>()
    );
    assert_eq!(
        total.quantity_available,
        rows.iter().map(|s| s.quantity_available).sum::<i64>()
    );
    assert_eq!(
        total.value_micros,
        rows.iter().map(|s| s.value_micros).sum::<i64>()
    );
    assert_eq!(
        (
            total.quantity_on_hand,
            total.quantity_reserved,
            total.quantity_available,
            total.value_micros
        ),
        (13, 1, 12, 28_000_000)
    );
}

#[tokio::test]
async fn list_transactions_filters_by_reference_and_type_and_pages_in_sequence_order() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("TXN-1").await, app.warehouse("One").await);
    let other = app.product("TXN-2").await;
    app.receive(&p, &w, 10).await; // reference PO-1
    app.receive(&p, &w, 10).await; // reference PO-1
    app.client
        .clone()
        .receive_stock(pb::ReceiveStockRequest {
            request_id: new_id(),
            product_id: p.clone(),
            warehouse_id: w.clone(),
            quantity: 4,
            reference_id: "PO-2".to_owned(),
            actor: "receiving".to_owned(),
        })
        .await
        .expect("receive PO-2");
    app.reserve("order-1", &p, &w, 3).await.expect("reserve 1");
    app.reserve("order-2", &p, &w, 2).await.expect("reserve 2");

    let by_reference = list_transactions(
        &app,
        pb::ListTransactionsRequest {
            reference_id: "PO-1".to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_reference.transactions.len(), 2);
    assert!(by_reference.transactions.iter().all(|t| {
        t.reference_id == "PO-1" && t.txn_type() == pb::TransactionType::Receive && t.quantity == 10
    }));
    assert!(by_reference.next_page_token.is_empty());

    let reserves = list_transactions(
        &app,
        pb::ListTransactionsRequest {
            txn_type: pb::TransactionType::Reserve.into(),
            ..Default::default()
        },
    )
    .await;
    let refs: Vec<(&str, i64)> = reserves
        .transactions
        .iter()
        .map(|t| (t.reference_id.as_str(), t.quantity))
        .collect();
    assert_eq!(refs, [("order-1", 3), ("order-2", 2)]);
    assert!(
        reserves
            .transactions
            .iter()
            .all(|t| t.txn_type() == pb::TransactionType::Reserve)
    );

    let both = list_transactions(
        &app,
        pb::ListTransactionsRequest {
            txn_type: pb::TransactionType::Receive.into(),
            reference_id: "PO-2".to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(both.transactions.len(), 1);
    assert_eq!(both.transactions[0].quantity, 4);

    let none = list_transactions(
        &app,
        pb::ListTransactionsRequest {
            product_id: other.clone(),
            ..Default::default()
        },
    )
    .await;
    assert!(none.transactions.is_empty());

    // Every transaction, two per page: 5 = 2 + 2 + 1, in strictly increasing sequence.
    let mut sequences = Vec::new();
    let mut page_sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = list_transactions(
            &app,
            pb::ListTransactionsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await;
        page_sizes.push(page.transactions.len());
        sequences.extend(page.transactions.iter().map(|t| t.sequence));
        if page.next_page_token.is_empty() {
            break;
        }
        assert!(page_sizes.len() < 10, "paging never ends");
        token = page.next_page_token;
    }
    assert_eq!(page_sizes, [2, 2, 1]);
    assert!(sequences.windows(2).all(|s| s[0] < s[1]), "{sequences:?}");
    assert_eq!(sequences.len() as i64, app.transaction_count().await);

    // Paging composes with a filter: three receives, two per page.
    let first = list_transactions(
        &app,
        pb::ListTransactionsRequest {
            page_size: 2,
            txn_type: pb::TransactionType::Receive.into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(first.transactions.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = list_transactions(
        &app,
        pb::ListTransactionsRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
            txn_type: pb::TransactionType::Receive.into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(second.transactions.len(), 1);
    assert_eq!(second.transactions[0].reference_id, "PO-2");
    assert!(second.next_page_token.is_empty());

    let status = app
        .client
        .clone()
        .list_transactions(pb::ListTransactionsRequest {
            page_token: "garbage".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("forged token");
    assert_eq!(bad_fields(&status), ["page_token"]);
}

#[tokio::test]
async fn a_page_token_only_continues_the_listing_it_came_from() {
    let app = TestApp::spawn().await;
    let warehouse = app.warehouse("A").await;
    for sku in ["MUG-1", "MUG-2", "MUG-3"] {
        let product = app.product(sku).await;
        app.receive(&product, &warehouse, 1).await;
    }
    let first = app
        .client
        .clone()
        .list_transactions(pb::ListTransactionsRequest {
            page_size: 1,
            reference_id: "PO-1".into(),
            ..Default::default()
        })
        .await
        .expect("first page")
        .into_inner();
    assert_eq!(first.transactions.len(), 1);
    assert!(!first.next_page_token.is_empty());

    let status = app
        .client
        .clone()
        .list_transactions(pb::ListTransactionsRequest {
            page_size: 1,
            page_token: first.next_page_token.clone(),
            reference_id: "PO-2".into(),
            ..Default::default()
        })
        .await
        .expect_err("token of another listing");
    assert_eq!(bad_fields(&status), ["page_token"]);

    let second = app
        .client
        .clone()
        .list_transactions(pb::ListTransactionsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            reference_id: "PO-1".into(),
            ..Default::default()
        })
        .await
        .expect("same listing, next page")
        .into_inner();
    assert!(second.transactions[0].sequence > first.transactions[0].sequence);
}
