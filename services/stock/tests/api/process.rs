//! The stock-service binary as operators run it: configured from the environment, healthy
//! once migrated, JSON logs on request, a clean exit on SIGTERM, and the database password
//! in no log line or error.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{TestDatabase, new_id};
use inventory_proto::stock::v1 as pb;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const BINARY: &str = env!("CARGO_BIN_EXE_stock-service");

/// What DATABASE_URL carries as its password in these tests (local connections are trusted,
/// so PostgreSQL accepts and ignores it); it must never be printed.
const SECRET: &str = "hunter2-never-logged";

/// `url` with `SECRET` as its password.
fn with_secret(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (user_info, host) = rest.split_once('@').expect("a user in the test URL");
    let user = user_info.split(':').next().unwrap_or(user_info);
    format!("{scheme}://{user}:{SECRET}@{host}")
}

/// Everything `pipe` yields until it closes, read on a thread of its own.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

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
        .env("DATABASE_URL", with_secret(&database.url))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start stock-service");
    // Read as it is written: a debug log fills a pipe's buffer long before shutdown (on Citus
    // for certain), and a child blocked writing its log never exits.
    let stdout = drain(child.stdout.take().expect("stdout piped"));
    let stderr = drain(child.stderr.take().expect("stderr piped"));

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
        .stream_transactions(pb::StreamTransactionsRequest::default())
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
    let stdout = stdout.join().expect("stdout read");
    let logs = String::from_utf8_lossy(&stdout);
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "logs written");
    assert!(
        lines.iter().all(|l| l.starts_with('{') && l.ends_with('}')),
        "every log line is a JSON object: {logs}"
    );
    assert!(logs.contains("shutting down"), "shutdown is logged: {logs}");
    let stderr = stderr.join().expect("stderr read");
    let errors = String::from_utf8_lossy(&stderr);
    assert!(
        !logs.contains(SECRET) && !errors.contains(SECRET),
        "the database password reached the output"
    );
}

#[test]
fn a_start_that_fails_on_the_database_names_the_problem_but_not_the_password() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let database = runtime.block_on(TestDatabase::create());
    let missing = with_secret(&database.url).replace(&database.name, "no_such_database_here");
    let output = Command::new(BINARY)
        .env("DATABASE_URL", &missing)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "off")
        .env("RUST_LOG", "debug")
        .output()
        .expect("run stock-service");
    assert!(!output.status.success());
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        printed.contains("no_such_database_here"),
        "the failure is explained: {printed}"
    );
    assert!(
        !printed.contains(SECRET),
        "the password was printed: {printed}"
    );
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

/// The token key of the test below; like the database password, never printed.
const TOKEN_SECRET: &str = "token-key-never-logged-0123456789abcdef";

#[tokio::test]
async fn refused_callers_are_logged_by_name_and_reason_and_the_token_key_never_is() {
    use inventory_runtime::Role;
    use inventory_runtime::auth::sign_token;

    let database = TestDatabase::create().await;
    let stock = inventory_testkit::ServiceProcess::start(
        BINARY,
        pb::SERVICE_NAME,
        &database,
        &[("AUTH_TOKEN_SECRET", TOKEN_SECRET), ("RUST_LOG", "debug")],
    )
    .await;
    let mut client = pb::stock_service_client::StockServiceClient::new(stock.channel().await);
    let request = || pb::CreateWarehouseRequest {
        request_id: new_id(),
        warehouse: Some(pb::Warehouse {
            name: "Lyon".into(),
            r#type: pb::WarehouseType::Distribution.into(),
            ..Default::default()
        }),
    };
    let anonymous = client
        .create_warehouse(request())
        .await
        .expect_err("no token");
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
    let mut seen = stock.said("refused: UNAUTHENTICATED").await;

    let expires = chrono::Utc::now().timestamp() + 60;
    let token = sign_token(
        TOKEN_SECRET.as_bytes(),
        "checkout",
        &[Role::OrderManagement],
        expires,
    );
    let mut as_checkout = tonic::Request::new(request());
    as_checkout.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let denied = client
        .create_warehouse(as_checkout)
        .await
        .expect_err("not an operator");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    seen.extend(stock.said("refused: PERMISSION_DENIED").await);
    let refusal = seen.last().expect("a line");
    assert!(
        refusal.contains("checkout") && refusal.contains("CreateWarehouse"),
        "the log names the caller and the RPC: {refusal}"
    );
    assert!(
        !seen
            .iter()
            .any(|line| line.contains(TOKEN_SECRET) || line.contains(&token)),
        "the token key or a token was printed"
    );
}
