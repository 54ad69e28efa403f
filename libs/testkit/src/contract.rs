//! The platform contract every service keeps: health for its named service, server
//! reflection in both versions (or none when turned off), a limit on request size, and
//! shedding above its concurrency limit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::TestServer;

pub async fn health(server: &TestServer, service: &str) -> Result<ServingStatus, tonic::Status> {
    health_at(&server.url(), service).await
}

/// What the health service at `url` says of `service`; UNAVAILABLE when nothing answers.
pub async fn health_at(url: &str, service: &str) -> Result<ServingStatus, tonic::Status> {
    let channel = Channel::from_shared(url.to_owned())
        .expect("uri")
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    health_on(channel, service).await
}

/// What the health service behind `channel` says of `service`.
pub async fn health_on(channel: Channel, service: &str) -> Result<ServingStatus, tonic::Status> {
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await?;
    Ok(response.into_inner().status())
}

/// Polls the health service at `url` until it reports `wanted` for `service` or `patience`
/// runs out; the last answer (an error while nothing answered).
pub async fn wait_for_status(
    url: &str,
    service: &str,
    wanted: ServingStatus,
    patience: Duration,
) -> Result<ServingStatus, tonic::Status> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let answer = health_at(url, service).await;
        if answer.as_ref().ok() == Some(&wanted) || tokio::time::Instant::now() >= deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (up to 60 s: readiness polls every 5 s) until `server` reports `wanted` for
/// `service`, as a fault and its end must make it; fails the test otherwise.
pub async fn expect_status(server: &TestServer, service: &str, wanted: ServingStatus) {
    let answer = wait_for_status(&server.url(), service, wanted, Duration::from_secs(60)).await;
    assert_eq!(
        answer.ok(),
        Some(wanted),
        "health never reported {wanted:?}"
    );
}

/// The named service turns SERVING once its first readiness probe reaches the database,
/// right after start; polls briefly instead of racing it.
pub async fn wait_until_serving(server: &TestServer, service: &str) -> ServingStatus {
    wait_for_status(
        &server.url(),
        service,
        ServingStatus::Serving,
        Duration::from_secs(10),
    )
    .await
    .expect("health check")
}

/// Health answers SERVING for `service` and for the server as a whole, and NOT_FOUND for a
/// service the server does not run.
pub async fn assert_health(server: &TestServer, service: &str) {
    assert_eq!(
        wait_until_serving(server, service).await,
        ServingStatus::Serving
    );
    assert_eq!(
        health(server, "").await.expect("overall health"),
        ServingStatus::Serving
    );
    let status = health(server, "inventory.NoSuchService")
        .await
        .expect_err("unknown service");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
}

/// A reflection `ListServices` call in `$version`: the stream of answers, or the refusal.
macro_rules! ask_reflection {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::ServerReflectionRequest;
        use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;

        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter(vec![request]))
            .await
    }};
}

macro_rules! list_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;

        let mut responses = ask_reflection!($version, $channel)
            .expect("reflection call")
            .into_inner();
        let response = responses
            .message()
            .await
            .expect("reflection response")
            .expect("one response");
        match response.message_response {
            Some(MessageResponse::ListServicesResponse(list)) => list
                .service
                .into_iter()
                .map(|s| s.name)
                .collect::<Vec<String>>(),
            other => panic!("expected a service list, got {other:?}"),
        }
    }};
}

/// The services reflection v1 lists over `channel`, or its refusal (as a caller without
/// an identity gets when authentication is on).
pub async fn reflected_services(channel: Channel) -> Result<Vec<String>, tonic::Status> {
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut responses = ask_reflection!(v1, channel)?.into_inner();
    match responses.message().await?.and_then(|r| r.message_response) {
        Some(MessageResponse::ListServicesResponse(list)) => {
            Ok(list.service.into_iter().map(|s| s.name).collect())
        }
        other => panic!("expected a service list, got {other:?}"),
    }
}

/// Reflection v1 and v1alpha (grpcurl before 1.9 speaks only v1alpha) both list `service`
/// and health.
pub async fn assert_reflection(server: &TestServer, service: &str) {
    let v1 = list_services!(v1, server.channel().await);
    let v1alpha = list_services!(v1alpha, server.channel().await);
    for (version, names) in [("v1", v1), ("v1alpha", v1alpha)] {
        assert!(names.iter().any(|n| n == service), "{version}: {names:?}");
        assert!(
            names.iter().any(|n| n == "grpc.health.v1.Health"),
            "{version}: {names:?}"
        );
    }
}

/// With `REFLECTION=false` neither reflection version is served (UNIMPLEMENTED), while
/// health still answers for `service`.
pub async fn assert_reflection_off(server: &TestServer, service: &str) {
    assert_eq!(
        wait_until_serving(server, service).await,
        ServingStatus::Serving
    );
    let v1 = ask_reflection!(v1, server.channel().await).map(|_| ());
    let v1alpha = ask_reflection!(v1alpha, server.channel().await).map(|_| ());
    for (version, answer) in [("v1", v1), ("v1alpha", v1alpha)] {
        let status = answer.expect_err("reflection is off");
        assert_eq!(status.code(), Code::Unimplemented, "{version}: {status:?}");
    }
}

/// With `MAX_MESSAGE_BYTES=limit`, a request bigger than `limit` is refused with OUT_OF_RANGE
/// naming the limit, before the service sees it. `call` sends a request carrying the text
/// it is given (`limit` bytes), so the request is over the limit whatever else it holds.
pub async fn assert_message_limit<F, Fut>(server: &TestServer, limit: usize, call: F)
where
    F: FnOnce(Channel, String) -> Fut,
    Fut: Future<Output = Result<(), tonic::Status>>,
{
    let status = call(server.channel().await, "x".repeat(limit))
        .await
        .expect_err("an oversized request is refused");
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains(&format!("{limit} bytes")),
        "the refusal names the limit: {status:?}"
    );
}

/// With `MAX_CONCURRENT_REQUESTS=1`, a burst of simultaneous unary `call`s, each on its own
/// connection behind a barrier, must both get through and be shed with RESOURCE_EXHAUSTED,
/// while health checks are never shed. `call` should take a few milliseconds (several
/// queries) so that calls overlap; timing is involved, so the burst repeats until both
/// outcomes were seen. Ends with a lone call going through.
pub async fn assert_sheds_load<F, Fut>(server: &TestServer, service: &str, call: F)
where
    F: Fn(Channel) -> Fut,
    Fut: Future<Output = Result<(), tonic::Status>> + Send + 'static,
{
    const CALLS: usize = 64;
    const HEALTH_CALLS: usize = 8;
    const ROUNDS: usize = 5;
    assert_eq!(
        wait_until_serving(server, service).await,
        ServingStatus::Serving
    );
    let mut channels = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        channels.push(server.channel().await);
    }
    let mut health_clients = Vec::with_capacity(HEALTH_CALLS);
    for _ in 0..HEALTH_CALLS {
        health_clients.push(HealthClient::new(server.channel().await));
    }
    let (mut served, mut shed) = (0_usize, 0_usize);
    for _ in 0..ROUNDS {
        let barrier = Arc::new(tokio::sync::Barrier::new(CALLS + HEALTH_CALLS));
        let calls: Vec<_> = channels
            .iter()
            .map(|channel| {
                let barrier = barrier.clone();
                let call = call(channel.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    call.await
                })
            })
            .collect();
        let health_calls: Vec<_> = health_clients
            .iter()
            .map(|client| {
                let mut client = client.clone();
                let barrier = barrier.clone();
                let service = service.to_owned();
                tokio::spawn(async move {
                    barrier.wait().await;
                    client.check(HealthCheckRequest { service }).await
                })
            })
            .collect();
        for call in calls {
            match call.await.expect("join") {
                Ok(()) => served += 1,
                Err(status) => {
                    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                    shed += 1;
                }
            }
        }
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
    call(server.channel().await)
        .await
        .expect("a lone call after the burst is served");
}
