//! A black-box stress run of stock's writes and its transaction feed, as clients behave:
//! writers of every movement kind, some with 1-3 ms deadlines so they are cancelled
//! mid-flight, requests that are refused, two requests racing for one order line,
//! transactions rolled back by hand, and service restarts (SIGTERM and SIGKILL in turn), while
//! readers keep reopening StreamTransactions from the start, from an event behind the head
//! and at the head.
//!
//! ```sh
//! cargo bench -p stock-service --bench feed_stress -- --duration 300 --writers 24 \
//!     --readers 8 --restart-every 60 --json target/feed-stress.json
//! ```
//!
//! At the end every stream is checked against the committed log in the feed's order (no skip,
//! no repeat, nothing the log lacks), and it prints: answers by status code (INTERNAL among
//! them), the service's warnings about transaction state and its internal errors (from its
//! log), streams opened and how many ended INTERNAL, writes per second, feed delivery latency
//! of live readers (events written after a stream at the head opened and caught up, from the
//! writing transaction's start to delivery: p50, p99), and the
//! feed's read throughput from the start of the log afterwards. Exits non-zero on any skip,
//! repeat, foreign event, INTERNAL answer or warning about transaction state.
//!
//! `--binary PATH` runs another stock-service build (an earlier release, to compare); the
//! default is this package's. With a binary from before feed cursors, streams resume from
//! sequences and the log's order is the sequence's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, ExitCode};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use inventory_benchkit::{
    Rng, free_port, latency_histogram, ms, start_service_logging, stop_service, wait_serving,
    workspace_path,
};
use inventory_proto::stock::v1 as pb;
use inventory_testkit::{TestDatabase, new_id};
use pb::stock_service_client::StockServiceClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

const SERVICE_BINARY: &str = env!("CARGO_BIN_EXE_stock-service");
const PRODUCTS: usize = 40;
const WAREHOUSES: usize = 3;
const OPENING_STOCK: i64 = 1_000_000;
/// A stream with nothing ready for this long has caught up with the log.
const CAUGHT_UP: Duration = Duration::from_millis(5);

struct Options {
    duration: Duration,
    writers: usize,
    readers: usize,
    restart_every: Option<Duration>,
    binary: String,
    coalescing: bool,
    /// Share of writes sent with a 1-3 ms deadline.
    cut_share: f64,
    json: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        duration: Duration::from_secs(60),
        writers: 24,
        readers: 8,
        restart_every: None,
        binary: SERVICE_BINARY.to_owned(),
        coalescing: true,
        cut_share: 0.25,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--duration" => o.duration = inventory_benchkit::seconds(&value()?)?,
            "--writers" => o.writers = value()?.parse().map_err(|_| "bad --writers")?,
            "--readers" => o.readers = value()?.parse().map_err(|_| "bad --readers")?,
            "--restart-every" => {
                o.restart_every =
                    Some(inventory_benchkit::seconds(&value()?)?).filter(|d| !d.is_zero())
            }
            "--binary" => o.binary = value()?,
            "--coalescing" => o.coalescing = value()? != "false",
            "--cut-share" => o.cut_share = value()?.parse().map_err(|_| "bad --cut-share")?,
            "--json" => o.json = Some(workspace_path(env!("CARGO_MANIFEST_DIR"), &value()?)),
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// What the run saw, shared by its tasks.
#[derive(Default)]
struct Tally {
    /// Writers' (and list calls') answers by status code.
    codes: Mutex<BTreeMap<String, u64>>,
    /// Writes answered OK.
    written: AtomicU64,
    /// Streams opened, and how each ended when not by the reader's choice.
    streams: AtomicU64,
    stream_ends: Mutex<BTreeMap<String, u64>>,
    /// Every stream's start (the event it resumed after) and what it delivered.
    sessions: Mutex<Vec<(Option<i64>, Vec<i64>)>>,
    /// Events seen by readers, with the cursor after each (empty from an older service).
    seen: Mutex<Vec<(i64, String)>>,
    /// Reservations granted and not yet released or shipped: (order, line, warehouse).
    granted: Mutex<Vec<(String, String, String)>>,
    latency: Mutex<Option<Histogram<u64>>>,
    rolled_back: AtomicU64,
}

impl Tally {
    fn count(&self, result: &Result<(), tonic::Status>) {
        let code = match result {
            Ok(()) => "OK".to_owned(),
            Err(status) => format!("{:?}", status.code()),
        };
        *self.codes.lock().expect("codes").entry(code).or_default() += 1;
    }
}

struct World {
    products: Vec<String>,
    warehouses: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("feed stress: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<bool, String> {
    let o = options()?;
    let database = TestDatabase::create().await;
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let log_path = std::env::temp_dir().join(format!("feed-stress-{}.log", new_id()));
    let env = vec![
        ("RESERVE_COALESCING".to_owned(), o.coalescing.to_string()),
        ("DATABASE_MAX_CONNECTIONS".to_owned(), "16".to_owned()),
        ("FEED_POLL_MS".to_owned(), "50".to_owned()),
    ];
    let start = |port: u16| -> Result<Child, String> {
        start_service_logging(&o.binary, &database.url, port, &env, Some(&log_path))
    };
    let service = Arc::new(Mutex::new(Some(start(port)?)));
    let channel = wait_serving(&url, "inventory.stock.v1.StockService").await?;
    let client = StockServiceClient::new(channel.clone());
    let world = Arc::new(seed(client.clone()).await?);
    println!(
        "stock at {url} ({}), {} products in {} warehouses; {} writers, {} readers, {} s{}",
        o.binary,
        PRODUCTS,
        WAREHOUSES,
        o.writers,
        o.readers,
        o.duration.as_secs(),
        o.restart_every
            .map(|d| format!(", a restart every {} s", d.as_secs()))
            .unwrap_or_default()
    );

    let tally = Arc::new(Tally {
        latency: Mutex::new(Some(latency_histogram())),
        ..Tally::default()
    });
    let stop_writing = Arc::new(AtomicBool::new(false));
    let stop_reading = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..o.writers {
        writers.push(tokio::spawn(writer(
            client.clone(),
            world.clone(),
            tally.clone(),
            stop_writing.clone(),
            Rng(0x9e37_79b9_7f4a_7c15 ^ (w as u64 + 1)),
            o.cut_share,
        )));
    }
    writers.push(tokio::spawn(rollbacks(
        database.url.clone(),
        world.clone(),
        tally.clone(),
        stop_writing.clone(),
    )));
    let mut readers = Vec::new();
    for r in 0..o.readers {
        readers.push(tokio::spawn(reader(
            client.clone(),
            tally.clone(),
            stop_reading.clone(),
            Rng(0x2545_f491_4f6c_dd1d ^ (r as u64 + 7)),
        )));
    }
    let mut restarts = 0;
    while started.elapsed() < o.duration {
        let next = o
            .restart_every
            .unwrap_or(o.duration)
            .min(o.duration.saturating_sub(started.elapsed()));
        tokio::time::sleep(next).await;
        if o.restart_every.is_some() && started.elapsed() < o.duration {
            restarts += 1;
            let old = service.lock().expect("service").take();
            if let Some(mut old) = old {
                if restarts % 2 == 0 {
                    let _ = old.kill();
                    let _ = old.wait();
                } else {
                    stop_service(old);
                }
            }
            *service.lock().expect("service") = Some(start(port)?);
            wait_serving(&url, "inventory.stock.v1.StockService").await?;
        }
    }
    stop_writing.store(true, Ordering::SeqCst);
    for writer in writers {
        let _ = writer.await;
    }
    let writing = started.elapsed();
    // Readers catch up with the last writes, then stop.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_reading.store(true, Ordering::SeqCst);
    for reader in readers {
        let _ = reader.await;
    }

    let (throughput, read_all) = read_everything(client.clone()).await?;
    if let Some(service) = service.lock().expect("service").take() {
        stop_service(service);
    }
    let service_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    let warnings = service_log
        .lines()
        .filter(|l| l.contains("transaction in progress") || l.contains("transaction is aborted"))
        .count();
    let internal_logged = service_log
        .lines()
        .filter(|l| l.contains("internal error"))
        .count();

    let log = committed_log(&database).await?;
    let check = check_sessions(&log, &tally.sessions.lock().expect("sessions"));
    let codes = tally.codes.lock().expect("codes").clone();
    let ends = tally.stream_ends.lock().expect("ends").clone();
    let latency = tally.latency.lock().expect("latency").take();
    let internal = codes.get("Internal").copied().unwrap_or(0);
    let written = tally.written.load(Ordering::SeqCst);
    println!(
        "answers: {}",
        codes
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "writes: {written} OK in {:.0} s = {:.0}/s; {} transactions rolled back by hand; {restarts} restarts",
        writing.as_secs_f64(),
        written as f64 / writing.as_secs_f64(),
        tally.rolled_back.load(Ordering::SeqCst)
    );
    println!(
        "streams: {} opened; ended by the service: {}",
        tally.streams.load(Ordering::SeqCst),
        if ends.is_empty() {
            "none".to_owned()
        } else {
            ends.iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    println!(
        "checked against the committed log ({} transactions, in {} order): {} streams, {} events: {} skips, {} repeats, {} foreign",
        log.order.len(),
        log.kind,
        check.sessions,
        check.events,
        check.skips,
        check.repeats,
        check.foreign
    );
    for example in &check.examples {
        println!("  {example}");
    }
    println!(
        "service log: {warnings} warnings about transaction state, {internal_logged} internal errors"
    );
    let (p50, p99) = latency
        .as_ref()
        .map_or((0.0, 0.0), |h| (ms(h, 0.5), ms(h, 0.99)));
    println!(
        "live delivery (writer's start to delivery): p50 {p50:.1} ms, p99 {p99:.1} ms over {} events",
        latency.as_ref().map_or(0, Histogram::len)
    );
    println!("feed read from the start afterwards: {read_all} events at {throughput:.0}/s");
    let clean = check.skips == 0
        && check.repeats == 0
        && check.foreign == 0
        && internal == 0
        && warnings == 0
        && !ends.contains_key("Internal");
    if let Some(path) = &o.json {
        let report = serde_json::json!({
            "binary": o.binary,
            "duration_seconds": writing.as_secs_f64(),
            "writers": o.writers,
            "readers": o.readers,
            "restarts": restarts,
            "answers": codes,
            "writes_ok": written,
            "writes_per_second": written as f64 / writing.as_secs_f64(),
            "streams": tally.streams.load(Ordering::SeqCst),
            "stream_ends": ends,
            "log_transactions": log.order.len(),
            "skips": check.skips,
            "repeats": check.repeats,
            "foreign": check.foreign,
            "transaction_state_warnings": warnings,
            "internal_errors_logged": internal_logged,
            "delivery_p50_ms": p50,
            "delivery_p99_ms": p99,
            "feed_read_events_per_second": throughput,
        });
        std::fs::write(path, report.to_string()).map_err(|e| format!("{path}: {e}"))?;
    }
    println!("{}", if clean { "clean" } else { "NOT CLEAN" });
    Ok(clean)
}

async fn seed(mut client: StockServiceClient<Channel>) -> Result<World, String> {
    let mut warehouses = Vec::new();
    for i in 0..WAREHOUSES {
        let w = client
            .create_warehouse(pb::CreateWarehouseRequest {
                request_id: new_id(),
                warehouse: Some(pb::Warehouse {
                    name: format!("Stress {i}"),
                    address: format!("Dock {i}"),
                    r#type: pb::WarehouseType::Fulfillment.into(),
                    location: Some(pb::GeoPoint {
                        latitude: 50.0 + i as f64,
                        longitude: 8.0,
                    }),
                    ..Default::default()
                }),
            })
            .await
            .map_err(|s| format!("create warehouse: {s}"))?
            .into_inner()
            .warehouse
            .ok_or("no warehouse")?;
        warehouses.push(w.warehouse_id);
    }
    let mut products = Vec::new();
    for i in 0..PRODUCTS {
        let p = client
            .create_product(pb::CreateProductRequest {
                request_id: new_id(),
                product: Some(pb::Product {
                    sku: format!("STRESS-{i}-{}", new_id()),
                    name: format!("Stress {i}"),
                    unit_of_measure: "each".into(),
                    ..Default::default()
                }),
            })
            .await
            .map_err(|s| format!("create product: {s}"))?
            .into_inner()
            .product
            .ok_or("no product")?;
        for w in &warehouses {
            client
                .receive_stock(pb::ReceiveStockRequest {
                    request_id: new_id(),
                    product_id: p.product_id.clone(),
                    warehouse_id: w.clone(),
                    quantity: OPENING_STOCK,
                    ..Default::default()
                })
                .await
                .map_err(|s| format!("opening stock: {s}"))?;
        }
        products.push(p.product_id);
    }
    Ok(World {
        products,
        warehouses,
    })
}

fn pick<'a>(rng: &mut Rng, from: &'a [String]) -> &'a String {
    &from[((rng.unit() * from.len() as f64) as usize).min(from.len() - 1)]
}

/// A request, cut short (1-3 ms) for a share of them.
fn request<T>(message: T, rng: &mut Rng, cut_share: f64) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if rng.unit() < cut_share {
        request.set_timeout(Duration::from_millis(1 + (rng.unit() * 3.0) as u64));
    } else {
        request.set_timeout(Duration::from_secs(5));
    }
    request
}

async fn writer(
    mut client: StockServiceClient<Channel>,
    world: Arc<World>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
    cut_share: f64,
) {
    while !stop.load(Ordering::SeqCst) {
        let (p, w) = (
            pick(&mut rng, &world.products).clone(),
            pick(&mut rng, &world.warehouses).clone(),
        );
        let line = |order_line_id: &str, product_id: &str, quantity: i64| pb::ReservationLine {
            order_line_id: order_line_id.to_owned(),
            product_id: product_id.to_owned(),
            warehouse_id: w.clone(),
            quantity,
        };
        let kind = (rng.unit() * 10.0) as u32;
        let result: Result<(), tonic::Status> = match kind {
            0 => client
                .receive_stock(request(
                    pb::ReceiveStockRequest {
                        request_id: new_id(),
                        product_id: p.clone(),
                        warehouse_id: w.clone(),
                        quantity: 1 + (rng.unit() * 5.0) as i64,
                        reference_id: "PO-STRESS".into(),
                        ..Default::default()
                    },
                    &mut rng,
                    cut_share,
                ))
                .await
                .map(drop),
            1 | 2 => {
                let order = new_id();
                let answer = client
                    .reserve_stock(request(
                        pb::ReserveStockRequest {
                            request_id: new_id(),
                            order_id: order.clone(),
                            line: Some(line("1", &p, 1)),
                            ..Default::default()
                        },
                        &mut rng,
                        cut_share,
                    ))
                    .await;
                if answer.is_ok() {
                    tally
                        .granted
                        .lock()
                        .expect("granted")
                        .push((order, "1".into(), w.clone()));
                }
                answer.map(drop)
            }
            3 => {
                let order = new_id();
                let other = pick(&mut rng, &world.products).clone();
                let mut lines = vec![line("1", &p, 1)];
                if other != p {
                    lines.push(line("2", &other, 2));
                }
                client
                    .reserve_order(request(
                        pb::ReserveOrderRequest {
                            request_id: new_id(),
                            order_id: order,
                            lines,
                            ..Default::default()
                        },
                        &mut rng,
                        cut_share,
                    ))
                    .await
                    .map(drop)
            }
            4 | 5 => {
                let held = tally.granted.lock().expect("granted").pop();
                match held {
                    Some((order, line_id, warehouse)) if kind == 4 => client
                        .release_reservation(request(
                            pb::ReleaseReservationRequest {
                                request_id: new_id(),
                                order_id: order,
                                order_line_id: line_id,
                                warehouse_id: warehouse,
                                reason: "stress".into(),
                                ..Default::default()
                            },
                            &mut rng,
                            cut_share,
                        ))
                        .await
                        .map(drop),
                    Some((order, line_id, warehouse)) => client
                        .ship_reservation(request(
                            pb::ShipReservationRequest {
                                request_id: new_id(),
                                order_id: order,
                                order_line_id: line_id,
                                warehouse_id: warehouse,
                                quantity: 1,
                                ..Default::default()
                            },
                            &mut rng,
                            cut_share,
                        ))
                        .await
                        .map(drop),
                    None => continue,
                }
            }
            6 => {
                let to = pick(&mut rng, &world.warehouses).clone();
                if to == w {
                    continue;
                }
                client
                    .transfer_stock(request(
                        pb::TransferStockRequest {
                            request_id: new_id(),
                            product_id: p.clone(),
                            from_warehouse_id: w.clone(),
                            to_warehouse_id: to,
                            quantity: 1,
                            ..Default::default()
                        },
                        &mut rng,
                        cut_share,
                    ))
                    .await
                    .map(drop)
            }
            7 => client
                .adjust_stock(request(
                    pb::AdjustStockRequest {
                        request_id: new_id(),
                        product_id: p.clone(),
                        warehouse_id: w.clone(),
                        quantity_delta: if rng.unit() < 0.5 { -1 } else { 1 },
                        reason: "cycle count".into(),
                        ..Default::default()
                    },
                    &mut rng,
                    cut_share,
                ))
                .await
                .map(drop),
            8 => {
                // Refused: more than anyone holds.
                client
                    .reserve_stock(request(
                        pb::ReserveStockRequest {
                            request_id: new_id(),
                            order_id: new_id(),
                            line: Some(line("1", &p, OPENING_STOCK * 100)),
                            ..Default::default()
                        },
                        &mut rng,
                        cut_share,
                    ))
                    .await
                    .map(drop)
            }
            _ => {
                // Two requests racing for one order line: one wins, the other is refused.
                let order = new_id();
                let race = |mut client: StockServiceClient<Channel>, rng: &mut Rng| {
                    let message = request(
                        pb::ReserveStockRequest {
                            request_id: new_id(),
                            order_id: order.clone(),
                            line: Some(line("1", &p, 1)),
                            ..Default::default()
                        },
                        rng,
                        cut_share,
                    );
                    async move { client.reserve_stock(message).await.map(drop) }
                };
                let (a, b) = tokio::join!(
                    race(client.clone(), &mut rng.clone_state()),
                    race(client.clone(), &mut rng)
                );
                tally.count(&a);
                b
            }
        };
        if result.is_ok() {
            tally.written.fetch_add(1, Ordering::Relaxed);
        }
        tally.count(&result);
    }
}

trait CloneState {
    fn clone_state(&self) -> Self;
}

impl CloneState for Rng {
    fn clone_state(&self) -> Self {
        Rng(self.0.rotate_left(17) | 1)
    }
}

/// Transactions that write a row and a log row by hand and roll back (each burns a sequence
/// number and holds an xid for a moment).
async fn rollbacks(url: String, world: Arc<World>, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    use sqlx::Connection;
    let Ok(mut db) = sqlx::PgConnection::connect(&url).await else {
        return;
    };
    let mut rng = Rng(0x51_7cc1_b727_220a);
    while !stop.load(Ordering::SeqCst) {
        let (p, w) = (
            pick(&mut rng, &world.products),
            pick(&mut rng, &world.warehouses),
        );
        match rolled_back(&mut db, p, w).await {
            Ok(()) => {
                tally.rolled_back.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                if tally.rolled_back.load(Ordering::Relaxed) == 0 {
                    eprintln!("a transaction to roll back failed: {error}");
                }
                if let Ok(again) = sqlx::PgConnection::connect(&url).await {
                    db = again;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn rolled_back(db: &mut sqlx::PgConnection, p: &str, w: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut tx = db.begin().await?;
    // The log's sequence default names its sequence as the service's schema sees it.
    sqlx::query("SET LOCAL search_path = stock")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE stock.inventory SET quantity_on_hand = quantity_on_hand + 1
          WHERE product_id = $1::uuid AND warehouse_id = $2::uuid",
    )
    .bind(p)
    .bind(w)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO stock.inventory_transactions (txn_id, product_id, warehouse_id, txn_type,
             quantity, on_hand_delta, reserved_delta, on_hand_after, reserved_after, request_id)
         SELECT gen_random_uuid(), product_id, warehouse_id, 'RECEIVE', 1, 1, 0,
                quantity_on_hand, quantity_reserved, 'rolled-back'
           FROM stock.inventory WHERE product_id = $1::uuid AND warehouse_id = $2::uuid",
    )
    .bind(p)
    .bind(w)
    .execute(&mut *tx)
    .await?;
    tokio::time::sleep(Duration::from_millis(2)).await;
    tx.rollback().await
}

async fn reader(
    mut client: StockServiceClient<Channel>,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
) {
    while !stop.load(Ordering::SeqCst) {
        // From the start now and then, mostly behind the head or at it.
        // `live`: at the head, where delivery latency is measured.
        let (start, live): (Option<(i64, String)>, bool) = {
            let seen = tally.seen.lock().expect("seen");
            let roll = rng.unit();
            if seen.is_empty() || roll < 0.1 {
                (None, false)
            } else if roll < 0.55 {
                let i = (rng.unit() * seen.len() as f64) as usize;
                (seen.get(i.min(seen.len() - 1)).cloned(), false)
            } else {
                (seen.last().cloned(), true)
            }
        };
        let request = match &start {
            None => pb::StreamTransactionsRequest::default(),
            Some((_, cursor)) if !cursor.is_empty() => pb::StreamTransactionsRequest {
                after_cursor: cursor.clone(),
                ..Default::default()
            },
            Some((sequence, _)) => pb::StreamTransactionsRequest {
                after_sequence: *sequence,
                ..Default::default()
            },
        };
        tally.streams.fetch_add(1, Ordering::Relaxed);
        // Latency counts only events written after the stream opened (not a backlog).
        let opened = std::time::SystemTime::now();
        let mut delivered = Vec::new();
        let mut fresh = Vec::new();
        let until = Instant::now() + Duration::from_millis(100 + (rng.unit() * 1900.0) as u64);
        match client.stream_transactions(request).await {
            Err(status) => end(&tally, &status),
            Ok(stream) => {
                let mut stream = stream.into_inner();
                // Caught up once the stream has nothing ready for a moment: latency is
                // measured from then on, not while the backlog behind the cursor drains.
                let mut caught_up = false;
                while Instant::now() < until {
                    let next = match tokio::time::timeout(CAUGHT_UP, stream.next()).await {
                        Ok(next) => Ok(next),
                        Err(_) => {
                            caught_up = true;
                            tokio::time::timeout_at(until.into(), stream.next()).await
                        }
                    };
                    match next {
                        Err(_) | Ok(None) => break,
                        Ok(Some(Err(status))) => {
                            end(&tally, &status);
                            break;
                        }
                        Ok(Some(Ok(message))) => {
                            let Some(txn) = message.transaction else {
                                continue;
                            };
                            delivered.push(txn.sequence);
                            if live
                                && caught_up
                                && let Some(at) = txn.create_time
                            {
                                let written = std::time::UNIX_EPOCH
                                    + Duration::new(
                                        at.seconds.max(0) as u64,
                                        at.nanos.max(0) as u32,
                                    );
                                if written >= opened
                                    && let Ok(age) =
                                        std::time::SystemTime::now().duration_since(written)
                                {
                                    let micros = u64::try_from(age.as_micros()).unwrap_or(u64::MAX);
                                    if let Some(h) = tally.latency.lock().expect("latency").as_mut()
                                    {
                                        let _ = h.record(micros.max(1));
                                    }
                                }
                            }
                            fresh.push((txn.sequence, message.cursor));
                        }
                    }
                }
            }
        }
        // A bounded sample of where readers have been, for later streams to resume from.
        {
            let mut seen = tally.seen.lock().expect("seen");
            seen.extend(fresh.into_iter().rev().take(64).rev());
            let excess = seen.len().saturating_sub(4096);
            seen.drain(..excess);
        }
        tally
            .sessions
            .lock()
            .expect("sessions")
            .push((start.map(|(s, _)| s), delivered));
        // Now and then a read of the log's pages, as an operator's screen does.
        if rng.unit() < 0.2 {
            let listed = client
                .list_transactions(pb::ListTransactionsRequest {
                    page_size: 100,
                    ..Default::default()
                })
                .await
                .map(drop);
            tally.count(&listed);
        }
    }
}

fn end(tally: &Tally, status: &tonic::Status) {
    *tally
        .stream_ends
        .lock()
        .expect("ends")
        .entry(format!("{:?}", status.code()))
        .or_default() += 1;
}

/// Reads the whole log through the feed; (events per second, events).
async fn read_everything(mut client: StockServiceClient<Channel>) -> Result<(f64, u64), String> {
    let started = Instant::now();
    let mut stream = client
        .stream_transactions(pb::StreamTransactionsRequest::default())
        .await
        .map_err(|s| format!("feed: {s}"))?
        .into_inner();
    let mut events = 0_u64;
    let mut last = Instant::now();
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(500), stream.next()).await
    {
        item.map_err(|s| format!("feed: {s}"))?;
        events += 1;
        last = Instant::now();
    }
    let took = (last - started).as_secs_f64().max(1e-6);
    Ok((events as f64 / took, events))
}

/// The committed log in the feed's order.
struct Log {
    kind: &'static str,
    order: Vec<i64>,
}

async fn committed_log(database: &TestDatabase) -> Result<Log, String> {
    let mut db = database.connect("stock").await;
    let by_writer: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'stock'
            AND table_name = 'inventory_transactions' AND column_name = 'writer_xid')",
    )
    .fetch_one(&mut db)
    .await
    .map_err(|e| e.to_string())?;
    let (kind, sql) = if by_writer {
        (
            "(writer, sequence)",
            "SELECT sequence FROM inventory_transactions ORDER BY writer_xid, sequence",
        )
    } else {
        (
            "sequence",
            "SELECT sequence FROM inventory_transactions ORDER BY sequence",
        )
    };
    let order = sqlx::query_scalar(sql)
        .fetch_all(&mut db)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Log { kind, order })
}

#[derive(Default)]
struct Check {
    sessions: usize,
    events: usize,
    skips: usize,
    repeats: usize,
    foreign: usize,
    examples: Vec<String>,
}

/// Each stream must deliver the committed log right after the event it resumed after, in
/// order: the first difference is a skip (a later event came instead), a repeat (an event at
/// or before its start, or delivered twice) or foreign (not in the log).
fn check_sessions(log: &Log, sessions: &[(Option<i64>, Vec<i64>)]) -> Check {
    let index: HashMap<i64, usize> = log.order.iter().enumerate().map(|(i, s)| (*s, i)).collect();
    let mut check = Check::default();
    for (start, delivered) in sessions {
        check.sessions += 1;
        check.events += delivered.len();
        let first = match start {
            None => 0,
            Some(after) => match index.get(after) {
                Some(i) => i + 1,
                None => {
                    check.foreign += 1;
                    continue;
                }
            },
        };
        let mut once = HashSet::new();
        for (k, sequence) in delivered.iter().enumerate() {
            if log.order.get(first + k) == Some(sequence) {
                once.insert(*sequence);
                continue;
            }
            let expected = log.order.get(first + k).copied();
            let problem = match index.get(sequence) {
                None => {
                    check.foreign += 1;
                    "foreign"
                }
                Some(&at) if at < first + k || once.contains(sequence) => {
                    check.repeats += 1;
                    "repeat"
                }
                Some(_) => {
                    check.skips += 1;
                    "skip"
                }
            };
            if check.examples.len() < 5 {
                check.examples.push(format!(
                    "{problem}: a stream after {start:?} delivered {sequence} where the log has {expected:?} (event {k} of the stream)"
                ));
            }
            break;
        }
    }
    check
}
