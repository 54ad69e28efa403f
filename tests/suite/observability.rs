//! What an operator sees of a service: a failed RPC's span (status code, error status and
//! message, RPC attributes, its database work as a child) as an OTLP receiver gets it, and the counters, latency and pool
//! gauges `/metrics` serves after a few RPCs.

use inventory_runtime::MetricsServer;
use inventory_stock_client::pb;
use inventory_testkit::{StockServer, new_id};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::traces::Capture;

#[tokio::test]
async fn a_failed_rpc_is_an_error_span_with_its_grpc_status() {
    let stock = StockServer::spawn(&[]).await;
    let capture = Capture::start().await;
    let missing = new_id();
    let status = stock
        .client
        .clone()
        .get_product(pb::GetProductRequest {
            product_id: missing.clone(),
        })
        .await
        .expect_err("no such product");
    assert_eq!(status.code(), tonic::Code::NotFound);
    let spans = capture.finish().await;

    let name = "inventory.stock.v1.StockService/GetProduct";
    let span = spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no {name} span in {spans:#?}"));
    let attribute = |key: &str| span.attributes.get(key).map(String::as_str);
    assert_eq!(attribute("rpc.system"), Some("grpc"));
    assert_eq!(
        attribute("rpc.service"),
        Some("inventory.stock.v1.StockService")
    );
    assert_eq!(attribute("rpc.method"), Some("GetProduct"));
    assert_eq!(attribute("rpc.grpc.status_code"), Some("5"), "{span:?}");
    let (code, message) = &span.status;
    assert_eq!(*code, 2, "error status: {span:?}");
    assert!(
        message.contains(&missing),
        "the answer's message: {message:?}"
    );
    assert!(
        span.parent_span_id.is_empty(),
        "a call without trace context starts one"
    );
}

/// `GET /metrics` over plain HTTP/1.1, as Prometheus scrapes it.
async fn scrape(address: std::net::SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

/// The value of the sample line that starts with `series` (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_by_code_and_time_them() {
    let stock = StockServer::spawn(&[]).await;
    let server = MetricsServer::bind("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let address = server.local_addr().expect("address");
    let serving = tokio::spawn(server.serve(std::future::pending()));

    let rpc = r#"rpc_service="inventory.stock.v1.StockService",rpc_method="GetProduct""#;
    let not_found = format!("rpc_server_requests_total{{{rpc},code=\"NOT_FOUND\"}}");
    let ok = format!("rpc_server_requests_total{{{rpc},code=\"OK\"}}");
    let timed = format!("rpc_server_duration_seconds_count{{{rpc}}}");
    let before = scrape(address).await;

    let product = stock.create_product("METRICS-1").await;
    let mut client = stock.client.clone();
    for product_id in [new_id(), new_id(), product] {
        let _ = client
            .get_product(pb::GetProductRequest { product_id })
            .await;
    }
    // A method stock does not serve (allocation's, sent to stock) is UNIMPLEMENTED and gets
    // no labels of its own: junk paths cannot grow the metrics.
    let unknown =
        inventory_proto::allocation::v1::allocation_service_client::AllocationServiceClient::new(
            stock.server.channel().await,
        )
        .get_allocation(inventory_proto::allocation::v1::GetAllocationRequest {
            order_id: "junk".into(),
        })
        .await
        .expect_err("stock serves no allocations");
    assert_eq!(unknown.code(), tonic::Code::Unimplemented);
    let after = scrape(address).await;
    serving.abort();
    let other = r#"rpc_server_requests_total{rpc_service="_OTHER",rpc_method="_OTHER",code="UNIMPLEMENTED"}"#;
    assert!(
        sample(&after, other) - sample(&before, other) >= 1.0,
        "{after}"
    );
    assert!(
        !after.contains(r#"rpc_method="GetAllocation",code="UNIMPLEMENTED""#),
        "{after}"
    );

    // Other tests in this binary may call GetProduct at the same time: at least ours.
    assert!(
        sample(&after, &not_found) - sample(&before, &not_found) >= 2.0,
        "{after}"
    );
    assert!(sample(&after, &ok) - sample(&before, &ok) >= 1.0, "{after}");
    assert!(
        sample(&after, &timed) - sample(&before, &timed) >= 3.0,
        "{after}"
    );
    assert!(
        sample(&after, r#"db_pool_connections{pool="stock",state="max"}"#) >= 1.0,
        "the stock pool's size: {after}"
    );
    assert!(
        after.contains("# TYPE rpc_server_in_flight gauge"),
        "in-flight gauge: {after}"
    );
}
