//! What the runtime adds around the stock service: health, reflection and load shedding.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestApp;
use inventory_proto::stock::v1 as pb;
use pb::stock_service_client::StockServiceClient;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SERVICE: &str = "inventory.stock.v1.StockService";

async fn health_status(app: &TestApp, service: &str) -> Result<ServingStatus, tonic::Status> {
    let mut client = HealthClient::new(app.channel().await);
    let response = client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(response.into_inner().status())
}

/// The service starts NOT_SERVING and turns SERVING once its first readiness probe reaches the
/// database, which happens right after start; poll briefly instead of racing it.
async fn wait_until_serving(app: &TestApp) -> ServingStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = health_status(app, SERVICE).await.expect("health check");
        if status == ServingStatus::Serving || tokio::time::Instant::now() >= deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn health_reports_serving_for_the_stock_service() {
    assert_eq!(SERVICE, pb::SERVICE_NAME);
    let app = TestApp::spawn().await;
    assert_eq!(wait_until_serving(&app).await, ServingStatus::Serving);
    // The overall server health ("") is SERVING too.
    assert_eq!(
        health_status(&app, "").await.expect("overall health"),
        ServingStatus::Serving
    );
    // A service the server does not run is NOT_FOUND, not a false SERVING.
    let status = health_status(&app, "inventory.stock.v1.NoSuchService")
        .await
        .expect_err("unknown service");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

/// One test per reflection version: both must list the stock service and health. grpcurl
/// before 1.9 speaks only v1alpha.
macro_rules! reflection_lists_the_services {
    ($test:ident, $version:ident) => {
        #[tokio::test]
        async fn $test() {
            use tonic_reflection::pb::$version::ServerReflectionRequest;
            use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;

            let app = TestApp::spawn().await;
            let mut client = ServerReflectionClient::new(app.channel().await);
            let request = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut responses = client
                .server_reflection_info(tokio_stream::iter(vec![request]))
                .await
                .expect("reflection call")
                .into_inner();
            let response = responses
                .message()
                .await
                .expect("reflection response")
                .expect("one response");
            let names: Vec<String> = match response.message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    list.service.into_iter().map(|s| s.name).collect()
                }
                other => panic!("expected a service list, got {other:?}"),
            };
            assert!(names.iter().any(|n| n == SERVICE), "{names:?}");
            assert!(
                names.iter().any(|n| n == "grpc.health.v1.Health"),
                "{names:?}"
            );
        }
    };
}

reflection_lists_the_services!(reflection_v1_lists_the_stock_service, v1);
reflection_lists_the_services!(reflection_v1alpha_lists_the_stock_service, v1alpha);

/// With one permit, a burst of simultaneous unary calls must collide: the first to arrive holds
/// the permit for a whole ledger check (several queries in one database transaction), and the
/// others arrive meanwhile and are refused at once. Every call is on its own connection and all
/// start together behind a barrier, so they cannot be serialised by a shared HTTP/2 connection.
/// Timing is still involved, so the burst is repeated (up to `ROUNDS` times) until both outcomes
/// have been seen; a single round of 64 against a limit of 1 practically always shows both.
/// Unary calls, not streams: a stream releases its permit once the response head is returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_the_concurrency_limit_calls_are_shed_with_resource_exhausted_but_health_is_not() {
    const CALLS: usize = 64;
    const HEALTH_CALLS: usize = 8;
    const ROUNDS: usize = 5;
    let app = TestApp::spawn_with(&[("MAX_CONCURRENT_REQUESTS", "1")]).await;
    assert_eq!(wait_until_serving(&app).await, ServingStatus::Serving);

    let mut clients = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        clients.push(StockServiceClient::new(app.channel().await));
    }
    let mut health_clients = Vec::with_capacity(HEALTH_CALLS);
    for _ in 0..HEALTH_CALLS {
        health_clients.push(HealthClient::new(app.channel().await));
    }

    let (mut served, mut shed) = (0_usize, 0_usize);
    for _ in 0..ROUNDS {
        let barrier = Arc::new(tokio::sync::Barrier::new(CALLS + HEALTH_CALLS));
        let ledger_calls: Vec<_> = clients
            .iter()
            .map(|client| {
                let mut client = client.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    client.check_ledger(pb::CheckLedgerRequest {}).await
                })
            })
            .collect();
        let health_calls: Vec<_> = health_clients
            .iter()
            .map(|client| {
                let mut client = client.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    barrier.wait().await;
                    client
                        .check(HealthCheckRequest {
                            service: SERVICE.to_owned(),
                        })
                        .await
                })
            })
            .collect();
        for call in ledger_calls {
            match call.await.expect("join") {
                Ok(report) => {
                    assert!(report.into_inner().drifts.is_empty());
                    served += 1;
                }
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                    shed += 1;
                }
            }
        }
        // Health checks are exempt from the limit: an overloaded replica is still alive.
        for call in health_calls {
            let status = call
                .await
                .expect("join")
                .expect("health checks are never shed")
                .into_inner()
                .status();
            assert_eq!(status, ServingStatus::Serving);
        }
        if served > 0 && shed > 0 {
            break;
        }
    }
    assert!(
        served > 0,
        "no call got through (served {served}, shed {shed})"
    );
    assert!(
        shed > 0,
        "no call was shed with a limit of 1 (served {served}, shed {shed})"
    );

    // The permit is released once the burst is over: a lone call goes through.
    let report = app
        .client
        .clone()
        .check_ledger(pb::CheckLedgerRequest {})
        .await
        .expect("a single call after the burst is served")
        .into_inner();
    assert!(report.drifts.is_empty());
    assert_eq!(
        health_status(&app, SERVICE)
            .await
            .expect("health after burst"),
        ServingStatus::Serving
    );
}
