//! What the end-to-end benchmarks share (a dev-dependency): services started as their own
//! release processes, waited for through grpc.health.v1, pgbench baselines on the same
//! database, and the CPU each process used (from /proc).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sqlx::Connection;
use tonic::transport::Channel;
use uuid::Uuid;

/// Progress of a long phase, on a terminal only.
pub use inventory_telemetry::Progress;

/// A connection to the server's `postgres` database, to create and drop bench databases.
pub async fn admin(server: &str) -> Result<sqlx::PgConnection, String> {
    sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .map_err(|e| e.to_string())
}

pub async fn execute(conn: &mut sqlx::PgConnection, sql: String) -> Result<(), String> {
    sqlx::raw_sql(&(sql))
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// WAL readied per second of a measured run: about twice what the busiest case writes on
/// this machine.
const WAL_PER_SECOND: u64 = 48 << 20;

/// Readies the server's WAL for a run of `run`, as a server under steady load has it, and
/// checkpoints: writes that much WAL (logical messages nobody decodes) so the checkpoint
/// recycles its segments ahead. Otherwise the run writes into segments created and
/// zero-filled on the spot, and each one stalls every writer for tens of milliseconds, a
/// tail that belongs to a cold WAL directory, not to what is measured.
pub async fn ready_wal(conn: &mut sqlx::PgConnection, run: Duration) -> Result<(), String> {
    let megabytes = (WAL_PER_SECOND * run.as_secs().max(1)) >> 20;
    execute(
        conn,
        format!(
            "SELECT count(pg_logical_emit_message(false, 'bench-wal', repeat('x', 1048576)))
               FROM generate_series(1, {megabytes});
             CHECKPOINT"
        ),
    )
    .await
}

/// A port nothing listens on now.
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Starts a service binary on `port` against `database_url`, quiet unless `BENCH_SERVICE_LOG`
/// names a file for its logs.
pub fn start_service(
    binary: &str,
    database_url: &str,
    port: u16,
    env: &[(String, String)],
) -> Result<Child, String> {
    let log = std::env::var_os("BENCH_SERVICE_LOG").map(std::path::PathBuf::from);
    start_service_logging(binary, database_url, port, env, log.as_deref())
}

/// As [`start_service`], its logs (stdout) appended to `log` if given.
pub fn start_service_logging(
    binary: &str,
    database_url: &str,
    port: u16,
    env: &[(String, String)],
    log: Option<&std::path::Path>,
) -> Result<Child, String> {
    let mut command = Command::new(binary);
    command
        .env("DATABASE_URL", database_url)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .env("MAX_CONCURRENT_REQUESTS", "4096")
        .env("METRICS_ADDR", "off")
        .stdout(match log {
            Some(path) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(Stdio::from)
                .unwrap_or_else(|_| Stdio::null()),
            None => Stdio::null(),
        })
        .stderr(Stdio::inherit());
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().map_err(|e| format!("start {binary}: {e}"))
}

/// Stops a service as Kubernetes would (SIGTERM) and waits for it.
pub fn stop_service(mut service: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status();
    let _ = service.wait();
}

/// A channel to `endpoint` once health reports `service` SERVING (at most a minute).
pub async fn wait_serving(endpoint: &str, service: &str) -> Result<Channel, String> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(channel) = Channel::from_shared(endpoint.to_owned())
            .map_err(|e| e.to_string())?
            .connect()
            .await
        {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            let request = tonic_health::pb::HealthCheckRequest {
                service: service.to_owned(),
            };
            if let Ok(r) = health.check(request).await
                && r.get_ref().status() == ServingStatus::Serving
            {
                return Ok(channel);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{service} did not become ready at {endpoint}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One pgbench run of `script` (custom variables in `defines`): its transactions per second.
pub fn pgbench(
    database_url: &str,
    search_path: &str,
    clients: usize,
    duration: Duration,
    defines: &[(&str, String)],
    script: &str,
) -> Result<f64, String> {
    let path = std::env::temp_dir().join(format!("bench-{}.sql", Uuid::now_v7().simple()));
    std::fs::write(&path, script).map_err(|e| e.to_string())?;
    let mut command = Command::new("pgbench");
    command
        .env("PGOPTIONS", format!("-c search_path={search_path}"))
        .args(["-n", "-j", "2", "-M", "prepared"])
        .args(["-c", &clients.to_string()])
        .args(["-T", &duration.as_secs().to_string()]);
    for (k, v) in defines {
        command.args(["-D", &format!("{k}={v}")]);
    }
    let output = command
        .arg("-f")
        .arg(&path)
        .arg(database_url)
        .output()
        .map_err(|e| format!("pgbench: {e}"))?;
    let _ = std::fs::remove_file(&path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .ok_or_else(|| format!("no tps in pgbench output: {stdout}"))
}

/// CPU seconds a process has used so far (user + system), from /proc.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / 100.0
}

/// Resident memory of a process in bytes, from /proc (0 if it is gone).
pub fn process_rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// File descriptors a process holds open (sockets included), from /proc.
pub fn process_open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// CPU seconds used so far by every PostgreSQL process (the server and its backends).
pub fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .map(process_cpu_seconds)
        .sum()
}

/// The whole machine's CPU time so far, in jiffies, from the first line of /proc/stat.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MachineCpu {
    /// Neither idle nor waiting for I/O; time the hypervisor took is included.
    pub busy: f64,
    /// Taken by the hypervisor for other guests while this machine had work to run. On a
    /// shared virtual machine this is what makes the same run differ from hour to hour, so a
    /// report shows it beside the figures it lowered.
    pub steal: f64,
    pub total: f64,
}

impl MachineCpu {
    pub fn now() -> Self {
        Self::parse(&std::fs::read_to_string("/proc/stat").unwrap_or_default())
    }

    /// From /proc/stat's text: user, nice, system, idle, iowait, irq, softirq, steal (the
    /// guest columns after them are already counted in user and nice).
    pub fn parse(stat: &str) -> Self {
        let values: Vec<f64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|v| v.parse().ok())
            .collect();
        let at = |i: usize| values.get(i).copied().unwrap_or(0.0);
        let total: f64 = values.iter().sum();
        Self {
            busy: total - at(3) - at(4),
            steal: at(7),
            total,
        }
    }

    /// The cores busy and the cores stolen, on average, from `earlier` to `self`.
    pub fn cores_since(&self, earlier: &MachineCpu) -> (f64, f64) {
        let total = self.total - earlier.total;
        if total <= 0.0 {
            return (0.0, 0.0);
        }
        let per_jiffy = cores() / total;
        (
            (self.busy - earlier.busy) * per_jiffy,
            (self.steal - earlier.steal) * per_jiffy,
        )
    }
}

pub fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// (commits, WAL syncs) of the current database so far.
pub async fn database_counters(conn: &mut sqlx::PgConnection) -> Result<(f64, f64), String> {
    let (commits, syncs): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
                (SELECT wal_sync FROM pg_stat_wal)",
    )
    .fetch_one(conn)
    .await
    .map_err(|e| e.to_string())?;
    Ok((commits as f64, syncs as f64))
}

/// A quantile of a latency histogram recorded in microseconds, in milliseconds.
pub fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

/// A latency histogram in microseconds, up to a minute.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| unreachable!("constant bounds are valid"))
}

/// A small xorshift generator: a load generator must not spend its time on randomness.
/// Seed it with anything but zero.
pub struct Rng(pub u64);

impl Rng {
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `--clients 16,64`: client counts.
pub fn client_counts(value: &str) -> Result<Vec<usize>, String> {
    value
        .split(',')
        .map(|c| c.parse().map_err(|_| format!("bad client count {c}")))
        .collect()
}

/// `--duration 8`: whole seconds.
pub fn seconds(value: &str) -> Result<Duration, String> {
    value
        .parse()
        .map(Duration::from_secs)
        .map_err(|_| format!("bad duration {value}"))
}

/// `--json PATH`: cargo runs benches in the package directory, so a relative path is taken
/// from the workspace root (two levels above `manifest_dir`), where the command was most
/// likely typed.
pub fn workspace_path(manifest_dir: &str, value: &str) -> String {
    let path = std::path::PathBuf::from(value);
    if path.is_absolute() {
        path
    } else {
        std::path::Path::new(manifest_dir).join("../..").join(path)
    }
    .display()
    .to_string()
}

/// Benchmarks number their rows: product n has the id `PRODUCT_ID_PREFIX` + n in 12 hex
/// digits, warehouse n the same under `WAREHOUSE_ID_PREFIX`.
pub const PRODUCT_ID_PREFIX: &str = "00000000-0000-4000-8000-";
pub const WAREHOUSE_ID_PREFIX: &str = "10000000-0000-4000-8000-";

/// SQL for the uuid `prefix` followed by the SQL expression `n` as 12 hex digits.
pub fn numbered_uuid_sql(prefix: &str, n: &str) -> String {
    format!("('{prefix}' || lpad(to_hex({n}), 12, '0'))::uuid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_cpu_counts_steal_as_busy_and_on_its_own_and_guest_time_once() {
        let earlier = MachineCpu::parse("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 1 2 3\n");
        assert_eq!(
            earlier,
            MachineCpu {
                busy: 190.0,
                steal: 35.0,
                total: 1000.0
            }
        );
        // Guest time (the ninth column) is part of user time already.
        let later = MachineCpu::parse("cpu  200 0 100 1300 10 0 10 135 40 0\n");
        assert_eq!(later.total, 1755.0);
        let (busy, steal) = later.cores_since(&earlier);
        let cores = cores();
        assert!((busy - 255.0 / 755.0 * cores).abs() < 1e-9, "{busy}");
        assert!((steal - 100.0 / 755.0 * cores).abs() < 1e-9, "{steal}");
        assert_eq!(earlier.cores_since(&earlier), (0.0, 0.0));
    }
}
