//! How long a whole cycle count of one warehouse takes, with the real stock service.
//!
//! ```sh
//! cargo bench -p reconciliation-service --bench count -- --json target/count.json
//! ```
//!
//! A fresh database; stock and reconciliation run in this process over real gRPC. Stock is
//! seeded through its API (so its ledger holds every unit): `--products` (10,000) products at
//! 100 units each in one warehouse. Then, timed: a task of every product stocked there, the
//! counts submitted in batches of 1,000 entries, and the completion, which judges every line
//! against stock's log and applies the auto-approved adjustments as ADJUST transactions (20%
//! of the lines are 1 unit short, within tolerance; 0.5% are 20% short and wait for a
//! manager). It checks what was applied, what waits, on hand in stock, and stock's ledger.
//!
//! `--one-line` instead times SubmitCounts on one line as its submissions pile up: entries of
//! 2,000, 4,000, 6,000 and 10,000 (the stated maximum) in turn, then single entries, and
//! checks the line's count after each.

use std::sync::Arc;
use std::time::Instant;

use inventory_benchkit::workspace_path;
use inventory_proto::reconciliation::v1 as pb;
use inventory_proto::reconciliation::v1::reconciliation_service_client::ReconciliationServiceClient;
use inventory_proto::stock::v1 as stock;
use inventory_testkit::{StockServer, TestDatabase, TestServer, new_id};
use reconciliation_service::ReconciliationApp;

struct Options {
    products: usize,
    json: Option<String>,
    one_line: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        products: 10_000,
        json: None,
        one_line: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--products" => o.products = value()?.parse().map_err(|_| "bad --products")?,
            "--json" => o.json = Some(workspace_path(env!("CARGO_MANIFEST_DIR"), &value()?)),
            "--one-line" => o.one_line = true,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// What the counter finds for product `i` of 100 on hand.
fn found(i: usize) -> i64 {
    if i.is_multiple_of(200) {
        80
    } else if i.is_multiple_of(5) {
        99
    } else {
        100
    }
}

/// Products created and received through stock's API, 16 calls in flight.
async fn seed(stock: &StockServer, warehouse: &str, products: usize) -> Vec<String> {
    let mut ids = vec![String::new(); products];
    let chunk = products.div_ceil(16).max(1);
    let mut workers = tokio::task::JoinSet::new();
    let progress = std::sync::Arc::new(inventory_benchkit::Progress::new(
        "seeding products",
        products,
    ));
    for start in (0..products).step_by(chunk) {
        let progress = progress.clone();
        let mut client = stock.client.clone();
        let warehouse = warehouse.to_owned();
        workers.spawn(async move {
            let mut made = Vec::new();
            for i in start..(start + chunk).min(products) {
                let product = client
                    .create_product(stock::CreateProductRequest {
                        request_id: new_id(),
                        product: Some(stock::Product {
                            sku: format!("COUNT-{i:06}"),
                            name: format!("Counted {i}"),
                            unit_of_measure: "each".into(),
                            unit_cost_micros: 1_000_000,
                            ..Default::default()
                        }),
                    })
                    .await
                    .expect("product")
                    .into_inner()
                    .product
                    .expect("product")
                    .product_id;
                client
                    .receive_stock(stock::ReceiveStockRequest {
                        request_id: new_id(),
                        product_id: product.clone(),
                        warehouse_id: warehouse.clone(),
                        quantity: 100,
                        reference_id: "opening".into(),
                        actor: "bench".into(),
                    })
                    .await
                    .expect("receive");
                made.push((i, product));
                progress.step();
            }
            made
        });
    }
    while let Some(made) = workers.join_next().await {
        for (i, product) in made.expect("seeding task") {
            ids[i] = product;
        }
    }
    progress.finish();
    ids
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let o = options()?;
    let database = Arc::new(TestDatabase::create().await);
    let stock = StockServer::spawn_on(database.clone(), &[]).await;
    let url = stock.url();
    let server = TestServer::spawn::<ReconciliationApp>(
        database.clone(),
        &[("STOCK_URL", url.as_str()), ("COUNT_UNCERTAINTY_MS", "50")],
    )
    .await;
    let mut client = ReconciliationServiceClient::new(server.channel().await);
    let warehouse = stock.create_warehouse("Counted", (50.1, 8.7)).await;
    if o.one_line {
        return one_line(&mut client, &stock, &warehouse).await;
    }
    let seeding = Instant::now();
    let products = seed(&stock, &warehouse, o.products).await;
    println!(
        "seeded {} products in {:.1} s",
        products.len(),
        seeding.elapsed().as_secs_f64()
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let start = Instant::now();
    let task = client
        .create_count_task(pb::CreateCountTaskRequest {
            request_id: new_id(),
            warehouse_id: warehouse.clone(),
            actor: "bench".into(),
            ..Default::default()
        })
        .await
        .map_err(|s| format!("create: {s}"))?
        .into_inner()
        .task
        .ok_or("no task")?;
    let created = start.elapsed();
    let index: std::collections::HashMap<&str, usize> = products
        .iter()
        .enumerate()
        .map(|(i, p)| (p.as_str(), i))
        .collect();
    let entries: Vec<pb::CountEntry> = products
        .iter()
        .map(|p| pb::CountEntry {
            product_id: p.clone(),
            quantity: found(index[p.as_str()]),
            recount: false,
            count_time: None,
        })
        .collect();
    for batch in entries.chunks(1000) {
        client
            .submit_counts(pb::SubmitCountsRequest {
                request_id: new_id(),
                task_id: task.task_id.clone(),
                entries: batch.to_vec(),
                counted_by: "counter".into(),
            })
            .await
            .map_err(|s| format!("submit: {s}"))?;
    }
    let submitted = start.elapsed();
    let done = client
        .complete_count_task(pb::CompleteCountTaskRequest {
            request_id: new_id(),
            task_id: task.task_id.clone(),
            actor: "bench".into(),
        })
        .await
        .map_err(|s| format!("complete: {s}"))?
        .into_inner();
    let total = start.elapsed();

    let short = (0..o.products).filter(|&i| found(i) == 99).count() as i64;
    let large = (0..o.products).filter(|&i| found(i) == 80).count() as i64;
    let matched = o.products as i64 - short - large;
    println!(
        "count of {} products: create {:.2} s, submit {:.2} s, complete (judge + {} ADJUSTs) {:.2} s; total {:.2} s",
        o.products,
        created.as_secs_f64(),
        (submitted - created).as_secs_f64(),
        done.applied,
        (total - submitted).as_secs_f64(),
        total.as_secs_f64()
    );
    if (done.applied, done.pending_approval, done.matched) != (short, large, matched) {
        return Err(format!(
            "expected {short} applied, {large} pending, {matched} matched; got {done:?}"
        ));
    }
    let sample = &products[5];
    let on_hand = stock.level(sample, &warehouse).await.map(|l| l.0);
    if on_hand != Some(99) {
        return Err(format!("product 5 should be at 99, is {on_hand:?}"));
    }
    let ledger = stock
        .client
        .clone()
        .check_ledger(stock::CheckLedgerRequest {})
        .await
        .map_err(|s| format!("ledger: {s}"))?
        .into_inner();
    if !ledger.drifts.is_empty() {
        return Err(format!("ledger drift: {:?}", ledger.drifts));
    }
    println!("ledger clean; target: under 10 s end to end");
    if let Some(path) = o.json {
        let report = serde_json::json!({
            "products": o.products,
            "create_seconds": created.as_secs_f64(),
            "submit_seconds": (submitted - created).as_secs_f64(),
            "complete_seconds": (total - submitted).as_secs_f64(),
            "total_seconds": total.as_secs_f64(),
            "adjustments_applied": done.applied,
            "pending_approval": done.pending_approval,
        });
        std::fs::write(&path, report.to_string()).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

/// SubmitCounts on one line as its submissions pile up (see the module's comment).
async fn one_line(
    client: &mut ReconciliationServiceClient<tonic::transport::Channel>,
    stock: &StockServer,
    warehouse: &str,
) -> Result<(), String> {
    let product = seed(stock, warehouse, 1).await.remove(0);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let task = client
        .create_count_task(pb::CreateCountTaskRequest {
            request_id: new_id(),
            warehouse_id: warehouse.to_owned(),
            product_ids: vec![product.clone()],
            actor: "bench".into(),
            ..Default::default()
        })
        .await
        .map_err(|s| format!("create: {s}"))?
        .into_inner()
        .task
        .ok_or("no task")?;
    let mut counted = 0_i64;
    for entries in [2_000, 4_000, 6_000, 10_000, 1, 1, 1] {
        let started = Instant::now();
        let lines = client
            .submit_counts(pb::SubmitCountsRequest {
                request_id: new_id(),
                task_id: task.task_id.clone(),
                entries: (0..entries)
                    .map(|_| pb::CountEntry {
                        product_id: product.clone(),
                        quantity: 1,
                        recount: false,
                        count_time: None,
                    })
                    .collect(),
                counted_by: "counter".into(),
            })
            .await
            .map_err(|s| format!("submit {entries}: {s}"))?
            .into_inner()
            .lines;
        let elapsed = started.elapsed();
        counted += entries as i64;
        println!(
            "{entries:>6} entries on a line holding {:>6} submissions: {:>8.1} ms",
            counted - entries as i64,
            elapsed.as_secs_f64() * 1000.0
        );
        if lines.first().and_then(|l| l.counted_quantity) != Some(counted) {
            return Err(format!("the line should count {counted}: {lines:?}"));
        }
    }
    Ok(())
}
