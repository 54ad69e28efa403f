//! Purchase orders to suppliers that take them through an API: an HTTP POST of the order as
//! JSON to the supplier's endpoint, over TLS for `https://`.
//!
//! A resend (after a crash between delivery and commit, or a timeout whose request did
//! arrive) carries the same `Idempotency-Key` (the PO id and its control number), so a
//! supplier that honours the header keeps one order. A 2xx answer is delivered; 409 Conflict
//! is taken as "already have it"; anything else is a failure the outbox retries.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// One PO as a supplier API receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiOrder {
    /// Same for every delivery of the same PO.
    pub idempotency_key: String,
    pub body: serde_json::Value,
}

/// Where API suppliers' orders go.
#[tonic::async_trait]
pub trait SupplierApi: Send + Sync + 'static {
    async fn send(&self, endpoint: &str, order: &ApiOrder) -> Result<(), String>;
}

/// Checks an endpoint as the client will use it: http or https, a host, nothing it ignores.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let uri: http::Uri = endpoint.parse().map_err(|e| format!("is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("must start with http:// or https://".into()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must not carry credentials".into());
    }
    Ok(())
}

/// HTTP/1.1, one connection per order (orders are few; nothing to pool).
pub struct HttpSupplierApi {
    timeout: Duration,
    tls: tokio_rustls::TlsConnector,
}

impl HttpSupplierApi {
    /// Trusts the web's public roots (webpki-roots).
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS client: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            timeout,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
        })
    }

    async fn post(&self, endpoint: &str, order: &ApiOrder) -> Result<(), String> {
        check_endpoint(endpoint)?;
        let uri: http::Uri = endpoint.parse().map_err(|e| format!("{e}"))?;
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let path = uri
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        let request = Request::post(path)
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", &order.idempotency_key)
            .body(Full::new(Bytes::from(order.body.to_string())))
            .map_err(|e| e.to_string())?;
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        tcp.set_nodelay(true).ok();
        if https {
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("{host}: {e}"))?;
            let tls = self
                .tls
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host}: {e}"))?;
            exchange(tls, request).await
        } else {
            exchange(tcp, request).await
        }
    }
}

async fn exchange<S>(stream: S, request: Request<Full<Bytes>>) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let driver = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"));
    let outcome = match response {
        Ok(response) => {
            let status = response.status();
            if status.is_success() || status == http::StatusCode::CONFLICT {
                Ok(())
            } else {
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
                Err(format!("supplier answered {status}: {text}"))
            }
        }
        Err(e) => Err(e),
    };
    driver.abort();
    outcome
}

#[tonic::async_trait]
impl SupplierApi for HttpSupplierApi {
    async fn send(&self, endpoint: &str, order: &ApiOrder) -> Result<(), String> {
        tokio::time::timeout(self.timeout, self.post(endpoint, order))
            .await
            .map_err(|_| format!("no answer from {endpoint} within {:?}", self.timeout))?
    }
}

#[cfg(test)]
mod tests {
    use super::check_endpoint;

    #[test]
    fn endpoints_are_http_or_https_urls_with_a_host_and_no_credentials() {
        assert!(check_endpoint("https://api.acme.example/v1/orders").is_ok());
        assert!(check_endpoint("http://127.0.0.1:8080/orders").is_ok());
        assert!(check_endpoint("ftp://acme.example/orders").is_err());
        assert!(check_endpoint("acme.example/orders").is_err());
        assert!(check_endpoint("https://user:secret@acme.example/").is_err());
        assert!(check_endpoint("not a url").is_err());
    }
}
