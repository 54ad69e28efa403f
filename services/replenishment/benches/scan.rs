//! How fast the reorder scan and the demand feed are, on a real PostgreSQL.
//!
//! ```sh
//! cargo bench -p replenishment-service --bench scan -- --json target/scan.json
//! ```
//!
//! Scan: a fresh database with `--pairs` (1,000,000) (product, warehouse) rows in 8
//! warehouses, each with a policy (point 100, quantity 500), a stock position and a supplier
//! offer; 1% of the positions are below their point. It times the scan as the service runs it
//! (policies for new pairs, then one statement drafting every due PO, approved and queued for
//! sending), checks that it drafted exactly the due pairs, then times a second scan (nothing
//! left to draft) and a dry run.
//!
//! Feed: stock's log seeded with `--events` (200,000) transactions over 10,000 pairs (half of
//! them SHIP), served by the real stock service; the demand consumer follows it from the start
//! through gRPC and the time until its cursor reaches the end gives transactions/s. It checks
//! that the demand recorded equals the units shipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inventory_benchkit::{
    PRODUCT_ID_PREFIX, WAREHOUSE_ID_PREFIX, numbered_uuid_sql, workspace_path,
};
use inventory_runtime::{Background, Settings};
use inventory_stock_client::{FeedConsumer, GrpcStockClient};
use inventory_testkit::{StockServer, TestDatabase};
use replenishment_service::app::MIGRATOR;
use replenishment_service::planning::{DemandFeed, FEED, Planner, PolicyDefaults};

const WAREHOUSES: i64 = 8;

struct Options {
    pairs: i64,
    events: i64,
    json: Option<String>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        pairs: 1_000_000,
        events: 200_000,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--pairs" => o.pairs = value()?.parse().map_err(|_| "bad --pairs")?,
            "--events" => o.events = value()?.parse().map_err(|_| "bad --events")?,
            "--json" => o.json = Some(workspace_path(env!("CARGO_MANIFEST_DIR"), &value()?)),
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn defaults() -> PolicyDefaults {
    PolicyDefaults {
        service_level: 0.95,
        ordering_cost_micros: 50_000_000,
        holding_rate: 0.25,
    }
}

async fn run(sql: &str, pool: &sqlx::PgPool) -> Result<(), String> {
    sqlx::raw_sql(sql)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(|e| format!("{e}\n{sql}"))
}

async fn scan(o: &Options) -> Result<serde_json::Value, String> {
    let database = TestDatabase::create().await;
    let pool = database.migrate("replenishment", &MIGRATOR).await;
    let products = o.pairs / WAREHOUSES;
    let due = o.pairs / 100;
    let seeded = Instant::now();
    run(
        &format!(
            "INSERT INTO suppliers (supplier_id, name, channel, edi_qualifier, edi_id,
                                    default_lead_time_days)
             VALUES ('20000000-0000-4000-8000-000000000001', 'Acme', 'EDI', 'ZZ', 'ACME', 7);
             INSERT INTO supplier_offers (supplier_id, product_id, unit_cost_micros,
                                          minimum_order_quantity, pack_multiple, lead_time_days)
             SELECT '20000000-0000-4000-8000-000000000001', {product}, 1000000, 1, 1, 5
               FROM generate_series(1, {products}) n;
             INSERT INTO reorder_policies (product_id, warehouse_id, source, reorder_point,
                                           reorder_quantity, service_level)
             SELECT {product_of_pair}, {warehouse_of_pair}, 'FIXED', 100, 500, 0.95
               FROM generate_series(0, {pairs} - 1) n;
             INSERT INTO stock_positions (product_id, warehouse_id, quantity_available,
                                          last_sequence, reorder_point)
             SELECT {product_of_pair}, {warehouse_of_pair},
                    CASE WHEN n % 100 = 0 THEN 50 ELSE 1000 END, n + 1, 100
               FROM generate_series(0, {pairs} - 1) n;",
            product = numbered_uuid_sql(PRODUCT_ID_PREFIX, "n"),
            product_of_pair =
                numbered_uuid_sql(PRODUCT_ID_PREFIX, &format!("n / {WAREHOUSES} + 1")),
            warehouse_of_pair =
                numbered_uuid_sql(WAREHOUSE_ID_PREFIX, &format!("n % {WAREHOUSES} + 1")),
            pairs = o.pairs,
        ),
        &pool,
    )
    .await?;
    run(
        "VACUUM ANALYZE reorder_policies, stock_positions, supplier_offers, purchase_orders",
        &pool,
    )
    .await?;
    println!(
        "scan: {} pairs in {} products x {WAREHOUSES} warehouses, {due} below their point (seeded in {:.1} s)",
        o.pairs,
        products,
        seeded.elapsed().as_secs_f64()
    );
    // Nothing is asked of stock: every pair already has its policy.
    let stock = Arc::new(
        GrpcStockClient::from_settings(
            &Settings::defaults().overlay([("STOCK_URL", "http://127.0.0.1:9")]),
            inventory_runtime::Role::Replenishment,
        )
        .map_err(|e| e.to_string())?,
    );
    let planner = Planner::new(pool.clone(), stock, defaults());

    let started = Instant::now();
    let dry = planner
        .scan(true, i64::MAX)
        .await
        .map_err(|e| e.to_string())?;
    let dry_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let decisions = planner
        .scan(false, i64::MAX)
        .await
        .map_err(|e| e.to_string())?;
    let first_seconds = started.elapsed().as_secs_f64();
    let drafted = decisions.iter().filter(|d| d.po_id.is_some()).count() as i64;

    let started = Instant::now();
    let again = planner
        .scan(false, i64::MAX)
        .await
        .map_err(|e| e.to_string())?;
    let second_seconds = started.elapsed().as_secs_f64();

    let (stored, queued, wrong): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM purchase_orders),
                (SELECT count(*) FROM po_outbox),
                (SELECT count(*) FROM purchase_orders po JOIN stock_positions s
                     USING (product_id, warehouse_id) WHERE s.quantity_available >= 100)",
    )
    .fetch_one(&pool)
    .await
    .map_err(|e| e.to_string())?;
    println!(
        "scan: dry run {dry_seconds:.2} s ({} due); first scan {first_seconds:.2} s drafted {drafted} \
         (stored {stored}, queued for sending {queued}, for pairs not due {wrong}); second scan \
         {second_seconds:.2} s drafted {}",
        dry.len(),
        again.iter().filter(|d| d.po_id.is_some()).count()
    );
    if drafted != due || stored != due || queued != due || wrong != 0 || !again.is_empty() {
        return Err(format!(
            "the scan drafted {drafted} (stored {stored}, queued {queued}, wrong {wrong}), expected {due}"
        ));
    }
    Ok(serde_json::json!({
        "pairs": o.pairs,
        "due": due,
        "dry_run_seconds": dry_seconds,
        "first_scan_seconds": first_seconds,
        "drafted": drafted,
        "second_scan_seconds": second_seconds,
    }))
}

async fn feed(o: &Options) -> Result<serde_json::Value, String> {
    let database = Arc::new(TestDatabase::create().await);
    let stock = StockServer::spawn_on(database.clone(), &[]).await;
    let stock_pool = database
        .migrate("stock", &stock_service::app::MIGRATOR)
        .await;
    let pairs = 10_000_i64;
    let products = pairs / WAREHOUSES;
    let seeded = Instant::now();
    run(
        &format!(
            "INSERT INTO products (product_id, sku, name, unit_of_measure)
             SELECT {product}, 'SKU-' || n, 'Product ' || n, 'each'
               FROM generate_series(1, {products}) n;
             INSERT INTO warehouses (warehouse_id, name, warehouse_type, latitude, longitude)
             SELECT {warehouse}, 'W' || n, 'FULFILLMENT', 50, 8
               FROM generate_series(1, {WAREHOUSES}) n;
             INSERT INTO inventory (product_id, warehouse_id, quantity_on_hand)
             SELECT {product_of_pair}, {warehouse_of_pair}, 1000000
               FROM generate_series(0, {pairs} - 1) n;
             INSERT INTO inventory_transactions (txn_id, product_id, warehouse_id, txn_type,
                     quantity, on_hand_delta, reserved_delta, on_hand_after, reserved_after,
                     reference_id, request_id)
             SELECT gen_random_uuid(), {product_of_pair}, {warehouse_of_pair},
                    CASE WHEN n % 2 = 0 THEN 'RESERVE' ELSE 'SHIP' END, 1,
                    CASE WHEN n % 2 = 0 THEN 0 ELSE -1 END,
                    CASE WHEN n % 2 = 0 THEN 1 ELSE -1 END,
                    1000000, 0, 'bench', 'bench-' || n
               FROM generate_series(0, {events} - 1) n ORDER BY n;",
            product = numbered_uuid_sql(PRODUCT_ID_PREFIX, "n"),
            warehouse = numbered_uuid_sql(WAREHOUSE_ID_PREFIX, "n"),
            product_of_pair = numbered_uuid_sql(
                PRODUCT_ID_PREFIX,
                &format!("n % {pairs} / {WAREHOUSES} + 1")
            ),
            warehouse_of_pair =
                numbered_uuid_sql(WAREHOUSE_ID_PREFIX, &format!("n % {WAREHOUSES} + 1")),
            events = o.events,
        ),
        &stock_pool,
    )
    .await?;
    let last: i64 = sqlx::query_scalar("SELECT max(sequence) FROM inventory_transactions")
        .fetch_one(&stock_pool)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "feed: {} transactions in stock's log over {pairs} pairs (seeded in {:.1} s)",
        o.events,
        seeded.elapsed().as_secs_f64()
    );
    let pool = database.migrate("replenishment", &MIGRATOR).await;
    let client = Arc::new(
        GrpcStockClient::from_settings(
            &Settings::defaults().overlay([("STOCK_URL", stock.url().as_str())]),
            inventory_runtime::Role::Replenishment,
        )
        .map_err(|e| e.to_string())?,
    );
    let consumer = FeedConsumer::new(FEED, pool.clone(), client, Arc::new(DemandFeed));
    let mut background = Background::new();
    let started = Instant::now();
    background.spawn(|stopping| consumer.run(stopping));
    let deadline = started + Duration::from_secs(600);
    loop {
        let cursor = FeedConsumer::cursor(&pool, FEED)
            .await
            .map_err(|e| e.to_string())?;
        if cursor >= last {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the feed reached {cursor} of {last} in 600 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    background.stop().await;
    let shipped: i64 =
        sqlx::query_scalar("SELECT coalesce(sum(quantity), 0)::int8 FROM demand_daily")
            .fetch_one(&pool)
            .await
            .map_err(|e| e.to_string())?;
    let rate = o.events as f64 / seconds;
    println!(
        "feed: {} transactions applied in {seconds:.2} s: {rate:.0} transactions/s; demand recorded {shipped} units",
        o.events
    );
    if shipped != o.events / 2 {
        return Err(format!("demand {shipped}, shipped {}", o.events / 2));
    }
    Ok(serde_json::json!({
        "events": o.events,
        "seconds": seconds,
        "transactions_per_second": rate,
    }))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = async {
        let scan = scan(&o).await?;
        let feed = feed(&o).await?;
        Ok::<_, String>(serde_json::json!({ "scan": scan, "feed": feed }))
    }
    .await;
    match result {
        Ok(report) => {
            if let Some(path) = &o.json
                && let Err(e) = std::fs::write(path, format!("{report:#}\n"))
            {
                eprintln!("cannot write {path}: {e}");
                return std::process::ExitCode::FAILURE;
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
