//! The stock-service binary as operators run it: configured from the environment, healthy
//! once migrated, JSON logs on request, and a clean exit on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{TestDatabase, new_id};
use inventory_proto::stock::v1 as pb;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const BINARY: &str = env!("CARGO_BIN_EXE_stock-service");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test]
async fn the_binary_serves_after_migrating_logs_json_and_exits_cleanly_on_sigterm_with_a_feed_open()
{
    let database = TestDatabase::create().await;
    let port = free_port();
    let mut child = Command::new(BINARY)
        .env("DATABASE_URL", &database.url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stock-service");

    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let serving = loop {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .expect("endpoint")
            .connect()
            .await
            && let Ok(response) = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: pb::SERVICE_NAME.to_owned(),
                })
                .await
            && response.get_ref().status() == ServingStatus::Serving
        {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(serving, "stock-service reports SERVING once migrated");

    let mut client = pb::stock_service_client::StockServiceClient::connect(endpoint)
        .await
        .expect("connect");
    client
        .create_warehouse(pb::CreateWarehouseRequest {
            request_id: new_id(),
            warehouse: Some(pb::Warehouse {
                name: "Lyon".into(),
                r#type: pb::WarehouseType::Distribution.into(),
                location: Some(pb::GeoPoint {
                    latitude: 45.76,
                    longitude: 4.83,
                }),
                ..Default::default()
            }),
        })
        .await
        .expect("the binary answers");

    // A consumer holds the transaction feed open: shutdown must not wait for it forever.
    let mut feed = client
        .stream_transactions(pb::StreamTransactionsRequest { after_sequence: 0 })
        .await
        .expect("open feed")
        .into_inner();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "stock-service did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "clean exit on SIGTERM, got {exit:?}");
    let ended = tokio::time::timeout(Duration::from_secs(5), feed.message())
        .await
        .expect("the feed ends");
    match ended {
        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
        Ok(message) => assert!(message.is_none(), "no transactions were written"),
    }
    let output = child.wait_with_output().expect("output");
    let logs = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "logs written");
    assert!(
        lines.iter().all(|l| l.starts_with('{') && l.ends_with('}')),
        "every log line is a JSON object: {logs}"
    );
    assert!(logs.contains("shutting down"), "shutdown is logged: {logs}");
}

#[test]
fn a_bad_setting_stops_the_binary_with_a_message_naming_it() {
    let output = Command::new(BINARY)
        .env("LOG_FORMAT", "xml")
        .output()
        .expect("run stock-service");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("LOG_FORMAT"));

    let output = Command::new(BINARY)
        .env("REQUEST_TIMEOUT_MS", "soon")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .output()
        .expect("run stock-service");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("REQUEST_TIMEOUT_MS"));
}
