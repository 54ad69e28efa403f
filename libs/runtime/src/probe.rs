//! `<service> health [host:port]`: the container health check, for images that carry no gRPC
//! probe of their own. Asks the instance on `LISTEN_ADDR` (a wildcard address means this
//! machine), or at `host:port`, whether its service is SERVING, over grpc.health.v1. Where
//! the server speaks TLS, so does the probe, with the service's own certificate; the server's
//! must then be valid for `TLS_SERVER_NAME` (the Service's DNS name) or the address asked.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::{Config, ServiceSpec, Settings};

/// How long the whole check may take before it counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// `Ok` when SERVING; otherwise what was seen instead. `target` (`host:port`) names another
/// instance (a `helm test` pod asks the Service); without it, this machine's `LISTEN_ADDR`.
pub async fn probe(
    spec: &ServiceSpec,
    settings: &Settings,
    target: Option<&str>,
) -> Result<(), String> {
    let address = match target {
        Some(target) => target.to_owned(),
        None => {
            let config =
                Config::from_settings(settings, spec.default_listen).map_err(|e| e.to_string())?;
            reachable(config.listen_addr).to_string()
        }
    };
    let tls = crate::tls::TlsFiles::from_settings(settings).map_err(|e| e.to_string())?;
    let check = async {
        let scheme = if tls.serves_tls() { "https" } else { "http" };
        let endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{address}"))
            .map_err(|e| e.to_string())?;
        let channel = if tls.serves_tls() {
            // The instance's certificate names its Service, not the loopback address.
            let connector = crate::tls::TlsConnector::new(&tls)
                .map_err(|e| e.to_string())?
                .with_server_name(settings.raw("TLS_SERVER_NAME"));
            endpoint.connect_with_connector(connector).await
        } else {
            endpoint.connect().await
        }
        .map_err(|e| format!("nothing answers on {address}: {e}"))?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: spec.name.to_owned(),
            })
            .await
            .map_err(|status| format!("{address}: {}", status.message()))?
            .into_inner();
        match answer.status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!(
                "{} on {address} is {}",
                spec.name,
                other.as_str_name()
            )),
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from {address} within {PROBE_TIMEOUT:?}")))
}

/// A listen address as a client reaches it: 0.0.0.0 and :: mean loopback.
fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_probed_on_loopback() {
        let probed = reachable("0.0.0.0:50051".parse().expect("addr"));
        assert_eq!(probed, "127.0.0.1:50051".parse().expect("addr"));
        let probed = reachable("[::]:50052".parse().expect("addr"));
        assert_eq!(probed, "[::1]:50052".parse().expect("addr"));
        let specific = "10.0.0.7:50053".parse().expect("addr");
        assert_eq!(reachable(specific), specific);
    }
}
