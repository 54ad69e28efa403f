//! Reservation throughput of the real stock service, beside two pgbench baselines run on the
//! same PostgreSQL and the same rows.
//!
//! ```sh
//! cargo bench -p stock-service --bench reservations -- --json target/reservations.json
//! ```
//!
//! For every (workload, clients) case it creates a fresh database, starts the stock-service
//! binary against it as its own process, seeds the rows (through the log, so the ledger stays
//! whole), drives one-unit ReserveStock calls over gRPC from N concurrent clients for a fixed
//! time, counts the reservations the log holds, checks that nothing is oversold and that the
//! ledger check is clean, then runs the textbook transaction and the single conditional
//! statement with pgbench against the same rows. Exits non-zero if anything was oversold or
//! the ledger drifted.
//!
//! The `orders` workload sends ReserveOrder calls of three lines (three distinct products,
//! spread uniformly, one unit each) instead, and its baseline is the textbook order
//! transaction: lock the three rows `FOR UPDATE` in order, check, update them, write the three
//! log rows, commit. Its figures are orders per second.
//!
//! `--soak MINUTES` adds, after each case's run, a soak at `--soak-load` (0.7) of the rate
//! that run reached: requests paced evenly over the minutes by four times the run's clients
//! (latency counted from when a request was due, so a stall is not hidden), and every 30 s
//! a line with the rate, p50/p99, the service's resident memory and open descriptors, and
//! its database sessions (which its pool caps). It fails if memory, descriptors or p99 grew
//! from the second window to the last (the first one warms up), or if any call failed:
//!
//! ```sh
//! cargo bench -p stock-service --bench reservations -- --workloads uniform --clients 64 \
//!     --no-baselines --soak 10 --json target/soak.json
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use inventory_benchkit::{
    self as benchkit, MachineCpu, PRODUCT_ID_PREFIX, Rng, database_counters, execute, free_port,
    latency_histogram, ms, numbered_uuid_sql, postgres_cpu_seconds, process_cpu_seconds, ready_wal,
    start_service, stop_service, wait_serving,
};
use inventory_proto::stock::v1 as pb;
use pb::stock_service_client::StockServiceClient;
use sqlx::Connection;
use tonic::transport::Channel;
use uuid::Uuid;

const SERVICE_BINARY: &str = env!("CARGO_BIN_EXE_stock-service");
/// The single warehouse every benchmark row lives in.
const WAREHOUSE: &str = "10000000-0000-4000-8000-000000000001";
/// Units on hand per row: enough that no case runs out.
const STOCK_PER_ROW: i64 = 100_000_000;
/// Exponent of the Zipf-skewed mix (the same for the service and pgbench).
const ZIPF_EXPONENT: f64 = 1.1;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Workload {
    Hot,
    Uniform,
    Zipf,
    Orders,
}

/// Lines of an `orders` workload request.
const ORDER_LINES: usize = 3;

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::Hot => "hot",
            Self::Uniform => "uniform",
            Self::Zipf => "zipf",
            Self::Orders => "orders",
        }
    }

    /// Reservations (log rows) per request.
    fn lines(self) -> usize {
        if self == Self::Orders { ORDER_LINES } else { 1 }
    }

    fn parse(value: &str) -> Option<Self> {
        [Self::Hot, Self::Uniform, Self::Zipf, Self::Orders]
            .into_iter()
            .find(|w| w.name() == value)
    }

    /// pgbench's choice of product number, matching [`Picker`].
    fn pgbench_choice(self) -> &'static str {
        match self {
            Self::Hot => "\\set n 1",
            Self::Uniform => "\\set n random(1, :products)",
            Self::Zipf => "\\set n random_zipfian(1, :products, 1.1)",
            // The first of three products a third of the range apart, as [`Picker`] spreads
            // an order's lines.
            Self::Orders => "\\set n random(1, :products / 3)",
        }
    }
}

struct Options {
    workloads: Vec<Workload>,
    clients: Vec<usize>,
    duration: Duration,
    products: usize,
    server_url: String,
    json: Option<String>,
    baselines: bool,
    service_env: Vec<(String, String)>,
    /// Another build of stock-service to measure (an earlier commit's, to compare).
    service_binary: String,
    /// Workers (`host:port`) of a Citus cluster whose coordinator is `server_url`.
    citus_workers: Vec<String>,
    /// Minutes of paced load after each case's run (none: no soak).
    soak: Option<Duration>,
    /// The soak's rate as a share of the rate the case's run reached.
    soak_load: f64,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        workloads: vec![Workload::Hot, Workload::Uniform, Workload::Zipf],
        clients: vec![16, 64],
        duration: Duration::from_secs(8),
        products: 10_000,
        server_url: std::env::var("BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned()),
        json: None,
        baselines: true,
        service_env: Vec::new(),
        service_binary: SERVICE_BINARY.to_owned(),
        citus_workers: Vec::new(),
        soak: None,
        soak_load: 0.7,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--workloads" => {
                o.workloads = value()?
                    .split(',')
                    .map(|w| Workload::parse(w).ok_or_else(|| format!("unknown workload {w}")))
                    .collect::<Result<_, _>>()?
            }
            "--clients" => o.clients = benchkit::client_counts(&value()?)?,
            "--duration" => o.duration = benchkit::seconds(&value()?)?,
            "--products" => o.products = value()?.parse().map_err(|_| "bad --products")?,
            "--server-url" => o.server_url = value()?,
            "--json" => {
                o.json = Some(benchkit::workspace_path(
                    env!("CARGO_MANIFEST_DIR"),
                    &value()?,
                ))
            }
            "--no-baselines" => o.baselines = false,
            "--soak" => {
                let minutes: u64 = value()?.parse().map_err(|_| "bad --soak (minutes)")?;
                o.soak = Some(Duration::from_secs(minutes * 60));
            }
            "--soak-load" => {
                o.soak_load = value()?
                    .parse()
                    .ok()
                    .filter(|l: &f64| *l > 0.0 && *l <= 1.0)
                    .ok_or("--soak-load is a share of capacity in (0, 1]")?
            }
            "--service-binary" => o.service_binary = value()?,
            "--citus-workers" => o.citus_workers = value()?.split(',').map(str::to_owned).collect(),
            "--service-env" => {
                let pair = value()?;
                let (k, v) = pair
                    .split_once('=')
                    .ok_or("--service-env wants KEY=VALUE")?;
                o.service_env.push((k.to_owned(), v.to_owned()));
            }
            // cargo bench passes --bench to every harness.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.soak.is_some() && o.workloads.contains(&Workload::Orders) {
        return Err("--soak runs the one-line workloads only".into());
    }
    Ok(o)
}

/// Picks product numbers 1..=n the way a workload asks.
struct Picker {
    workload: Workload,
    /// Cumulative Zipf probabilities, for the skewed mix.
    cdf: Vec<f64>,
}

impl Picker {
    fn new(workload: Workload, products: usize) -> Self {
        let cdf = if workload == Workload::Zipf {
            let weights: Vec<f64> = (1..=products)
                .map(|k| 1.0 / (k as f64).powf(ZIPF_EXPONENT))
                .collect();
            let total: f64 = weights.iter().sum();
            let mut acc = 0.0;
            weights
                .iter()
                .map(|w| {
                    acc += w / total;
                    acc
                })
                .collect()
        } else {
            Vec::new()
        };
        Self { workload, cdf }
    }

    fn pick(&self, products: usize, random: f64) -> usize {
        match self.workload {
            Workload::Hot => 1,
            Workload::Uniform => 1 + ((random * products as f64) as usize).min(products - 1),
            Workload::Zipf => 1 + self.cdf.partition_point(|&c| c < random).min(products - 1),
            Workload::Orders => {
                1 + ((random * (products / 3) as f64) as usize).min(products / 3 - 1)
            }
        }
    }
}

fn product_id(n: usize) -> String {
    format!("{PRODUCT_ID_PREFIX}{n:012x}")
}

struct Case {
    workload: Workload,
    clients: usize,
    products: usize,
    database: String,
}

impl Case {
    fn url(&self, server: &str) -> String {
        format!("{server}/{}", self.database)
    }
}

/// Seeds one warehouse and the products with their stock, through the log.
async fn seed(url: &str, products: usize) -> Result<(), String> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    execute(&mut conn, format!(
        "SET search_path = stock;
         INSERT INTO warehouses (warehouse_id, name, warehouse_type, latitude, longitude)
              VALUES ('{WAREHOUSE}', 'Bench', 'FULFILLMENT', 0, 0);
         INSERT INTO products (product_id, sku, name, unit_of_measure, unit_cost_micros)
              SELECT {product},
                     'BENCH-' || n, 'Bench product ' || n, 'each', 1000000
                FROM generate_series(1, {products}) AS n;
         INSERT INTO inventory (product_id, warehouse_id, quantity_on_hand)
              SELECT product_id, '{WAREHOUSE}', {STOCK_PER_ROW} FROM products;
         INSERT INTO inventory_transactions (txn_id, product_id, warehouse_id, txn_type, quantity,
                 on_hand_delta, reserved_delta, on_hand_after, reserved_after, reference_id, request_id)
              SELECT gen_random_uuid(), product_id, '{WAREHOUSE}', 'RECEIVE', {STOCK_PER_ROW},
                     {STOCK_PER_ROW}, 0, {STOCK_PER_ROW}, 0, 'bench-seed', 'bench-seed'
                FROM products ORDER BY product_id;
         ANALYZE;",
        product = numbered_uuid_sql(PRODUCT_ID_PREFIX, "n"),
    )).await
}

/// Vacuums the rows a run writes, then readies the WAL for a run of `run` and checkpoints
/// (see `ready_wal`).
async fn vacuum(url: &str, run: Duration) -> Result<(), String> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    execute(
        &mut conn,
        "VACUUM ANALYZE stock.inventory, stock.inventory_transactions".to_owned(),
    )
    .await?;
    ready_wal(&mut conn, run).await
}

struct ServiceRun {
    reservations_in_log: u64,
    client_successes: u64,
    rejections: u64,
    errors: u64,
    histogram: Histogram<u64>,
    seconds: f64,
    service_cpu_seconds: f64,
    postgres_cpu_seconds: f64,
    load_generator_cpu_seconds: f64,
    machine_busy_cores: f64,
    machine_steal_cores: f64,
    commits_per_sec: f64,
    wal_syncs_per_sec: f64,
}

async fn run_service(
    case: &Case,
    opts: &Options,
    channel: Channel,
    service_pid: u32,
) -> Result<ServiceRun, String> {
    let url = case.url(&opts.server_url);
    let mut stats = sqlx::PgConnection::connect(&url)
        .await
        .map_err(|e| e.to_string())?;
    let picker = Arc::new(Picker::new(case.workload, case.products));
    let stop = Arc::new(AtomicBool::new(false));
    let successes = Arc::new(AtomicU64::new(0));
    let rejections = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let run_tag = Uuid::now_v7().simple().to_string();

    let (cpu_before, machine_before) = (process_cpu_seconds(service_pid), MachineCpu::now());
    let (pg_before, own_before) = (
        postgres_cpu_seconds(),
        process_cpu_seconds(std::process::id()),
    );
    let (commits_before, syncs_before) = database_counters(&mut stats).await?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..case.clients)
        .map(|client| {
            let mut stub = StockServiceClient::new(channel.clone());
            let (picker, stop) = (picker.clone(), stop.clone());
            let (successes, rejections, errors) =
                (successes.clone(), rejections.clone(), errors.clone());
            let (products, tag, workload) = (case.products, run_tag.clone(), case.workload);
            tokio::spawn(async move {
                let mut histogram = latency_histogram();
                let mut rng =
                    Rng(0x9E37_79B9_7F4A_7C15 ^ ((client as u64 + 1) * 0x2545_F491_4F6C_DD1D));
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let n = picker.pick(products, rng.unit());
                    let order_id = format!("b-{tag}-{client}-{i}");
                    let line = |k: usize| pb::ReservationLine {
                        order_line_id: (k + 1).to_string(),
                        product_id: product_id(n + k * (products / 3)),
                        warehouse_id: WAREHOUSE.into(),
                        quantity: 1,
                    };
                    let sent = Instant::now();
                    let result = if workload == Workload::Orders {
                        let request = pb::ReserveOrderRequest {
                            request_id: Uuid::now_v7().to_string(),
                            order_id,
                            lines: (0..ORDER_LINES).map(line).collect(),
                            expire_time: None,
                            actor: "bench".into(),
                        };
                        stub.reserve_order(request).await.map(|_| ())
                    } else {
                        let request = pb::ReserveStockRequest {
                            request_id: Uuid::now_v7().to_string(),
                            order_id,
                            line: Some(line(0)),
                            expire_time: None,
                            actor: "bench".into(),
                        };
                        stub.reserve_stock(request).await.map(|_| ())
                    };
                    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    histogram.saturating_record(micros.max(1));
                    match result {
                        Ok(_) => successes.fetch_add(1, Ordering::Relaxed),
                        Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                            rejections.fetch_add(1, Ordering::Relaxed)
                        }
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                    i += 1;
                }
                histogram
            })
        })
        .collect();
    tokio::time::sleep(opts.duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut histogram = latency_histogram();
    for task in tasks {
        histogram
            .add(task.await.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (cpu_after, machine_after) = (process_cpu_seconds(service_pid), MachineCpu::now());
    let (pg_after, own_after) = (
        postgres_cpu_seconds(),
        process_cpu_seconds(std::process::id()),
    );
    let (commits_after, syncs_after) = database_counters(&mut stats).await?;

    let in_log: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM stock.inventory_transactions
          WHERE txn_type = 'RESERVE' AND reference_id LIKE $1",
    )
    .bind(format!("b-{run_tag}-%"))
    .fetch_one(&mut stats)
    .await
    .map_err(|e| e.to_string())?;
    let (machine_busy_cores, machine_steal_cores) = machine_after.cores_since(&machine_before);
    Ok(ServiceRun {
        reservations_in_log: u64::try_from(in_log).unwrap_or(0),
        client_successes: successes.load(Ordering::Relaxed),
        rejections: rejections.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        histogram,
        seconds,
        service_cpu_seconds: cpu_after - cpu_before,
        postgres_cpu_seconds: pg_after - pg_before,
        load_generator_cpu_seconds: own_after - own_before,
        machine_busy_cores,
        machine_steal_cores,
        commits_per_sec: (commits_after - commits_before) / seconds,
        wal_syncs_per_sec: (syncs_after - syncs_before) / seconds,
    })
}

/// (rows with reserved above on hand, rows whose ledger drifted).
async fn check(url: &str, channel: Channel) -> Result<(i64, usize), String> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let oversold: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM stock.inventory WHERE quantity_reserved > quantity_on_hand OR quantity_available < 0",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    let ledger = StockServiceClient::new(channel)
        .check_ledger(pb::CheckLedgerRequest {})
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    Ok((oversold, ledger.drifts.len()))
}

/// Transactions per second of `script`, and the cores the hypervisor took meanwhile.
fn pgbench(case: &Case, opts: &Options, script: &str) -> Result<(f64, f64), String> {
    let before = MachineCpu::now();
    let tps = benchkit::pgbench(
        &case.url(&opts.server_url),
        "stock",
        case.clients,
        opts.duration,
        &[("products", case.products.to_string())],
        script,
    )?;
    Ok((tps, MachineCpu::now().cores_since(&before).1))
}

/// The pgbench scripts' row condition, after `product_id = `.
fn product_sql() -> String {
    format!(
        "{} AND warehouse_id = '{WAREHOUSE}'",
        numbered_uuid_sql(PRODUCT_ID_PREFIX, ":n::bigint")
    )
}

fn textbook_script(workload: Workload) -> String {
    if workload == Workload::Orders {
        return textbook_order_script();
    }
    let row = product_sql();
    format!(
        "{choice}
BEGIN;
SELECT quantity_on_hand - quantity_reserved AS available, quantity_on_hand AS on_hand, quantity_reserved AS reserved
  FROM inventory WHERE product_id = {row} FOR UPDATE \\gset
\\if :available >= 1
UPDATE inventory SET quantity_reserved = quantity_reserved + 1, last_updated = now() WHERE product_id = {row};
INSERT INTO inventory_transactions (txn_id, product_id, warehouse_id, txn_type, quantity, on_hand_delta,
    reserved_delta, on_hand_after, reserved_after, reference_id, request_id)
  VALUES (gen_random_uuid(), {product}, '{WAREHOUSE}',
    'RESERVE', 1, 0, 1, :on_hand, :reserved + 1, 'pgbench-textbook', 'pgbench-textbook');
\\endif
COMMIT;
",
        choice = workload.pgbench_choice(),
        product = numbered_uuid_sql(PRODUCT_ID_PREFIX, ":n::bigint"),
    )
}

/// The textbook order: the three rows locked in order, checked, updated, three log rows.
fn textbook_order_script() -> String {
    let products = (0..ORDER_LINES)
        .map(|k| {
            numbered_uuid_sql(
                PRODUCT_ID_PREFIX,
                &format!("(:n + {k} * (:products / 3))::bigint"),
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{choice}
BEGIN;
SELECT min(quantity_on_hand - quantity_reserved) AS available FROM (
  SELECT quantity_on_hand, quantity_reserved FROM inventory
   WHERE product_id IN ({products}) AND warehouse_id = '{WAREHOUSE}'
   ORDER BY product_id FOR UPDATE) AS locked \\gset
\\if :available >= 1
UPDATE inventory SET quantity_reserved = quantity_reserved + 1, last_updated = now()
 WHERE product_id IN ({products}) AND warehouse_id = '{WAREHOUSE}';
INSERT INTO inventory_transactions (txn_id, product_id, warehouse_id, txn_type, quantity, on_hand_delta,
    reserved_delta, on_hand_after, reserved_after, reference_id, request_id)
SELECT gen_random_uuid(), product_id, warehouse_id, 'RESERVE', 1, 0, 1, quantity_on_hand, quantity_reserved,
       'pgbench-textbook', 'pgbench-textbook'
  FROM inventory WHERE product_id IN ({products}) AND warehouse_id = '{WAREHOUSE}';
\\endif
COMMIT;
",
        choice = Workload::Orders.pgbench_choice(),
    )
}

fn single_statement_script(workload: Workload) -> String {
    let row = product_sql();
    format!(
        "{choice}
WITH u AS (
  UPDATE inventory SET quantity_reserved = quantity_reserved + 1, last_updated = now()
   WHERE product_id = {row} AND quantity_on_hand - quantity_reserved >= 1
  RETURNING product_id, warehouse_id, quantity_on_hand, quantity_reserved)
INSERT INTO inventory_transactions (txn_id, product_id, warehouse_id, txn_type, quantity, on_hand_delta,
    reserved_delta, on_hand_after, reserved_after, reference_id, request_id)
SELECT gen_random_uuid(), product_id, warehouse_id, 'RESERVE', 1, 0, 1, quantity_on_hand, quantity_reserved,
       'pgbench-single', 'pgbench-single' FROM u;
",
        choice = workload.pgbench_choice()
    )
}

async fn run_case(case: &Case, opts: &Options) -> Result<serde_json::Value, String> {
    // On a Citus cluster the database is made on every node, as the tests make theirs.
    let admin = format!("{}/postgres", opts.server_url);
    let workers = &opts.citus_workers;
    inventory_testkit::drop_database(&admin, &case.database, workers).await;
    let url = inventory_testkit::create_database(&admin, &case.database, workers).await;

    let port = free_port()?;
    let mut env = opts.service_env.clone();
    if opts.soak.is_some() && !env.iter().any(|(k, _)| k == "REQUEST_TIMEOUT_MS") {
        // The ledger check after a soak replays millions of log rows: minutes, not seconds.
        env.push(("REQUEST_TIMEOUT_MS".to_owned(), "600000".to_owned()));
    }
    let service = start_service(&opts.service_binary, &url, port, &env)?;
    let service_pid = service.id();
    let outcome = async {
        let channel = wait_serving(&format!("http://127.0.0.1:{port}"), pb::SERVICE_NAME).await?;
        seed(&url, case.products).await?;
        vacuum(&url, opts.duration).await?;
        let run = run_service(case, opts, channel.clone(), service_pid).await?;
        let soaked = match opts.soak {
            Some(minutes) => {
                let rate = run.reservations_in_log as f64 / run.seconds * opts.soak_load;
                Some(soak(case, &url, channel.clone(), service_pid, rate, minutes).await?)
            }
            None => None,
        };
        let (oversold, drift) = check(&url, channel).await?;
        Ok::<_, String>((run, soaked, oversold, drift))
    }
    .await;
    stop_service(service);
    let (run, soaked, oversold, drift) = outcome?;

    let ((textbook, textbook_steal), (single, single_steal)) = if opts.baselines {
        // Each baseline starts from vacuumed rows, as the service run did, so the dead row
        // versions the previous run left behind do not count against it.
        vacuum(&url, opts.duration).await?;
        let textbook = pgbench(case, opts, &textbook_script(case.workload))?;
        let single = if case.workload == Workload::Orders {
            // One conditional statement cannot hold three rows all or none.
            (f64::NAN, f64::NAN)
        } else {
            vacuum(&url, opts.duration).await?;
            pgbench(case, opts, &single_statement_script(case.workload))?
        };
        (textbook, single)
    } else {
        ((f64::NAN, f64::NAN), (f64::NAN, f64::NAN))
    };
    inventory_testkit::drop_database(&admin, &case.database, workers).await;

    // Requests (reservations, or orders of three) per second, as the baselines count them.
    let per_sec = run.reservations_in_log as f64 / case.workload.lines() as f64 / run.seconds;
    let ratio = |baseline: f64| {
        if baseline > 0.0 {
            per_sec / baseline
        } else {
            f64::NAN
        }
    };
    Ok(serde_json::json!({
        "workload": case.workload.name(),
        "clients": case.clients,
        "products": case.products,
        "duration_s": run.seconds,
        "service_reservations_per_sec": per_sec,
        "reservations_in_log": run.reservations_in_log,
        "client_successes": run.client_successes,
        "rejections": run.rejections,
        "errors": run.errors,
        "p50_ms": ms(&run.histogram, 0.50),
        "p99_ms": ms(&run.histogram, 0.99),
        "max_ms": run.histogram.max() as f64 / 1000.0,
        "oversold": oversold,
        "ledger_drift": drift,
        "baseline_textbook_tps": textbook,
        "baseline_single_statement_tps": single,
        "ratio_vs_textbook": ratio(textbook),
        "ratio_vs_single_statement": ratio(single),
        "service_cpu_cores": run.service_cpu_seconds / run.seconds,
        "postgres_cpu_cores": run.postgres_cpu_seconds / run.seconds,
        "load_generator_cpu_cores": run.load_generator_cpu_seconds / run.seconds,
        "machine_busy_cores": run.machine_busy_cores,
        "machine_steal_cores": run.machine_steal_cores,
        "baseline_textbook_steal_cores": textbook_steal,
        "baseline_single_statement_steal_cores": single_steal,
        "db_commits_per_sec": run.commits_per_sec,
        "wal_syncs_per_sec": run.wal_syncs_per_sec,
        "soak": soaked,
    }))
}

/// A soak window's length.
const SOAK_WINDOW: Duration = Duration::from_secs(30);

/// Paced reservations at `rate` per second for `length`, sampled every [`SOAK_WINDOW`]; the
/// windows and a verdict (`flat`) as JSON.
async fn soak(
    case: &Case,
    url: &str,
    channel: Channel,
    service_pid: u32,
    rate: f64,
    length: Duration,
) -> Result<serde_json::Value, String> {
    let windows = usize::try_from(length.as_secs() / SOAK_WINDOW.as_secs())
        .unwrap_or(1)
        .max(2);
    let histograms: Arc<Vec<std::sync::Mutex<Histogram<u64>>>> = Arc::new(
        (0..windows)
            .map(|_| std::sync::Mutex::new(latency_histogram()))
            .collect(),
    );
    let picker = Arc::new(Picker::new(case.workload, case.products));
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let total = (rate * (windows as u64 * SOAK_WINDOW.as_secs()) as f64) as u64;
    let tag = Uuid::now_v7().simple().to_string();
    println!(
        "soak: {} at {rate:.0}/s from {} callers for {windows} windows of {}s",
        case.workload.name(),
        case.clients * 4,
        SOAK_WINDOW.as_secs()
    );
    let started = tokio::time::Instant::now();
    // More callers than the run had: a paced request must find one free when it is due.
    let callers = case.clients * 4;
    let tasks: Vec<_> = (0..callers)
        .map(|client| {
            let mut stub = StockServiceClient::new(channel.clone());
            let (picker, next, failures, histograms) = (
                picker.clone(),
                next.clone(),
                failures.clone(),
                histograms.clone(),
            );
            let (products, tag) = (case.products, tag.clone());
            tokio::spawn(async move {
                let mut rng =
                    Rng(0x2545_F491_4F6C_DD1D ^ ((client as u64 + 1) * 0x9E37_79B9_7F4A_7C15));
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return;
                    }
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due).await;
                    let request = pb::ReserveStockRequest {
                        request_id: Uuid::now_v7().to_string(),
                        order_id: format!("s-{tag}-{i}"),
                        line: Some(pb::ReservationLine {
                            order_line_id: "1".into(),
                            product_id: product_id(picker.pick(products, rng.unit())),
                            warehouse_id: WAREHOUSE.into(),
                            quantity: 1,
                        }),
                        expire_time: None,
                        actor: "bench".into(),
                    };
                    if stub.reserve_stock(request).await.is_err() {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX);
                    let window = usize::try_from((due - started).as_secs() / SOAK_WINDOW.as_secs())
                        .unwrap_or(0)
                        .min(histograms.len() - 1);
                    if let Ok(mut h) = histograms[window].lock() {
                        h.saturating_record(micros.max(1));
                    }
                }
            })
        })
        .collect();

    let mut stats = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(windows);
    for window in 0..windows {
        tokio::time::sleep_until(started + SOAK_WINDOW * u32::try_from(window + 1).unwrap_or(1))
            .await;
        let sessions: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'stock'",
        )
        .fetch_one(&mut stats)
        .await
        .map_err(|e| e.to_string())?;
        // The window's requests are all due by now; most have been answered.
        let h = histograms[window]
            .lock()
            .map_err(|_| "a client panicked".to_owned())?
            .clone();
        let sample = serde_json::json!({
            "window": window + 1,
            "per_sec": h.len() as f64 / SOAK_WINDOW.as_secs_f64(),
            "p50_ms": ms(&h, 0.50),
            "p99_ms": ms(&h, 0.99),
            "rss_mib": benchkit::process_rss_bytes(service_pid) as f64 / (1024.0 * 1024.0),
            "open_fds": benchkit::process_open_fds(service_pid),
            "db_sessions": sessions,
            "failures_so_far": failures.load(Ordering::Relaxed),
        });
        println!("soak window {sample}");
        samples.push(sample);
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())?;
    }
    let (second, last) = (&samples[1], &samples[samples.len() - 1]);
    let f = |s: &serde_json::Value, k: &str| s[k].as_f64().unwrap_or(f64::NAN);
    let flat = f(last, "rss_mib") <= f(second, "rss_mib") * 1.2 + 4.0
        && f(last, "open_fds") <= f(second, "open_fds") + 2.0
        && f(last, "p99_ms") <= f(second, "p99_ms") * 2.0 + 5.0
        && failures.load(Ordering::Relaxed) == 0;
    Ok(serde_json::json!({
        "rate_per_sec": rate,
        "windows": samples,
        "failures": failures.load(Ordering::Relaxed),
        "flat": flat,
    }))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("reservations bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut results = Vec::new();
    let mut failed = false;
    println!(
        "{:<8} {:>7} {:>12} {:>8} {:>8} {:>10} {:>10} {:>9} {:>9} {:>8} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>8}",
        "workload",
        "clients",
        "service/s",
        "p50 ms",
        "p99 ms",
        "textbook",
        "single",
        "x text",
        "x single",
        "oversold",
        "drift",
        "svc cpu",
        "pg cpu",
        "gen cpu",
        "busy",
        "steal",
        "tb steal"
    );
    for &workload in &opts.workloads {
        for &clients in &opts.clients {
            let case = Case {
                workload,
                clients,
                products: if workload == Workload::Hot {
                    1
                } else {
                    opts.products
                },
                database: format!("stock_bench_{}_{clients}", workload.name()),
            };
            match run_case(&case, &opts).await {
                Ok(r) => {
                    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
                    println!(
                        "{:<8} {:>7} {:>12.0} {:>8.2} {:>8.2} {:>10.0} {:>10.0} {:>9.2} {:>9.2} {:>8} {:>6} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>8.2}",
                        workload.name(),
                        clients,
                        f("service_reservations_per_sec"),
                        f("p50_ms"),
                        f("p99_ms"),
                        f("baseline_textbook_tps"),
                        f("baseline_single_statement_tps"),
                        f("ratio_vs_textbook"),
                        f("ratio_vs_single_statement"),
                        r["oversold"],
                        r["ledger_drift"],
                        f("service_cpu_cores"),
                        f("postgres_cpu_cores"),
                        f("load_generator_cpu_cores"),
                        f("machine_busy_cores"),
                        f("machine_steal_cores"),
                        f("baseline_textbook_steal_cores")
                    );
                    if r["oversold"].as_i64() != Some(0) || r["ledger_drift"].as_u64() != Some(0) {
                        eprintln!(
                            "FAILED: {} with {clients} clients oversold or drifted: {r}",
                            workload.name()
                        );
                        failed = true;
                    }
                    if r["soak"]["flat"] == serde_json::json!(false) {
                        eprintln!(
                            "FAILED: the soak of {} with {clients} clients did not stay flat: {}",
                            workload.name(),
                            r["soak"]
                        );
                        failed = true;
                    }
                    if r["errors"].as_u64() != Some(0) {
                        eprintln!(
                            "warning: {} calls failed with errors other than insufficient stock",
                            r["errors"]
                        );
                    }
                    results.push(r);
                }
                Err(e) => {
                    eprintln!("FAILED: {} with {clients} clients: {e}", workload.name());
                    failed = true;
                }
            }
        }
    }
    if let Some(path) = &opts.json {
        let body = serde_json::to_string_pretty(&results).unwrap_or_default();
        if let Err(e) = std::fs::write(path, body) {
            eprintln!("writing {path}: {e}");
            failed = true;
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
