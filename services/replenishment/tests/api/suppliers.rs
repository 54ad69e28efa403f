//! Suppliers and their offers.

use inventory_proto::replenishment::v1 as pb;
use tonic::Code;

use crate::helpers::{TestApp, bad_fields, new_id};

#[tokio::test]
async fn a_supplier_and_its_offers_are_kept_and_listed() {
    let app = TestApp::spawn().await;
    let product = app.product("SKU-1").await;
    let other = app.product("SKU-2").await;
    let acme = app.supplier("Acme", "ACME").await;
    let globex = app.supplier("Globex", "GLOBEX01").await;
    let offer = app
        .offer(&acme, &product, 2_500_000, 12)
        .await
        .expect("offer");
    assert_eq!(offer.pack_multiple, 12);
    app.offer(&globex, &product, 2_400_000, 1)
        .await
        .expect("offer");
    app.offer(&acme, &other, 9_000_000, 1).await.expect("offer");
    // Setting an offer again replaces it.
    let replaced = app
        .offer(&acme, &product, 2_300_000, 6)
        .await
        .expect("offer");
    assert_eq!(
        (replaced.unit_cost_micros, replaced.pack_multiple),
        (2_300_000, 6)
    );

    let supplier = app
        .client
        .clone()
        .get_supplier(pb::GetSupplierRequest {
            supplier_id: acme.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .supplier
        .expect("supplier");
    assert_eq!(
        (
            supplier.name.as_str(),
            supplier.edi_id.as_str(),
            supplier.channel()
        ),
        ("Acme", "ACME", pb::SupplierChannel::Edi)
    );

    let for_product = app
        .client
        .clone()
        .list_supplier_offers(pb::ListSupplierOffersRequest {
            product_id: product.clone(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .offers;
    assert_eq!(for_product.len(), 2);
    assert!(for_product.iter().all(|o| o.product_id == product));

    // Paging through every offer, one at a time, sees each once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = app
            .client
            .clone()
            .list_supplier_offers(pb::ListSupplierOffersRequest {
                page_size: 1,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .expect("page")
            .into_inner();
        seen.extend(
            page.offers
                .into_iter()
                .map(|o| (o.product_id, o.supplier_id)),
        );
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen.len(), 3);

    let suppliers = app
        .client
        .clone()
        .list_suppliers(pb::ListSuppliersRequest::default())
        .await
        .expect("list suppliers")
        .into_inner()
        .suppliers;
    assert_eq!(suppliers.len(), 2);
}

#[tokio::test]
async fn a_bad_supplier_is_refused_naming_every_field() {
    let app = TestApp::spawn().await;
    let status = app
        .client
        .clone()
        .create_supplier(pb::CreateSupplierRequest {
            request_id: new_id(),
            name: String::new(),
            channel: pb::SupplierChannel::Edi.into(),
            edi_qualifier: "Z".to_owned(),
            edi_id: "SIXTEEN-CHARS-ID".to_owned(),
            default_lead_time_days: -1,
            api_endpoint: String::new(),
        })
        .await
        .expect_err("bad supplier");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        bad_fields(&status),
        ["name", "edi_qualifier", "edi_id", "default_lead_time_days"]
    );
    let separator = app
        .client
        .clone()
        .create_supplier(pb::CreateSupplierRequest {
            request_id: new_id(),
            name: "Acme".to_owned(),
            channel: pb::SupplierChannel::Edi.into(),
            edi_qualifier: "ZZ".to_owned(),
            edi_id: "AC*ME".to_owned(),
            default_lead_time_days: 3,
            api_endpoint: String::new(),
        })
        .await
        .expect_err("a separator in an EDI id");
    assert_eq!(bad_fields(&separator), ["edi_id"]);
    let no_channel = app
        .client
        .clone()
        .create_supplier(pb::CreateSupplierRequest {
            request_id: new_id(),
            name: "Acme".to_owned(),
            ..Default::default()
        })
        .await
        .expect_err("no channel");
    assert_eq!(bad_fields(&no_channel), ["channel"]);
}

#[tokio::test]
async fn an_offer_needs_a_known_supplier_and_product_and_sane_numbers() {
    let app = TestApp::spawn().await;
    let product = app.product("SKU-1").await;
    let acme = app.supplier("Acme", "ACME").await;

    let unknown_product = app
        .offer(&acme, &uuid::Uuid::now_v7().to_string(), 1, 1)
        .await
        .expect_err("unknown product");
    assert_eq!(unknown_product.code(), Code::NotFound);
    let unknown_supplier = app
        .offer(&uuid::Uuid::now_v7().to_string(), &product, 1, 1)
        .await
        .expect_err("unknown supplier");
    assert_eq!(unknown_supplier.code(), Code::NotFound);

    let status = app
        .client
        .clone()
        .set_supplier_offer(pb::SetSupplierOfferRequest {
            request_id: new_id(),
            offer: Some(pb::SupplierOffer {
                supplier_id: acme.clone(),
                product_id: product.clone(),
                unit_cost_micros: -1,
                minimum_order_quantity: 0,
                pack_multiple: 0,
                lead_time_days: 400,
                ..Default::default()
            }),
        })
        .await
        .expect_err("bad numbers");
    assert_eq!(
        bad_fields(&status),
        [
            "offer.unit_cost_micros",
            "offer.minimum_order_quantity",
            "offer.pack_multiple",
            "offer.lead_time_days"
        ]
    );
    let offers = app
        .client
        .clone()
        .list_supplier_offers(pb::ListSupplierOffersRequest::default())
        .await
        .expect("list")
        .into_inner()
        .offers;
    assert!(offers.is_empty(), "nothing was written: {offers:?}");
}

#[tokio::test]
async fn an_api_supplier_needs_an_http_endpoint() {
    let app = TestApp::spawn().await;
    for endpoint in [
        "",
        "ftp://acme.example/orders",
        "https://user:pw@acme.example/",
    ] {
        let status = app
            .client
            .clone()
            .create_supplier(pb::CreateSupplierRequest {
                request_id: new_id(),
                name: "Acme".to_owned(),
                channel: pb::SupplierChannel::Api.into(),
                api_endpoint: endpoint.to_owned(),
                default_lead_time_days: 3,
                ..Default::default()
            })
            .await
            .expect_err("bad endpoint");
        assert_eq!(bad_fields(&status), ["api_endpoint"], "{endpoint}");
    }
}
