//! Suppliers reached through their API: the PO posted as JSON with an idempotency key, retried
//! with the same key until the supplier accepts it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use inventory_proto::replenishment::v1 as pb;
use tokio::net::TcpListener;

use crate::helpers::{Setup, TestApp, new_id};

/// (idempotency key, JSON body) of every request the supplier received.
type Received = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// A supplier's order API on a free port: answers 503 to the first `refusals` requests, then
/// 201.
async fn supplier_api(refusals: usize) -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let received: Received = Arc::default();
    let log = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let key = request
                            .headers()
                            .get("idempotency-key")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let body = request.into_body().collect().await?.to_bytes();
                        let json: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let mut seen = log.lock().expect("log");
                        seen.push((key, json));
                        let status = if seen.len() <= refusals {
                            StatusCode::SERVICE_UNAVAILABLE
                        } else {
                            StatusCode::CREATED
                        };
                        Ok::<_, hyper::Error>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from_static(b"{}")))
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, received)
}

async fn api_setup(app: &TestApp, addr: SocketAddr) -> Setup {
    let product_id = app.product(&format!("SKU-{}", new_id())).await;
    let warehouse_id = app.warehouse("Berlin").await;
    let supplier_id = app
        .client
        .clone()
        .create_supplier(pb::CreateSupplierRequest {
            request_id: new_id(),
            name: "Globex".to_owned(),
            channel: pb::SupplierChannel::Api.into(),
            api_endpoint: format!("http://{addr}/v1/orders"),
            default_lead_time_days: 3,
            ..Default::default()
        })
        .await
        .expect("create supplier")
        .into_inner()
        .supplier
        .expect("supplier")
        .supplier_id;
    app.offer(&supplier_id, &product_id, 2_500_000, 1)
        .await
        .expect("offer");
    Setup {
        product_id,
        warehouse_id,
        supplier_id,
    }
}

#[tokio::test]
async fn an_api_supplier_receives_the_po_as_json_with_an_idempotency_key() {
    let (addr, received) = supplier_api(0).await;
    let app = TestApp::spawn().await;
    let setup = api_setup(&app, addr).await;
    let po = app.create_po(&setup, 40).await.expect("create");
    let sent = app.sent(&po.po_id).await;
    assert!(
        app.documents().is_empty(),
        "no EDI document for an API supplier"
    );

    let requests = received.lock().expect("log").clone();
    assert_eq!(requests.len(), 1);
    let (key, body) = &requests[0];
    assert_eq!(key, &format!("{}:{}", po.po_id, sent.control_number));
    assert_eq!(body["po_number"], po.po_number);
    assert_eq!(body["ship_to"]["name"], "Berlin");
    assert_eq!(body["lines"][0]["product_id"], setup.product_id);
    assert_eq!(body["lines"][0]["quantity"], 40);
    assert_eq!(body["lines"][0]["unit_price_micros"], 2_500_000);
}

#[tokio::test]
async fn a_refusing_api_is_retried_with_the_same_key_until_it_accepts() {
    let (addr, received) = supplier_api(1).await;
    let app = TestApp::spawn().await;
    let setup = api_setup(&app, addr).await;
    let po = app.create_po(&setup, 10).await.expect("create");
    app.sent(&po.po_id).await;
    let requests = received.lock().expect("log").clone();
    assert_eq!(requests.len(), 2, "one refused, one accepted");
    assert_eq!(requests[0].0, requests[1].0, "the same idempotency key");
    assert_eq!(requests[0].1, requests[1].1, "the same order");
}
