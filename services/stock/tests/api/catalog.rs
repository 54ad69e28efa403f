//! The catalog (products, warehouses) and the read RPCs, against a real service: round trips,
//! field masks, paging, filters, validation and idempotent creates.

use std::collections::HashSet;

use crate::helpers::{TestApp, bad_fields, new_id, product, receive_request};
use inventory_proto::stock::v1 as pb;
use tonic::Code;

const SUMMARY_UNIT_COST: i64 = 2_500_000;

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

/// The Munich retail warehouse under a chosen id.
fn munich(warehouse_id: &str) -> pb::Warehouse {
    pb::Warehouse {
        warehouse_id: warehouse_id.to_owned(),
        ..warehouse_input("Munich", pb::WarehouseType::Retail, 48.137, 11.575)
    }
}

fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}

fn product_update(product: pb::Product, paths: &[&str]) -> pb::UpdateProductRequest {
    pb::UpdateProductRequest {
        request_id: new_id(),
        product: Some(product),
        update_mask: mask(paths),
    }
}

fn warehouse_update(warehouse: pb::Warehouse, paths: &[&str]) -> pb::UpdateWarehouseRequest {
    pb::UpdateWarehouseRequest {
        request_id: new_id(),
        warehouse: Some(warehouse),
        update_mask: mask(paths),
    }
}

/// (seconds, nanos) of a timestamp that must be present.
fn at(t: Option<&prost_types::Timestamp>) -> (i64, i32) {
    let t = t.expect("timestamp present");
    (t.seconds, t.nanos)
}

/// The stored product, which must exist.
async fn stored_product(app: &TestApp, product_id: &str) -> pb::Product {
    app.get_product(product_id)
        .await
        .expect("get")
        .product
        .expect("product in response")
}

/// The stored warehouse, which must exist.
async fn stored_warehouse(app: &TestApp, warehouse_id: &str) -> pb::Warehouse {
    app.get_warehouse(warehouse_id)
        .await
        .expect("get")
        .warehouse
        .expect("warehouse in response")
}

/// The (product, warehouse) keys of one page of inventory, sorted.
async fn inventory_keys(app: &TestApp, request: pb::ListInventoryRequest) -> Vec<(String, String)> {
    let response = app.list_inventory(request).await.expect("list inventory");
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

fn key(p: &str, w: &str) -> pb::InventoryKey {
    pb::InventoryKey {
        product_id: p.to_owned(),
        warehouse_id: w.to_owned(),
    }
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
    let created = app.create_product(input.clone()).await.expect("create");
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

    let fetched = stored_product(&app, &chosen_id).await;
    assert_eq!(fetched, created, "get returns exactly what create returned");
}

#[tokio::test]
async fn a_product_created_without_an_id_is_assigned_a_new_uuid() {
    let app = TestApp::spawn().await;
    let chosen_id = new_id();
    app.create_product(pb::Product {
        product_id: chosen_id.clone(),
        ..product("RT-1")
    })
    .await
    .expect("create with a chosen id");

    let assigned = app.product("RT-2").await;
    assert!(uuid::Uuid::parse_str(&assigned).is_ok(), "{assigned}");
    assert_ne!(assigned, chosen_id);
    assert_eq!(app.count("SELECT count(*) FROM products").await, 2);
}

#[tokio::test]
async fn a_duplicate_sku_is_already_exists_and_leaves_the_first_product_unchanged() {
    let app = TestApp::spawn().await;
    let first = app
        .create_product(product("DUP-1"))
        .await
        .expect("first create");
    let status = app
        .create_product(pb::Product {
            name: "Impostor".to_owned(),
            unit_cost_micros: 1,
            ..product("DUP-1")
        })
        .await
        .expect_err("duplicate sku");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert!(status.message().contains("DUP-1"), "{}", status.message());

    let stored = stored_product(&app, &first.product_id).await;
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
    let status = app
        .create_product(pb::Product {
            sku: String::new(),
            name: String::new(),
            reorder_point: -1,
            lead_time_days: 99_999,
            ..product("ignored")
        })
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

    let status = app
        .create_product(pb::Product {
            product_id: "not-a-uuid".to_owned(),
            unit_cost_micros: -5,
            ..product("BAD-ID")
        })
        .await
        .expect_err("invalid");
    assert_eq!(
        bad_fields(&status),
        ["product.product_id", "product.unit_cost_micros"]
    );

    let status = app
        .create_product_with(pb::CreateProductRequest {
            request_id: new_id(),
            product: None,
        })
        .await
        .expect_err("missing product");
    assert_eq!(bad_fields(&status), ["product"]);

    let status = app
        .create_product_with(pb::CreateProductRequest {
            request_id: String::new(),
            product: Some(product("NO-REQUEST-ID")),
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
    let original = stored_product(&app, &id).await;

    let updated = app
        .update_product(product_update(
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
        ))
        .await
        .expect("update")
        .product
        .expect("product in response");
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
    assert_eq!(stored_product(&app, &id).await, updated);
}

/// "*" replaces every field.
#[tokio::test]
async fn updating_with_the_wildcard_mask_replaces_every_field() {
    let app = TestApp::spawn().await;
    let id = app.product("UPD-1").await;
    let replacement = pb::Product {
        product_id: id.clone(),
        name: "Fully Replaced".to_owned(),
        category: String::new(),
        unit_of_measure: "kg".to_owned(),
        reorder_point: 1,
        reorder_quantity: 2,
        lead_time_days: 3,
        unit_cost_micros: 4,
        ..product("UPD-1-NEW")
    };
    let replaced = app
        .update_product(product_update(replacement.clone(), &["*"]))
        .await
        .expect("replace all")
        .product
        .expect("product in response");
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
    let status = app
        .update_product(product_update(
            pb::Product {
                product_id: unknown.clone(),
                name: "Ghost".to_owned(),
                ..Default::default()
            },
            &["name"],
        ))
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
    let original = stored_product(&app, &id).await;
    let rename = pb::Product {
        product_id: id.clone(),
        name: "Renamed".to_owned(),
        ..Default::default()
    };

    let status = app
        .update_product(product_update(rename.clone(), &["name", "colour"]))
        .await
        .expect_err("unknown path");
    assert_eq!(bad_fields(&status), ["update_mask.paths"]);

    let status = app
        .update_product(pb::UpdateProductRequest {
            update_mask: None,
            ..product_update(rename.clone(), &[])
        })
        .await
        .expect_err("no mask");
    assert_eq!(bad_fields(&status), ["update_mask"]);

    let status = app
        .update_product(product_update(rename, &[]))
        .await
        .expect_err("empty mask");
    assert_eq!(bad_fields(&status), ["update_mask"]);

    assert_eq!(stored_product(&app, &id).await, original);
}

#[tokio::test]
async fn a_masked_field_is_validated_like_on_create() {
    let app = TestApp::spawn().await;
    let id = app.product("MASK-1").await;
    let original = stored_product(&app, &id).await;
    let status = app
        .update_product(product_update(
            pb::Product {
                product_id: id.clone(),
                lead_time_days: -1,
                ..Default::default()
            },
            &["lead_time_days"],
        ))
        .await
        .expect_err("bad masked field");
    assert_eq!(bad_fields(&status), ["product.lead_time_days"]);
    assert_eq!(stored_product(&app, &id).await, original);
}

#[tokio::test]
async fn updating_a_sku_to_one_that_exists_is_already_exists() {
    let app = TestApp::spawn().await;
    let _a = app.product("SKU-A").await;
    let b = app.product("SKU-B").await;
    let before = stored_product(&app, &b).await;
    let status = app
        .update_product(product_update(
            pb::Product {
                product_id: b.clone(),
                sku: "SKU-A".to_owned(),
                ..Default::default()
            },
            &["sku"],
        ))
        .await
        .expect_err("taken sku");
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    assert_eq!(stored_product(&app, &b).await, before);
}

#[tokio::test]
async fn updating_a_sku_to_a_free_one_renames_the_product() {
    let app = TestApp::spawn().await;
    let _a = app.product("SKU-A").await;
    let b = app.product("SKU-B").await;
    let renamed = app
        .update_product(product_update(
            pb::Product {
                product_id: b.clone(),
                sku: "SKU-C".to_owned(),
                ..Default::default()
            },
            &["sku"],
        ))
        .await
        .expect("free sku")
        .product
        .expect("product in response");
    assert_eq!(renamed.sku, "SKU-C");
}

#[tokio::test]
async fn getting_a_product_by_a_malformed_id_is_invalid() {
    let app = TestApp::spawn().await;
    for bad in ["not-a-uuid", ""] {
        let status = app.get_product(bad).await.expect_err("malformed");
        assert_eq!(bad_fields(&status), ["product_id"], "for {bad:?}");
    }
}

#[tokio::test]
async fn getting_an_unknown_product_is_not_found() {
    let app = TestApp::spawn().await;
    let unknown = new_id();
    let status = app.get_product(&unknown).await.expect_err("unknown");
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
        let page = app
            .list_products(pb::ListProductsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list");
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
}

/// page_size 0 means the default: everything on one page.
#[tokio::test]
async fn listing_products_with_page_size_zero_uses_the_default_page_size() {
    let app = TestApp::spawn().await;
    for i in 0..5 {
        app.product(&format!("PAGE-{i}")).await;
    }
    let all = app
        .list_products(pb::ListProductsRequest::default())
        .await
        .expect("list");
    assert_eq!(all.products.len(), 5);
    assert!(all.next_page_token.is_empty());
}

#[tokio::test]
async fn listing_products_filters_by_category() {
    let app = TestApp::spawn().await;
    let widget_a = app.product("CAT-W1").await;
    let widget_b = app.product("CAT-W2").await;
    let tool = app
        .create_product(pb::Product {
            category: "tools".to_owned(),
            ..product("CAT-T1")
        })
        .await
        .expect("create tool")
        .product_id;
    let in_category = |category: &str| pb::ListProductsRequest {
        category: category.to_owned(),
        ..Default::default()
    };

    let tools = app.list_products(in_category("tools")).await.expect("list");
    let ids: Vec<String> = tools.products.into_iter().map(|p| p.product_id).collect();
    assert_eq!(ids, [tool]);

    let widgets = app
        .list_products(in_category("widgets"))
        .await
        .expect("list");
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

    let none = app
        .list_products(in_category("no-such-category"))
        .await
        .expect("list");
    assert!(none.products.is_empty());
    assert!(none.next_page_token.is_empty());
}

#[tokio::test]
async fn listing_with_a_bad_page_size_is_invalid() {
    let app = TestApp::spawn().await;
    for size in [-1, 1001] {
        let status = app
            .list_products(pb::ListProductsRequest {
                page_size: size,
                ..Default::default()
            })
            .await
            .expect_err("bad page size");
        assert_eq!(bad_fields(&status), ["page_size"], "for {size}");
    }
    let status = app
        .list_inventory(pb::ListInventoryRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .expect_err("bad page size");
    assert_eq!(bad_fields(&status), ["page_size"]);
}

#[tokio::test]
async fn listing_with_a_forged_page_token_is_invalid() {
    let app = TestApp::spawn().await;
    app.product("TOKEN-1").await;
    // Not a token at all, a token of the right shape that does not decode, and a well-formed
    // token (v1. + hex of "nope") whose position is not a product id.
    for token in ["garbage", "v1.zz", "v1.6e6f7065"] {
        let status = app
            .list_products(pb::ListProductsRequest {
                page_size: 2,
                page_token: token.to_owned(),
                ..Default::default()
            })
            .await
            .expect_err("forged token");
        assert_eq!(bad_fields(&status), ["page_token"], "for {token:?}");
    }
    let status = app
        .list_warehouses(pb::ListWarehousesRequest {
            page_size: 0,
            page_token: "garbage".to_owned(),
        })
        .await
        .expect_err("forged token");
    assert_eq!(bad_fields(&status), ["page_token"]);
}

#[tokio::test]
async fn creating_a_product_twice_with_one_request_id_returns_the_first_response() {
    let app = TestApp::spawn().await;
    let request = pb::CreateProductRequest {
        request_id: new_id(),
        product: Some(product("IDEM-1")),
    };
    let first = app
        .create_product_with(request.clone())
        .await
        .expect("first");
    let second = app
        .create_product_with(request.clone())
        .await
        .expect("retry");
    assert_eq!(first, second, "the retry replays the first response");
    assert_eq!(app.count("SELECT count(*) FROM products").await, 1);

    // The same request id with a different body is refused, not replayed.
    let mut changed = request.clone();
    changed.product.as_mut().expect("product").name = "Something Else".to_owned();
    let status = app
        .create_product_with(changed)
        .await
        .expect_err("reused request id");
    assert_eq!(bad_fields(&status), ["request_id"]);
    assert_eq!(app.count("SELECT count(*) FROM products").await, 1);
    let stored = stored_product(&app, &first.product.expect("product").product_id).await;
    assert_eq!(stored.name, "Product IDEM-1");
}

// ---------------------------------------------------------------------------------------------
// Warehouses
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn creating_then_getting_a_warehouse_round_trips_every_field_and_honours_a_chosen_id() {
    let app = TestApp::spawn().await;
    let chosen_id = new_id();
    let input = munich(&chosen_id);
    let created = app.create_warehouse(input.clone()).await.expect("create");
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
    assert_eq!(stored_warehouse(&app, &chosen_id).await, created);
}

#[tokio::test]
async fn listing_warehouses_walks_every_page_and_lists_each_as_created() {
    let app = TestApp::spawn().await;
    let chosen_id = new_id();
    let created = app
        .create_warehouse(munich(&chosen_id))
        .await
        .expect("create");
    let other = app.warehouse("Berlin").await;
    let mut listed = Vec::new();
    let mut page_sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .list_warehouses(pb::ListWarehousesRequest {
                page_size: 1,
                page_token: token.clone(),
            })
            .await
            .expect("list");
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
}

#[tokio::test]
async fn updating_a_warehouse_with_a_field_mask_changes_only_the_masked_fields() {
    let app = TestApp::spawn().await;
    let chosen_id = new_id();
    let created = app
        .create_warehouse(munich(&chosen_id))
        .await
        .expect("create");
    let updated = app
        .update_warehouse(warehouse_update(
            pb::Warehouse {
                warehouse_id: chosen_id.clone(),
                location: Some(pb::GeoPoint {
                    latitude: -33.8688,
                    longitude: 151.2093,
                }),
                // Outside the mask: neither validated nor applied.
                name: String::new(),
                r#type: pb::WarehouseType::Unspecified.into(),
                ..Default::default()
            },
            &["location"],
        ))
        .await
        .expect("update")
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
    assert_eq!(stored_warehouse(&app, &chosen_id).await, updated);
}

#[tokio::test]
async fn creating_a_warehouse_with_bad_fields_names_each_bad_field() {
    let app = TestApp::spawn().await;
    let status = app
        .create_warehouse(warehouse_input(
            "North Pole+",
            pb::WarehouseType::Retail,
            91.0,
            0.0,
        ))
        .await
        .expect_err("latitude out of range");
    assert_eq!(bad_fields(&status), ["warehouse.location.latitude"]);

    let status = app
        .create_warehouse(warehouse_input(
            "Untyped",
            pb::WarehouseType::Unspecified,
            10.0,
            10.0,
        ))
        .await
        .expect_err("type unspecified");
    assert_eq!(bad_fields(&status), ["warehouse.type"]);

    let status = app
        .create_warehouse(pb::Warehouse {
            location: None,
            ..warehouse_input("Nowhere", pb::WarehouseType::Retail, 0.0, 0.0)
        })
        .await
        .expect_err("no location");
    assert_eq!(bad_fields(&status), ["warehouse.location"]);

    let status = app
        .create_warehouse(pb::Warehouse {
            name: String::new(),
            r#type: 42,
            ..warehouse_input("x", pb::WarehouseType::Retail, -91.0, 181.0)
        })
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
        .create_warehouse_with(pb::CreateWarehouseRequest {
            request_id: new_id(),
            warehouse: None,
        })
        .await
        .expect_err("missing warehouse");
    assert_eq!(bad_fields(&status), ["warehouse"]);

    assert_eq!(app.count("SELECT count(*) FROM warehouses").await, 0);
}

#[tokio::test]
async fn getting_a_warehouse_by_a_malformed_id_is_invalid() {
    let app = TestApp::spawn().await;
    let status = app.get_warehouse("nope").await.expect_err("malformed");
    assert_eq!(bad_fields(&status), ["warehouse_id"]);
}

#[tokio::test]
async fn getting_an_unknown_warehouse_is_not_found() {
    let app = TestApp::spawn().await;
    let unknown = new_id();
    let status = app.get_warehouse(&unknown).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

#[tokio::test]
async fn updating_an_unknown_warehouse_is_not_found() {
    let app = TestApp::spawn().await;
    let unknown = new_id();
    let status = app
        .update_warehouse(warehouse_update(
            pb::Warehouse {
                warehouse_id: unknown.clone(),
                name: "Ghost".to_owned(),
                ..Default::default()
            },
            &["name"],
        ))
        .await
        .expect_err("unknown warehouse");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(&unknown), "{}", status.message());
}

#[tokio::test]
async fn updating_a_warehouse_with_an_unknown_mask_path_is_invalid() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Hamburg").await;
    let status = app
        .update_warehouse(warehouse_update(
            pb::Warehouse {
                warehouse_id: w.clone(),
                ..Default::default()
            },
            &["colour"],
        ))
        .await
        .expect_err("unknown path");
    assert_eq!(bad_fields(&status), ["update_mask.paths"]);
}

// ---------------------------------------------------------------------------------------------
// Inventory reads
// ---------------------------------------------------------------------------------------------

/// Three stocked rows, as (low, high, w1, w2): LOW below its reorder point in One and above it
/// in Two, HIGH above it in One.
async fn stock_three_rows(app: &TestApp) -> (String, String, String, String) {
    // Harness products have reorder point 10.
    let (low, high) = (app.product("LOW").await, app.product("HIGH").await);
    let (w1, w2) = (app.warehouse("One").await, app.warehouse("Two").await);
    app.receive(&low, &w1, 5).await;
    app.receive(&high, &w1, 50).await;
    app.receive(&low, &w2, 20).await;
    (low, high, w1, w2)
}

#[tokio::test]
async fn list_inventory_filters_by_warehouse_by_product_and_below_reorder_point() {
    let app = TestApp::spawn().await;
    let (low, high, w1, w2) = stock_three_rows(&app).await;

    let by_warehouse = inventory_keys(
        &app,
        pb::ListInventoryRequest {
            warehouse_id: w1.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_warehouse, sorted_keys(&[(&low, &w1), (&high, &w1)]));

    let by_product = inventory_keys(
        &app,
        pb::ListInventoryRequest {
            product_id: low.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_product, sorted_keys(&[(&low, &w1), (&low, &w2)]));

    let below = inventory_keys(
        &app,
        pb::ListInventoryRequest {
            below_reorder_point: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(below, sorted_keys(&[(&low, &w1)]));

    let below_in_w2 = inventory_keys(
        &app,
        pb::ListInventoryRequest {
            warehouse_id: w2.clone(),
            below_reorder_point: true,
            ..Default::default()
        },
    )
    .await;
    assert!(below_in_w2.is_empty(), "{below_in_w2:?}");
}

/// Below reorder point compares the available quantity: reserving 45 of 50 leaves 5.
#[tokio::test]
async fn below_reorder_point_compares_the_available_quantity() {
    let app = TestApp::spawn().await;
    let (low, high, w1, _w2) = stock_three_rows(&app).await;
    app.reserve("order-1", &high, &w1, 45)
        .await
        .expect("reserve");
    let below = inventory_keys(
        &app,
        pb::ListInventoryRequest {
            below_reorder_point: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(below, sorted_keys(&[(&low, &w1), (&high, &w1)]));
}

#[tokio::test]
async fn list_inventory_pages_through_every_row_one_per_page() {
    let app = TestApp::spawn().await;
    let (low, high, w1, w2) = stock_three_rows(&app).await;
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .list_inventory(pb::ListInventoryRequest {
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list");
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
}

#[tokio::test]
async fn list_inventory_with_a_malformed_filter_is_invalid() {
    let app = TestApp::spawn().await;
    let status = app
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

    let response = app
        .batch_get_availability(vec![
            key(&p2, &w1),
            key(&p1, &w1),
            key(&p1, &w2),
            key(&p1, &w1),
        ])
        .await
        .expect("batch");
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
}

#[tokio::test]
async fn batch_availability_reads_the_same_for_every_pair_or_a_few() {
    let app = TestApp::spawn().await;
    let mut products = Vec::new();
    for sku in ["BA-1", "BA-2", "BA-3"] {
        products.push(app.product(sku).await);
    }
    let mut warehouses = Vec::new();
    for name in ["One", "Two", "Three"] {
        warehouses.push(app.warehouse(name).await);
    }
    // Every pair stocked, each with its own quantity.
    for (i, p) in products.iter().enumerate() {
        for (j, w) in warehouses.iter().enumerate() {
            app.receive(p, w, (10 * i + j + 1) as i64).await;
        }
    }
    let on_hand = |keys: &[pb::InventoryKey], response: &pb::BatchGetAvailabilityResponse| {
        keys.iter()
            .zip(&response.availabilities)
            .map(|(k, a)| {
                assert_eq!(
                    (&k.product_id, &k.warehouse_id),
                    (&a.product_id, &a.warehouse_id)
                );
                a.quantity_on_hand
            })
            .collect::<Vec<_>>()
    };
    // Every pair (read by product), then the diagonal (read pair by pair).
    let every: Vec<pb::InventoryKey> = products
        .iter()
        .flat_map(|p| warehouses.iter().map(move |w| key(p, w)))
        .collect();
    let response = app
        .batch_get_availability(every.clone())
        .await
        .expect("every");
    assert_eq!(
        on_hand(&every, &response),
        [1, 2, 3, 11, 12, 13, 21, 22, 23]
    );
    let diagonal: Vec<pb::InventoryKey> =
        (0..3).map(|i| key(&products[i], &warehouses[i])).collect();
    let response = app
        .batch_get_availability(diagonal.clone())
        .await
        .expect("diagonal");
    assert_eq!(on_hand(&diagonal, &response), [1, 12, 23]);
    // Most pairs, not all: the ones not asked are not answered.
    let most = every[..7].to_vec();
    let response = app
        .batch_get_availability(most.clone())
        .await
        .expect("most");
    assert_eq!(on_hand(&most, &response), [1, 2, 3, 11, 12, 13, 21]);
}

#[tokio::test]
async fn batch_availability_of_an_unknown_product_is_not_found() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("BA-1").await, app.warehouse("One").await);
    app.receive(&p, &w, 8).await;
    let unknown = new_id();
    let status = app
        .batch_get_availability(vec![key(&p, &w), key(&unknown, &w)])
        .await
        .expect_err("unknown product");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains(&unknown), "{}", status.message());
}

#[tokio::test]
async fn batch_availability_without_keys_or_with_a_malformed_key_names_the_bad_field() {
    let app = TestApp::spawn().await;
    let (p, w) = (app.product("BA-1").await, app.warehouse("One").await);
    let status = app
        .batch_get_availability(Vec::new())
        .await
        .expect_err("no keys");
    assert_eq!(bad_fields(&status), ["keys"]);

    let status = app
        .batch_get_availability(vec![key(&p, &w), key(&p, "nope")])
        .await
        .expect_err("malformed key");
    assert_eq!(bad_fields(&status), ["keys[1].warehouse_id"]);
}

#[tokio::test]
async fn inventory_summary_values_on_hand_at_unit_cost_per_warehouse_and_in_total() {
    let app = TestApp::spawn().await;
    let p = app.product("SUM-1").await; // unit cost 2_500_000 micros
    let cheap = app
        .create_product(pb::Product {
            unit_cost_micros: 1_000_000,
            ..product("SUM-2")
        })
        .await
        .expect("create cheap")
        .product_id;
    let (w1, w2) = (app.warehouse("One").await, app.warehouse("Two").await);
    app.receive(&p, &w1, 4).await;
    app.reserve("order-1", &p, &w1, 1).await.expect("reserve");
    app.receive(&p, &w2, 6).await;
    app.receive(&cheap, &w2, 3).await;

    let summary = app.summary().await.expect("summary");
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

/// Five transactions of one product in one warehouse, as (product, warehouse): two receipts
/// of 10 under PO-1, one of 4 under PO-2, then reservations of 3 (order-1) and 2 (order-2).
async fn log_five_transactions(app: &TestApp) -> (String, String) {
    let (p, w) = (app.product("TXN-1").await, app.warehouse("One").await);
    app.receive(&p, &w, 10).await; // reference PO-1
    app.receive(&p, &w, 10).await; // reference PO-1
    app.receive_stock(pb::ReceiveStockRequest {
        reference_id: "PO-2".to_owned(),
        ..receive_request(&p, &w, 4)
    })
    .await
    .expect("receive PO-2");
    app.reserve("order-1", &p, &w, 3).await.expect("reserve 1");
    app.reserve("order-2", &p, &w, 2).await.expect("reserve 2");
    (p, w)
}

#[tokio::test]
async fn list_transactions_filters_by_reference_type_and_product() {
    let app = TestApp::spawn().await;
    log_five_transactions(&app).await;
    let other = app.product("TXN-2").await;

    let by_reference = app
        .list_transactions(pb::ListTransactionsRequest {
            reference_id: "PO-1".to_owned(),
            ..Default::default()
        })
        .await
        .expect("list transactions");
    assert_eq!(by_reference.transactions.len(), 2);
    assert!(by_reference.transactions.iter().all(|t| {
        t.reference_id == "PO-1" && t.txn_type() == pb::TransactionType::Receive && t.quantity == 10
    }));
    assert!(by_reference.next_page_token.is_empty());

    let reserves = app
        .list_transactions(pb::ListTransactionsRequest {
            txn_type: pb::TransactionType::Reserve.into(),
            ..Default::default()
        })
        .await
        .expect("list transactions");
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

    let both = app
        .list_transactions(pb::ListTransactionsRequest {
            txn_type: pb::TransactionType::Receive.into(),
            reference_id: "PO-2".to_owned(),
            ..Default::default()
        })
        .await
        .expect("list transactions");
    assert_eq!(both.transactions.len(), 1);
    assert_eq!(both.transactions[0].quantity, 4);

    let none = app
        .list_transactions(pb::ListTransactionsRequest {
            product_id: other.clone(),
            ..Default::default()
        })
        .await
        .expect("list transactions");
    assert!(none.transactions.is_empty());
}

/// Every transaction, two per page: 5 = 2 + 2 + 1, in strictly increasing sequence.
#[tokio::test]
async fn list_transactions_pages_in_strictly_increasing_sequence_order() {
    let app = TestApp::spawn().await;
    log_five_transactions(&app).await;
    let mut sequences = Vec::new();
    let mut page_sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .list_transactions(pb::ListTransactionsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("list transactions");
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
}

/// Paging composes with a filter: three receives, two per page.
#[tokio::test]
async fn list_transactions_paging_composes_with_a_filter() {
    let app = TestApp::spawn().await;
    log_five_transactions(&app).await;
    let first = app
        .list_transactions(pb::ListTransactionsRequest {
            page_size: 2,
            txn_type: pb::TransactionType::Receive.into(),
            ..Default::default()
        })
        .await
        .expect("list transactions");
    assert_eq!(first.transactions.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = app
        .list_transactions(pb::ListTransactionsRequest {
            page_size: 2,
            page_token: first.next_page_token.clone(),
            txn_type: pb::TransactionType::Receive.into(),
            ..Default::default()
        })
        .await
        .expect("list transactions");
    assert_eq!(second.transactions.len(), 1);
    assert_eq!(second.transactions[0].reference_id, "PO-2");
    assert!(second.next_page_token.is_empty());
}

#[tokio::test]
async fn list_transactions_with_a_forged_page_token_is_invalid() {
    let app = TestApp::spawn().await;
    log_five_transactions(&app).await;
    let status = app
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
        .list_transactions(pb::ListTransactionsRequest {
            page_size: 1,
            reference_id: "PO-1".into(),
            ..Default::default()
        })
        .await
        .expect("first page");
    assert_eq!(first.transactions.len(), 1);
    assert!(!first.next_page_token.is_empty());

    let status = app
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
        .list_transactions(pb::ListTransactionsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            reference_id: "PO-1".into(),
            ..Default::default()
        })
        .await
        .expect("same listing, next page");
    assert!(second.transactions[0].sequence > first.transactions[0].sequence);
}

#[tokio::test]
async fn batch_products_answers_each_id_in_request_order_and_names_bad_ids() {
    let app = TestApp::spawn().await;
    let (p1, p2) = (app.product("BP-1").await, app.product("BP-2").await);
    let mut client = app.client.clone();
    let got = client
        .batch_get_products(pb::BatchGetProductsRequest {
            product_ids: vec![p2.clone(), p1.clone()],
        })
        .await
        .expect("batch")
        .into_inner()
        .products;
    let ids: Vec<&str> = got.iter().map(|p| p.product_id.as_str()).collect();
    assert_eq!(ids, [p2.as_str(), p1.as_str()]);
    assert_eq!(got[1].sku, "BP-1");

    let unknown = new_id();
    let status = client
        .batch_get_products(pb::BatchGetProductsRequest {
            product_ids: vec![p1.clone(), unknown.clone()],
        })
        .await
        .expect_err("unknown product");
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains(&unknown), "{}", status.message());

    let status = client
        .batch_get_products(pb::BatchGetProductsRequest {
            product_ids: vec![p1.clone(), "nope".into(), p1.clone()],
        })
        .await
        .expect_err("bad ids");
    assert_eq!(bad_fields(&status), ["product_ids[1]", "product_ids[2]"]);
    let status = client
        .batch_get_products(pb::BatchGetProductsRequest::default())
        .await
        .expect_err("no ids");
    assert_eq!(bad_fields(&status), ["product_ids"]);
}
