//! A service binary run as operators run it, for tests that kill it for real: a process of
//! its own on a free port, SERVING before the test goes on, and `kill -9` on demand.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::TestDatabase;

/// How long a start or an awaited failpoint may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// A running service binary; killed when dropped.
pub struct ServiceProcess {
    child: Child,
    pub addr: SocketAddr,
    /// The process's stdout (its logs) and stderr, line by line (read by threads so the
    /// pipes never fill).
    output: mpsc::Receiver<String>,
}

impl ServiceProcess {
    /// Starts `binary` on a free port against `database` with `vars` (`FAILPOINTS` among
    /// them, say), and waits until it reports `service` (its proto name) SERVING.
    pub async fn start(
        binary: &str,
        service: &str,
        database: &TestDatabase,
        vars: &[(&str, &str)],
    ) -> Self {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let mut child = Command::new(binary)
            .env("DATABASE_URL", &database.url)
            .env("DATABASE_MAX_CONNECTIONS", "4")
            .env("LISTEN_ADDR", addr.to_string())
            .env("METRICS_ADDR", "off")
            .env("OTEL_SDK_DISABLED", "true")
            .env("RUST_LOG", "warn")
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {binary}: {e}"));
        let (lines, output) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout piped");
        let stderr = child.stderr.take().expect("stderr piped");
        forward_lines(stdout, lines.clone());
        forward_lines(stderr, lines);
        let process = Self {
            child,
            addr,
            output,
        };
        process.wait_until_serving(service).await;
        process
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        crate::server::connect(&self.url()).await
    }

    async fn wait_until_serving(&self, service: &str) {
        let answer = crate::contract::wait_for_status(
            &self.url(),
            service,
            ServingStatus::Serving,
            PATIENCE,
        )
        .await;
        assert_eq!(
            answer.ok(),
            Some(ServingStatus::Serving),
            "{service} did not report SERVING within {PATIENCE:?}"
        );
    }

    /// Waits until the process says it reached `failpoint` (see the runtime's failpoint).
    pub async fn reached(&self, failpoint: &str) {
        self.said(&format!("failpoint {failpoint} reached")).await;
    }

    /// Waits until a line of the process's output contains `wanted`; every line read on the
    /// way, that one included.
    pub async fn said(&self, wanted: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            match self.output.try_recv() {
                Ok(line) => {
                    let found = line.contains(wanted);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    panic!("the process ended before it said {wanted:?}")
                }
            }
        }
        panic!("the process did not say {wanted:?} within {PATIENCE:?}");
    }

    /// `kill -9`: no drain, no cleanup, open transactions left to PostgreSQL to roll back.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(pipe: impl std::io::Read + Send + 'static, lines: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
