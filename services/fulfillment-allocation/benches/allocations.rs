//! AllocateOrder end to end: the release fulfillment-allocation and stock binaries as their
//! own processes on one database, 3-line orders over 10,000 products in 8 German warehouses,
//! beside a pgbench baseline on the same rows.
//!
//! ```sh
//! cargo bench -p fulfillment-allocation-service --bench allocations -- --json target/allocations.json
//! ```
//!
//! For each client count it creates a fresh database, starts stock and allocation, seeds the
//! warehouses, products and stock (through the log, so the ledger stays whole; every product
//! is in Frankfurt, each other warehouse holds about 60% of them), then N clients send
//! AllocateOrder (three distinct random products, one unit each, a random destination in
//! Germany) for a fixed time. It counts the allocations stored, checks that stock's holds equal
//! what allocation recorded, that nothing is oversold and that stock's ledger check is clean
//! (exit non-zero otherwise), then runs the textbook order transaction with pgbench: lock the
//! 3 rows FOR UPDATE in order, check, update them, write the log rows, commit.
//! Before the measured run the clients send orders for `--warmup` seconds (2; 0 for none),
//! not counted: a freshly started PostgreSQL otherwise spends the first seconds creating WAL
//! segments, with commit stalls that no later run pays, and the services fill their pools.
//! Options: `--clients 16,64`, `--duration 8`, `--warmup 2`, `--products 10000`, `--json PATH`,
//! `--no-baselines`, `--server-url` (or `BENCH_DATABASE_URL`), `--service-env KEY=VALUE`
//! (repeatable: a setting for both services, `ALLOCATE_BATCHES=false` say).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use inventory_benchkit::{
    MachineCpu, PRODUCT_ID_PREFIX, Rng, WAREHOUSE_ID_PREFIX, admin, client_counts, execute,
    free_port, latency_histogram, ms, numbered_uuid_sql, pgbench, postgres_cpu_seconds,
    process_cpu_seconds, ready_wal, seconds, start_service, stop_service, wait_serving,
    workspace_path,
};
use inventory_proto::allocation::v1 as pb;
use inventory_proto::allocation::v1::allocation_service_client::AllocationServiceClient;
use inventory_proto::stock::v1 as stock;
use sqlx::Connection;
use uuid::Uuid;

const ALLOCATION_BINARY: &str = env!("CARGO_BIN_EXE_fulfillment-allocation-service");
const STOCK_PER_ROW: i64 = 100_000_000;
/// Name, latitude, longitude. Frankfurt holds every product.
const WAREHOUSES: [(&str, f64, f64); 8] = [
    ("Berlin", 52.52, 13.405),
    ("Hamburg", 53.551, 9.994),
    ("Munich", 48.137, 11.575),
    ("Cologne", 50.938, 6.96),
    ("Frankfurt", 50.11, 8.682),
    ("Leipzig", 51.34, 12.375),
    ("Stuttgart", 48.776, 9.183),
    ("Hanover", 52.375, 9.732),
];
const CENTRAL: usize = 4;

struct Options {
    clients: Vec<usize>,
    duration: Duration,
    warmup: Duration,
    products: usize,
    server_url: String,
    json: Option<String>,
    baselines: bool,
    /// Extra settings for both services (`--service-env KEY=VALUE`, repeatable).
    service_env: Vec<(String, String)>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        clients: vec![16, 64],
        duration: Duration::from_secs(8),
        warmup: Duration::from_secs(2),
        products: 10_000,
        server_url: std::env::var("BENCH_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned()),
        json: None,
        baselines: true,
        service_env: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--clients" => o.clients = client_counts(&value()?)?,
            "--duration" => o.duration = seconds(&value()?)?,
            "--warmup" => o.warmup = seconds(&value()?)?,
            "--products" => o.products = value()?.parse().map_err(|_| "bad --products")?,
            "--server-url" => o.server_url = value()?,
            "--json" => o.json = Some(workspace_path(env!("CARGO_MANIFEST_DIR"), &value()?)),
            "--no-baselines" => o.baselines = false,
            "--service-env" => {
                let pair = value()?;
                let (k, v) = pair
                    .split_once('=')
                    .ok_or("--service-env wants KEY=VALUE")?;
                o.service_env.push((k.to_owned(), v.to_owned()));
            }
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// The stock-service binary beside this bench's, built (release) if needed.
fn stock_binary() -> Result<String, String> {
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "stock-service",
            "--bin",
            "stock-service",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .status()
        .map_err(|e| format!("cargo build stock-service: {e}"))?;
    if !status.success() {
        return Err("cargo build stock-service failed".into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let release = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or("no target directory")?;
    Ok(release.join("stock-service").display().to_string())
}

fn warehouse_id(w: usize) -> String {
    format!("{WAREHOUSE_ID_PREFIX}{:012x}", w + 1)
}

fn product_id(n: usize) -> String {
    format!("{PRODUCT_ID_PREFIX}{n:012x}")
}

async fn seed(url: &str, products: usize) -> Result<(), String> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let warehouses: Vec<String> = WAREHOUSES
        .iter()
        .enumerate()
        .map(|(w, (name, lat, lon))| {
            format!(
                "('{}', '{name}', 'FULFILLMENT', {lat}, {lon})",
                warehouse_id(w)
            )
        })
        .collect();
    execute(
        &mut conn,
        format!(
            "SET search_path = stock;
             INSERT INTO warehouses (warehouse_id, name, warehouse_type, latitude, longitude)
                  VALUES {warehouses};
             INSERT INTO products (product_id, sku, name, unit_of_measure, unit_cost_micros)
                  SELECT {product}, 'BENCH-' || n, 'Bench product ' || n, 'each', 1000000
                    FROM generate_series(1, {products}) AS n;
             INSERT INTO inventory (product_id, warehouse_id, quantity_on_hand)
                  SELECT p.product_id, w.warehouse_id, {STOCK_PER_ROW}
                    FROM products p CROSS JOIN warehouses w
                   WHERE w.warehouse_id = '{central}'
                      OR abs(hashtext(p.sku || w.name)) % 10 < 6;
             INSERT INTO inventory_transactions (txn_id, product_id, warehouse_id, txn_type,
                     quantity, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
                     reference_id, request_id)
                  SELECT gen_random_uuid(), product_id, warehouse_id, 'RECEIVE', {STOCK_PER_ROW},
                         {STOCK_PER_ROW}, 0, {STOCK_PER_ROW}, 0, 'bench-seed', 'bench-seed'
                    FROM inventory ORDER BY product_id, warehouse_id;",
            warehouses = warehouses.join(", "),
            product = numbered_uuid_sql(PRODUCT_ID_PREFIX, "n"),
            central = warehouse_id(CENTRAL),
        ),
    )
    .await?;
    // Apart: VACUUM cannot run inside the implicit transaction of a multi-statement string.
    execute(
        &mut conn,
        "VACUUM ANALYZE stock.inventory, stock.inventory_transactions, stock.products, stock.warehouses"
            .to_owned(),
    )
    .await
}

struct Run {
    allocations: u64,
    successes: u64,
    rejections: u64,
    errors: u64,
    histogram: hdrhistogram::Histogram<u64>,
    seconds: f64,
    stock_cpu: f64,
    allocation_cpu: f64,
    postgres_cpu: f64,
    generator_cpu: f64,
    busy_cores: f64,
    steal_cores: f64,
}

async fn drive(
    url: &str,
    channel: tonic::transport::Channel,
    clients: usize,
    products: usize,
    duration: Duration,
    pids: (u32, u32),
) -> Result<Run, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let tag = Uuid::now_v7().simple().to_string();
    let before = (
        process_cpu_seconds(pids.0),
        process_cpu_seconds(pids.1),
        postgres_cpu_seconds(),
        process_cpu_seconds(std::process::id()),
        MachineCpu::now(),
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let mut stub = AllocationServiceClient::new(channel.clone());
            let (stop, counts, tag) = (stop.clone(), counts.clone(), tag.clone());
            tokio::spawn(async move {
                let mut histogram = latency_histogram();
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((client as u64 + 1) * 0x2545_F491));
                let mut i = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut picked: Vec<usize> = Vec::with_capacity(3);
                    while picked.len() < 3 {
                        let n = 1 + (rng.unit() * products as f64) as usize;
                        if !picked.contains(&n) {
                            picked.push(n);
                        }
                    }
                    let request = pb::AllocateOrderRequest {
                        request_id: Uuid::now_v7().to_string(),
                        order_id: format!("b-{tag}-{client}-{i}"),
                        destination: Some(pb::Destination {
                            latitude: 47.5 + 7.0 * rng.unit(),
                            longitude: 6.0 + 8.5 * rng.unit(),
                            ..Default::default()
                        }),
                        lines: picked
                            .iter()
                            .enumerate()
                            .map(|(line, n)| pb::OrderLine {
                                order_line_id: line.to_string(),
                                product_id: product_id(*n),
                                quantity: 1,
                            })
                            .collect(),
                        options: None,
                        actor: "bench".to_owned(),
                    };
                    let sent = Instant::now();
                    let result = stub.allocate_order(request).await;
                    let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                    histogram.saturating_record(micros.max(1));
                    let slot = match &result {
                        Ok(_) => 0,
                        Err(s) if s.code() == tonic::Code::FailedPrecondition => 1,
                        Err(s) => {
                            if i < 3 {
                                eprintln!("allocation failed: {s:?}");
                            }
                            2
                        }
                    };
                    counts[slot].fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
                histogram
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut histogram = latency_histogram();
    for task in tasks {
        histogram
            .add(task.await.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let machine = MachineCpu::now();
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM allocation.allocations WHERE order_id LIKE $1")
            .bind(format!("b-{tag}-%"))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
    let (busy_cores, steal_cores) = machine.cores_since(&before.4);
    Ok(Run {
        allocations: u64::try_from(stored).unwrap_or(0),
        successes: counts[0].load(Ordering::Relaxed),
        rejections: counts[1].load(Ordering::Relaxed),
        errors: counts[2].load(Ordering::Relaxed),
        histogram,
        seconds,
        stock_cpu: process_cpu_seconds(pids.0) - before.0,
        allocation_cpu: process_cpu_seconds(pids.1) - before.1,
        postgres_cpu: postgres_cpu_seconds() - before.2,
        generator_cpu: process_cpu_seconds(std::process::id()) - before.3,
        busy_cores,
        steal_cores,
    })
}

/// (oversold rows, ledger drifts, units held in stock minus units allocation recorded).
async fn check(
    url: &str,
    stock_channel: tonic::transport::Channel,
) -> Result<(i64, usize, i64), String> {
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let oversold: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM stock.inventory
          WHERE quantity_reserved > quantity_on_hand OR quantity_available < 0",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    let mismatch: i64 = sqlx::query_scalar(
        "SELECT (SELECT coalesce(sum(quantity_held), 0) FROM stock.reservations
                  WHERE status = 'ACTIVE')::bigint
              - (SELECT coalesce(sum(quantity), 0) FROM allocation.allocation_lines)::bigint",
    )
    .fetch_one(&mut conn)
    .await
    .map_err(|e| e.to_string())?;
    let ledger = stock::stock_service_client::StockServiceClient::new(stock_channel)
        .check_ledger(stock::CheckLedgerRequest {})
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    Ok((oversold, ledger.drifts.len(), mismatch))
}

/// The textbook order transaction on the central warehouse's rows.
fn textbook_script() -> String {
    let row = |v: &str| numbered_uuid_sql(PRODUCT_ID_PREFIX, &format!(":{v}::bigint"));
    let central = warehouse_id(CENTRAL);
    let log = |v: &str, on_hand: &str, reserved: &str| {
        format!(
            "INSERT INTO inventory_transactions (txn_id, product_id, warehouse_id, txn_type, quantity,
    on_hand_delta, reserved_delta, on_hand_after, reserved_after, reference_id, request_id)
  VALUES (gen_random_uuid(), {}, '{central}', 'RESERVE', 1, 0, 1, :{on_hand}, :{reserved} + 1,
    'pgbench-textbook', 'pgbench-textbook');",
            row(v)
        )
    };
    let update = |v: &str| {
        format!(
            "UPDATE inventory SET quantity_reserved = quantity_reserved + 1, last_updated = now()
  WHERE product_id = {} AND warehouse_id = '{central}';",
            row(v)
        )
    };
    let select = |v: &str, i: usize| {
        format!(
            "SELECT quantity_on_hand - quantity_reserved AS a{i}, quantity_on_hand AS h{i}, quantity_reserved AS r{i}
  FROM inventory WHERE product_id = {} AND warehouse_id = '{central}' FOR UPDATE \\gset",
            row(v)
        )
    };
    // Three distinct products in ascending order, so the rows lock in one order.
    format!(
        "\\set x random(1, :products - 2)
\\set y random(:x + 1, :products - 1)
\\set z random(:y + 1, :products)
BEGIN;
{}
{}
{}
\\if :a1 >= 1 and :a2 >= 1 and :a3 >= 1
{}
{}
{}
{}
{}
{}
\\endif
COMMIT;
",
        select("x", 1),
        select("y", 2),
        select("z", 3),
        update("x"),
        update("y"),
        update("z"),
        log("x", "h1", "r1"),
        log("y", "h2", "r2"),
        log("z", "h3", "r3"),
    )
}

async fn run_case(
    clients: usize,
    opts: &Options,
    stock_binary: &str,
) -> Result<serde_json::Value, String> {
    let database = format!("allocation_bench_{clients}");
    let mut admin = admin(&opts.server_url).await?;
    execute(
        &mut admin,
        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
    )
    .await?;
    execute(&mut admin, format!("CREATE DATABASE {database}")).await?;
    let url = format!("{}/{database}", opts.server_url);
    let (stock_port, allocation_port) = (free_port()?, free_port()?);
    let stock_service = start_service(stock_binary, &url, stock_port, &opts.service_env)?;
    let stock_pid = stock_service.id();
    let stock_url = format!("http://127.0.0.1:{stock_port}");
    let mut allocation_service = None;
    let outcome = async {
        let stock_channel = wait_serving(&stock_url, stock::SERVICE_NAME).await?;
        seed(&url, opts.products).await?;
        let service = start_service(
            ALLOCATION_BINARY,
            &url,
            allocation_port,
            &[
                opts.service_env.as_slice(),
                &[("STOCK_URL".to_owned(), stock_url.clone())],
            ]
            .concat(),
        )?;
        let allocation_pid = service.id();
        allocation_service = Some(service);
        let channel = wait_serving(
            &format!("http://127.0.0.1:{allocation_port}"),
            pb::SERVICE_NAME,
        )
        .await?;
        if !opts.warmup.is_zero() {
            drive(
                &url,
                channel.clone(),
                clients,
                opts.products,
                opts.warmup,
                (stock_pid, allocation_pid),
            )
            .await?;
        }
        // Each measured run starts on a fresh checkpoint, so none pays for the writes of
        // the one before it, with its WAL segments ready.
        ready_wal(&mut admin, opts.duration).await?;
        let run = drive(
            &url,
            channel,
            clients,
            opts.products,
            opts.duration,
            (stock_pid, allocation_pid),
        )
        .await?;
        let checked = check(&url, stock_channel).await?;
        Ok::<_, String>((run, checked))
    }
    .await;
    if let Some(service) = allocation_service {
        stop_service(service);
    }
    stop_service(stock_service);
    let (run, (oversold, drift, mismatch)) = outcome?;
    let textbook = if opts.baselines {
        execute(
            &mut sqlx::PgConnection::connect(&url)
                .await
                .map_err(|e| e.to_string())?,
            "VACUUM ANALYZE stock.inventory, stock.inventory_transactions".to_owned(),
        )
        .await?;
        ready_wal(&mut admin, opts.duration).await?;
        pgbench(
            &url,
            "stock",
            clients,
            opts.duration,
            &[("products", opts.products.to_string())],
            &textbook_script(),
        )?
    } else {
        f64::NAN
    };
    execute(
        &mut admin,
        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
    )
    .await?;
    let per_sec = run.allocations as f64 / run.seconds;
    Ok(serde_json::json!({
        "clients": clients,
        "products": opts.products,
        "warehouses": WAREHOUSES.len(),
        "duration_s": run.seconds,
        "orders_per_sec": per_sec,
        "allocations_stored": run.allocations,
        "client_successes": run.successes,
        "rejections": run.rejections,
        "errors": run.errors,
        "p50_ms": ms(&run.histogram, 0.50),
        "p99_ms": ms(&run.histogram, 0.99),
        "max_ms": run.histogram.max() as f64 / 1000.0,
        "oversold": oversold,
        "ledger_drift": drift,
        "held_minus_allocated": mismatch,
        "baseline_textbook_tps": textbook,
        "ratio_vs_textbook": per_sec / textbook,
        "stock_cpu_cores": run.stock_cpu / run.seconds,
        "allocation_cpu_cores": run.allocation_cpu / run.seconds,
        "postgres_cpu_cores": run.postgres_cpu / run.seconds,
        "load_generator_cpu_cores": run.generator_cpu / run.seconds,
        "machine_busy_cores": run.busy_cores,
        "machine_steal_cores": run.steal_cores,
    }))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("allocations bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let stock_binary = match stock_binary() {
        Ok(path) => path,
        Err(e) => {
            eprintln!("allocations bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!(
        "{:>7} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>6} {:>6} {:>9} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6}",
        "clients",
        "orders/s",
        "p50 ms",
        "p99 ms",
        "textbook",
        "x text",
        "oversold",
        "drift",
        "held",
        "rejected",
        "alloc",
        "stock",
        "pg",
        "gen",
        "busy",
        "steal"
    );
    let mut results = Vec::new();
    let mut failed = false;
    for &clients in &opts.clients {
        match run_case(clients, &opts, &stock_binary).await {
            Ok(r) => {
                let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
                println!(
                    "{:>7} {:>9.0} {:>8.2} {:>8.2} {:>9.0} {:>8.2} {:>8} {:>6} {:>6} {:>9} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>6.2} {:>6.2}",
                    clients,
                    f("orders_per_sec"),
                    f("p50_ms"),
                    f("p99_ms"),
                    f("baseline_textbook_tps"),
                    f("ratio_vs_textbook"),
                    r["oversold"],
                    r["ledger_drift"],
                    r["held_minus_allocated"],
                    r["rejections"],
                    f("allocation_cpu_cores"),
                    f("stock_cpu_cores"),
                    f("postgres_cpu_cores"),
                    f("load_generator_cpu_cores"),
                    f("machine_busy_cores"),
                    f("machine_steal_cores"),
                );
                if r["oversold"].as_i64() != Some(0)
                    || r["ledger_drift"].as_u64() != Some(0)
                    || r["held_minus_allocated"].as_i64() != Some(0)
                {
                    eprintln!(
                        "FAILED: {clients} clients: oversold, drift or holds not matching: {r}"
                    );
                    failed = true;
                }
                if r["errors"].as_u64() != Some(0) {
                    eprintln!("warning: {} calls failed with other errors", r["errors"]);
                }
                results.push(r);
            }
            Err(e) => {
                eprintln!("FAILED: {clients} clients: {e}");
                failed = true;
            }
        }
    }
    if let Some(path) = &opts.json
        && let Err(e) = std::fs::write(
            path,
            serde_json::to_string_pretty(&results).unwrap_or_default(),
        )
    {
        eprintln!("writing {path}: {e}");
        failed = true;
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
