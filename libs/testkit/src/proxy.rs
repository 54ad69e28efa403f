//! A TCP proxy a test puts between a service and what it talks to (its database, a peer
//! service), to cut the line as a restart or a network failure would (every open connection
//! dropped, new ones closed at once) or to slow it down, and then to restore it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Line {
    down: AtomicBool,
    /// Added before every chunk forwarded, either way.
    delay_ms: AtomicU64,
    /// Connections being forwarded now.
    open: AtomicUsize,
}

/// Forwards every connection made to `addr` to the target, until cut or dropped.
pub struct FaultyProxy {
    pub addr: SocketAddr,
    line: Arc<Line>,
    /// Bumped by every cut: connections open at the time end.
    cuts: watch::Sender<u64>,
    accepting: JoinHandle<()>,
}

impl FaultyProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let line = Arc::new(Line::default());
        let (cuts, _) = watch::channel(0);
        let accepting = tokio::spawn({
            let (line, cuts) = (line.clone(), cuts.clone());
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    // Subscribed before the check, so a cut in between still ends it.
                    let cut = cuts.subscribe();
                    if line.down.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    tokio::spawn(forward(client, target, line.clone(), cut));
                }
            }
        });
        Self {
            addr,
            line,
            cuts,
            accepting,
        }
    }

    /// Drops every open connection and closes new ones at once, until [`Self::restore`].
    pub fn cut(&self) {
        self.line.down.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.line.down.store(false, Ordering::SeqCst);
    }

    /// Delays every chunk forwarded from now on by `delay` (zero: none).
    pub fn slow_down(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.line.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Connections being forwarded now.
    pub fn open_connections(&self) -> usize {
        self.line.open.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

async fn forward(
    client: TcpStream,
    target: SocketAddr,
    line: Arc<Line>,
    mut cuts: watch::Receiver<u64>,
) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    line.open.fetch_add(1, Ordering::SeqCst);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        () = pump(client_read, server_write, &line) => {}
        () = pump(server_read, client_write, &line) => {}
        _ = cuts.changed() => {}
    }
    line.open.fetch_sub(1, Ordering::SeqCst);
}

/// Copies one direction until either end closes.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    line: &Line,
) {
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let delay = line.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
