//! TLS on every server and on the calls between services (rustls), from PEM files that are
//! re-read when they change, so a renewed certificate (cert-manager rewrites the mounted
//! secret) is served without a restart.
//!
//! - `TLS_CERT_FILE`, `TLS_KEY_FILE`: this service's certificate chain and private key. Set,
//!   the server speaks only TLS; they are also the client certificate it shows its peers.
//! - `TLS_CA_FILE`: the certificate authority of the deployment. On the server it turns on
//!   mutual TLS: a caller without a certificate it signed is refused in the handshake. On a
//!   client (an `https://` peer URL) it is what the peer's certificate must chain to.
//! - `TLS_RELOAD_INTERVAL_MS`: how often the files are checked for a change (default 10000).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tonic::transport::server::Connected;

use crate::{RuntimeError, Settings};

/// How long a client may take to finish its handshake before its connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once; past that, accepting waits, so a flood of silent
/// connections cannot take every file descriptor.
const MAX_HANDSHAKES: usize = 256;

/// Where this service's certificate, key and trusted authority live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub reload_interval: Duration,
}

impl Default for TlsFiles {
    fn default() -> Self {
        Self {
            cert: None,
            key: None,
            ca: None,
            reload_interval: Duration::from_secs(10),
        }
    }
}

impl TlsFiles {
    pub fn from_settings(settings: &Settings) -> Result<Self, RuntimeError> {
        let path = |key: &str| {
            settings
                .raw(key)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let files = Self {
            cert: path("TLS_CERT_FILE"),
            key: path("TLS_KEY_FILE"),
            ca: path("TLS_CA_FILE"),
            reload_interval: settings.millis("TLS_RELOAD_INTERVAL_MS", 10_000)?,
        };
        if files.reload_interval < Duration::from_millis(100) {
            return Err(RuntimeError::Config(
                "TLS_RELOAD_INTERVAL_MS: at least 100; the files are checked that often".into(),
            ));
        }
        if files.cert.is_some() != files.key.is_some() {
            return Err(RuntimeError::Config(
                "TLS_CERT_FILE and TLS_KEY_FILE: set both or neither".into(),
            ));
        }
        Ok(files)
    }

    /// The server speaks TLS.
    pub fn serves_tls(&self) -> bool {
        self.cert.is_some()
    }

    /// Callers must show a certificate the deployment's authority signed.
    pub fn mutual(&self) -> bool {
        self.serves_tls() && self.ca.is_some()
    }

    fn watched(&self) -> Vec<&Path> {
        [&self.cert, &self.key, &self.ca]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
            .collect()
    }

    fn certificate(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
        let (Some(cert), Some(key)) = (&self.cert, &self.key) else {
            return Ok(None);
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("TLS_CERT_FILE {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "TLS_CERT_FILE {}: no certificate in it",
                cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("TLS_KEY_FILE {}: {e}", key.display()))?;
        Ok(Some((chain, key)))
    }

    fn authority(&self) -> Result<Option<RootCertStore>, String> {
        let Some(ca) = &self.ca else { return Ok(None) };
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("TLS_CA_FILE {}: {e}", ca.display()))?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(format!(
                "TLS_CA_FILE {}: no usable certificate in it",
                ca.display()
            ));
        }
        Ok(Some(roots))
    }

    /// The server's configuration as the files are now.
    pub fn server_config(&self) -> Result<ServerConfig, String> {
        let (chain, key) = self
            .certificate()?
            .ok_or("TLS_CERT_FILE and TLS_KEY_FILE are not set")?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match self.authority()? {
            Some(roots) => builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                    .build()
                    .map_err(|e| format!("TLS_CA_FILE: {e}"))?,
            ),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| format!("TLS_CERT_FILE/TLS_KEY_FILE: {e}"))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// A client's configuration as the files are now: the peer must chain to `TLS_CA_FILE`
    /// (the public web roots without it); this service's certificate is shown when it has one.
    pub fn client_config(&self) -> Result<ClientConfig, String> {
        let roots = self.authority()?.unwrap_or_else(|| RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let mut config = match self.certificate()? {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("TLS_CERT_FILE/TLS_KEY_FILE: {e}"))?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// When each watched file last changed, to notice a renewal.
    fn stamp(&self) -> Vec<Option<(SystemTime, u64)>> {
        self.watched()
            .into_iter()
            .map(|path| {
                std::fs::metadata(path)
                    .ok()
                    .and_then(|m| Some((m.modified().ok()?, m.len())))
            })
            .collect()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A configuration rebuilt from its files whenever they change; a rebuild that fails (a
/// half-written file) keeps the one before and is tried again at the next check.
pub struct Reloading<T> {
    current: RwLock<Arc<T>>,
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Built once now (a bad file stops start-up), then watched for as long as the returned
    /// value lives.
    pub fn watch(
        files: TlsFiles,
        what: &'static str,
        build: fn(&TlsFiles) -> Result<T, String>,
    ) -> Result<Arc<Self>, RuntimeError> {
        let first = build(&files).map_err(RuntimeError::Config)?;
        let this = Arc::new(Self {
            current: RwLock::new(Arc::new(first)),
        });
        let weak = Arc::downgrade(&this);
        let mut stamp = files.stamp();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(files.reload_interval).await;
                let Some(this) = weak.upgrade() else { return };
                let now = files.stamp();
                if now == stamp {
                    continue;
                }
                match build(&files) {
                    Ok(fresh) => {
                        *this.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
                        stamp = now;
                        tracing::info!(what, "TLS certificate files changed: reloaded");
                    }
                    Err(error) => {
                        tracing::error!(what, %error, "TLS certificate files changed but do not load; keeping the previous ones");
                    }
                }
            }
        });
        Ok(this)
    }

    pub fn current(&self) -> Arc<T> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Who is on the other end of a connection, as the server saw it.
#[derive(Debug, Clone, Default)]
pub struct Peer {
    pub address: Option<SocketAddr>,
    /// The caller's verified certificate chain (leaf first), under mutual TLS.
    pub certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// One accepted connection, plain or TLS.
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Connected for Connection {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        match self {
            Connection::Plain(stream) => Peer {
                address: stream.peer_addr().ok(),
                certificates: None,
            },
            Connection::Tls(stream) => {
                let (tcp, session) = stream.get_ref();
                Peer {
                    address: tcp.peer_addr().ok(),
                    certificates: session.peer_certificates().map(|certs| {
                        Arc::new(certs.iter().map(|c| c.clone().into_owned()).collect())
                    }),
                }
            }
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(s) => s.is_write_vectored(),
            Connection::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepted TCP connections as the server takes them: as they are, or after a TLS handshake
/// with the configuration current at that moment. Handshakes run on their own tasks, so a
/// slow or silent client holds up no one; a failed one is logged and dropped.
pub fn incoming<S>(
    tcp: S,
    tls: Option<Arc<Reloading<ServerConfig>>>,
) -> tokio_stream::wrappers::ReceiverStream<io::Result<Connection>>
where
    S: tokio_stream::Stream<Item = io::Result<TcpStream>> + Send + 'static,
{
    use tokio_stream::StreamExt;
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    tokio::spawn(async move {
        let mut tcp = std::pin::pin!(tcp);
        loop {
            // The server gone (shut down), the listener goes with this task, so the port is
            // free for whoever binds it next.
            let accepted = tokio::select! {
                () = sender.closed() => return,
                accepted = tcp.next() => match accepted {
                    Some(accepted) => accepted,
                    None => return,
                },
            };
            let stream = match accepted {
                Ok(stream) => stream,
                Err(error) => {
                    // Out of file descriptors, say: the listener stays; try again shortly.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(tls) = &tls else {
                if sender.send(Ok(Connection::Plain(stream))).await.is_err() {
                    return;
                }
                continue;
            };
            let Ok(permit) = handshakes.clone().acquire_owned().await else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.current());
            let sender = sender.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let address = stream.peer_addr().ok();
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(session)) => {
                        let _ = sender.send(Ok(Connection::Tls(Box::new(session)))).await;
                    }
                    // Closed before saying anything: a TCP probe or a port scan.
                    Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                        tracing::debug!(?address, "connection closed before a TLS handshake");
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(?address, %error, "TLS handshake refused: UNAUTHENTICATED");
                    }
                    Err(_) => {
                        tracing::warn!(?address, "TLS handshake not finished in time: dropped");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(receiver)
}

/// Opens connections to an `https://` peer over TLS with the configuration current at that
/// moment, for tonic's `Endpoint::connect_with_connector`.
#[derive(Clone)]
pub struct TlsConnector {
    config: Arc<Reloading<ClientConfig>>,
    server_name: Option<String>,
}

impl TlsConnector {
    pub fn new(files: &TlsFiles) -> Result<Self, RuntimeError> {
        Ok(Self {
            config: Reloading::watch(files.clone(), "client", TlsFiles::client_config)?,
            server_name: None,
        })
    }

    /// Checks the peer's certificate for `name` instead of the host connected to.
    pub fn with_server_name(self, name: Option<String>) -> Self {
        Self {
            server_name: name.filter(|n| !n.is_empty()),
            ..self
        }
    }
}

type Connecting = Pin<
    Box<
        dyn std::future::Future<
                Output = Result<
                    hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>,
                    io::Error,
                >,
            > + Send,
    >,
>;

impl tower::Service<http::Uri> for TlsConnector {
    type Response = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Connecting {
        let config = self.config.current();
        let server_name = self.server_name.clone();
        Box::pin(async move {
            let invalid =
                |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("{uri}: {what}"));
            let host = uri.host().ok_or_else(|| invalid("no host"))?;
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let port = uri.port_u16().unwrap_or(443);
            let name = ServerName::try_from(server_name.unwrap_or_else(|| host.clone()))
                .map_err(|_| invalid("not a server name"))?;
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            tcp.set_nodelay(true)?;
            let session = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok(hyper_util::rt::TokioIo::new(session))
        })
    }
}

/// A channel to `url`: plain for `http://`, TLS with this service's files for `https://`.
pub fn endpoint_channel(
    endpoint: tonic::transport::Endpoint,
    files: &TlsFiles,
) -> Result<tonic::transport::Channel, RuntimeError> {
    if endpoint.uri().scheme_str() == Some("https") {
        Ok(endpoint.connect_with_connector_lazy(TlsConnector::new(files)?))
    } else {
        Ok(endpoint.connect_lazy())
    }
}
