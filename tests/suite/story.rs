//! The four services as one system, started the way `inventory-suite` starts them, on the
//! demo data: the end-to-end story across all four, and cancelling an allocated order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{Duration as Days, Utc};
use inventory_core::time::timestamp;
use inventory_proto::allocation::v1 as allocation;
use inventory_proto::allocation::v1::allocation_service_client::AllocationServiceClient;
use inventory_proto::reconciliation::v1 as reconciliation;
use inventory_proto::reconciliation::v1::reconciliation_service_client::ReconciliationServiceClient;
use inventory_proto::replenishment::v1 as replenishment;
use inventory_proto::replenishment::v1::replenishment_service_client::ReplenishmentServiceClient;
use inventory_proto::stock::v1 as stock;
use inventory_proto::stock::v1::stock_service_client::StockServiceClient;
use inventory_suite::demo::{self, product_id, warehouse_id};
use inventory_suite::{Addresses, Suite};
use inventory_testkit::{TestDatabase, assert_ledger_clean, inventory_level, new_id};
use tonic::transport::Channel;

use crate::traces::{Capture, calls};

struct Running {
    suite: Option<Suite>,
    drop_dir: PathBuf,
    stock: StockServiceClient<Channel>,
    allocation: AllocationServiceClient<Channel>,
    replenishment: ReplenishmentServiceClient<Channel>,
    reconciliation: ReconciliationServiceClient<Channel>,
    _database: TestDatabase,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.drop_dir);
    }
}

fn channel(addr: std::net::SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .expect("address")
        .connect_lazy()
}

/// The suite on a fresh database (every service on port 0, intervals short), demo loaded.
async fn suite_with_demo() -> (Running, Addresses) {
    let database = TestDatabase::create().await;
    let drop_dir = std::env::temp_dir().join(format!("suite-edi-{}", new_id()));
    let settings = database.settings().overlay([
        ("STOCK_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("ALLOCATION_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("REPLENISHMENT_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("RECONCILIATION_LISTEN_ADDR", "127.0.0.1:0".to_owned()),
        ("STOCK_FEED_POLL_MS", "50".to_owned()),
        ("REPLENISHMENT_EDI_DROP_DIR", drop_dir.display().to_string()),
        ("REPLENISHMENT_OUTBOX_POLL_MS", "100".to_owned()),
        ("RECONCILIATION_COUNT_UNCERTAINTY_MS", "50".to_owned()),
        ("RECONCILIATION_APPLY_RETRY_MS", "100".to_owned()),
    ]);
    let suite = Suite::start(&settings).await.expect("suite starts");
    let a = suite.addresses;
    assert!(
        demo::load(&a).await.expect("demo loads"),
        "a fresh database"
    );
    assert!(
        !demo::load(&a).await.expect("second demo"),
        "loaded once only"
    );
    let running = Running {
        suite: Some(suite),
        drop_dir,
        stock: StockServiceClient::new(channel(a.stock)),
        allocation: AllocationServiceClient::new(channel(a.allocation)),
        replenishment: ReplenishmentServiceClient::new(channel(a.replenishment)),
        reconciliation: ReconciliationServiceClient::new(channel(a.reconciliation)),
        _database: database,
    };
    (running, a)
}

impl Running {
    /// (on hand, reserved); zeros for a pair stock has never held.
    async fn level(&self, product: &str, warehouse: &str) -> (i64, i64) {
        inventory_level(&self.stock, product, warehouse)
            .await
            .unwrap_or_default()
    }

    async fn on_hand(&self, product: &str, warehouse: &str) -> i64 {
        self.level(product, warehouse).await.0
    }

    /// `order` allocated for delivery at (latitude, longitude), lines numbered from 1.
    async fn allocate(
        &self,
        order: &str,
        (latitude, longitude): (f64, f64),
        lines: &[(&str, i64)],
    ) -> allocation::Allocation {
        self.allocation
            .clone()
            .allocate_order(allocation::AllocateOrderRequest {
                request_id: new_id(),
                order_id: order.to_owned(),
                destination: Some(allocation::Destination {
                    latitude,
                    longitude,
                    country: "DE".into(),
                    ..Default::default()
                }),
                lines: lines
                    .iter()
                    .enumerate()
                    .map(|(i, &(product, quantity))| allocation::OrderLine {
                        order_line_id: (i + 1).to_string(),
                        product_id: product.to_owned(),
                        quantity,
                    })
                    .collect(),
                options: None,
                actor: "storefront".into(),
            })
            .await
            .expect("allocated")
            .into_inner()
            .allocation
            .expect("allocation")
    }

    async fn stop(mut self) {
        if let Some(suite) = self.suite.take() {
            suite.stop().await.expect("clean stop");
        }
    }
}

/// Waits up to 10 s for `check` to give something.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..200 {
        if let Some(found) = check().await {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen within 10 s");
}

fn x12_documents(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "x12"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Told with the services' traces exported to an OTLP receiver: each cross-service call
/// (allocation to stock, replenishment's receipt, reconciliation's adjustment) is one trace.
#[tokio::test]
async fn the_whole_story_across_the_four_services() {
    let (app, _) = suite_with_demo().await;
    let capture = Capture::start().await;
    let berlin = warehouse_id(0);
    let tee = product_id(0);
    // The demo received tees into every warehouse; Berlin holds the most, but not 150.
    let mut spread = Vec::new();
    for w in 0..4 {
        spread.push(app.on_hand(&tee, &warehouse_id(w)).await);
    }
    assert!(spread.iter().all(|&q| q > 0 && q < 150), "{spread:?}");

    // A two-line order that no warehouse can serve alone: it is split.
    let order = format!("STORY-{}", new_id());
    let allocated = app
        .allocate(&order, (52.52, 13.40), &[(&tee, 150), (&product_id(1), 5)])
        .await;
    assert!(allocated.shipments.len() >= 2, "{allocated:?}");
    assert!(
        allocated.shipments.iter().any(|s| s.warehouse_id == berlin),
        "the nearest warehouse ships part"
    );

    // Shipped, warehouse by warehouse: demand, and Berlin's tees fall below their point (40).
    demo::ship_all(
        &mut app.allocation.clone(),
        &allocated,
        &new_id(),
        "warehouse",
    )
    .await
    .expect("shipped");
    let left = app.on_hand(&tee, &berlin).await;
    assert!(left < 40, "Berlin has {left} tees left");

    // The reorder job drafts a PO for it, approves it (under the threshold) and sends it.
    let po_id = eventually("a PO for Berlin's tees", || {
        let mut client = app.replenishment.clone();
        let (tee, berlin) = (tee.clone(), berlin.clone());
        async move {
            let scan = client
                .run_reorder_scan(replenishment::RunReorderScanRequest { dry_run: false })
                .await
                .ok()?
                .into_inner();
            let _ = scan;
            let orders = client
                .list_purchase_orders(replenishment::ListPurchaseOrdersRequest {
                    product_id: tee,
                    warehouse_id: berlin,
                    ..Default::default()
                })
                .await
                .ok()?
                .into_inner()
                .purchase_orders;
            orders.first().map(|po| po.po_id.clone())
        }
    })
    .await;
    let sent = eventually("the PO sent as an X12 850", || {
        let mut client = app.replenishment.clone();
        let po_id = po_id.clone();
        async move {
            let po = client
                .get_purchase_order(replenishment::GetPurchaseOrderRequest { po_id })
                .await
                .ok()?
                .into_inner()
                .purchase_order?;
            (po.status == replenishment::PurchaseOrderStatus::Sent as i32).then_some(po)
        }
    })
    .await;
    assert_eq!(sent.decided_by, "auto-approval");
    let documents = x12_documents(&app.drop_dir);
    assert!(
        documents
            .iter()
            .any(|d| d.contains("ST*850*") && d.contains(&sent.po_number)),
        "the 850 for {} is in the drop directory",
        sent.po_number
    );

    // The supplier-integration service reports the goods received: stock is back.
    app.replenishment
        .clone()
        .receive_purchase_order(replenishment::ReceivePurchaseOrderRequest {
            receipt_id: format!("ASN-{}", new_id()),
            po_id: po_id.clone(),
            quantity: sent.ordered_qty,
            lot: "LOT-1".into(),
            actor: "supplier-integration".into(),
        })
        .await
        .expect("received");
    assert_eq!(app.on_hand(&tee, &berlin).await, left + sent.ordered_qty);

    // A cycle count of Berlin finds 10 white tees missing; a manager approves; stock follows.
    let white = product_id(1);
    let before = app.on_hand(&white, &berlin).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let task = app
        .reconciliation
        .clone()
        .create_count_task(reconciliation::CreateCountTaskRequest {
            request_id: new_id(),
            warehouse_id: berlin.clone(),
            location: "aisle-3".into(),
            product_ids: vec![white.clone()],
            blind: true,
            actor: "shift-lead".into(),
        })
        .await
        .expect("task")
        .into_inner()
        .task
        .expect("task");
    app.reconciliation
        .clone()
        .submit_counts(reconciliation::SubmitCountsRequest {
            request_id: new_id(),
            task_id: task.task_id.clone(),
            entries: vec![reconciliation::CountEntry {
                product_id: white.clone(),
                quantity: before - 10,
                recount: false,
                count_time: None,
            }],
            counted_by: "counter-ana".into(),
        })
        .await
        .expect("counted");
    let done = app
        .reconciliation
        .clone()
        .complete_count_task(reconciliation::CompleteCountTaskRequest {
            request_id: new_id(),
            task_id: task.task_id.clone(),
            actor: "shift-lead".into(),
        })
        .await
        .expect("completed")
        .into_inner();
    assert_eq!(done.pending_approval, 1, "{done:?}");
    let line = app
        .reconciliation
        .clone()
        .list_adjustments(reconciliation::ListAdjustmentsRequest {
            task_id: task.task_id.clone(),
            ..Default::default()
        })
        .await
        .expect("adjustments")
        .into_inner()
        .adjustments
        .pop()
        .expect("the variance");
    let approved = app
        .reconciliation
        .clone()
        .approve_adjustment(reconciliation::ApproveAdjustmentRequest {
            request_id: new_id(),
            adjustment_id: line.line_id.clone(),
            manager: "manager-ben".into(),
            comment: "recounted with the team".into(),
        })
        .await
        .expect("approved")
        .into_inner()
        .adjustment
        .expect("adjustment");
    assert_eq!(
        approved.status,
        reconciliation::LineStatus::Applied as i32,
        "{approved:?}"
    );
    assert_eq!(app.on_hand(&white, &berlin).await, before - 10);

    // The shrinkage report shows the loss against what shipped today.
    let now = Utc::now();
    let report = eventually("the adjustment in the shrinkage report", || {
        let mut client = app.reconciliation.clone();
        let berlin = berlin.clone();
        async move {
            let report = client
                .get_shrinkage_report(reconciliation::GetShrinkageReportRequest {
                    start_time: Some(timestamp(now - Days::days(1))),
                    end_time: Some(timestamp(now + Days::days(1))),
                    warehouse_id: berlin,
                })
                .await
                .ok()?
                .into_inner();
            report
                .overall
                .filter(|o| o.lost_units >= 10 && o.shipped_units > 0)
        }
    })
    .await;
    assert!(report.rate_percent.is_some_and(|r| r > 0.0));

    // And stock's books balance.
    assert_ledger_clean(&app.stock).await;
    app.stop().await;

    let spans = capture.finish().await;
    let stock = "inventory.stock.v1.StockService";
    for ((caller, rpc), peer) in [
        (
            (
                "fulfillment-allocation-service",
                "inventory.allocation.v1.AllocationService/AllocateOrder",
            ),
            "BatchReserveOrders",
        ),
        (
            (
                "fulfillment-allocation-service",
                "inventory.allocation.v1.AllocationService/AllocateOrder",
            ),
            "BatchGetAvailability",
        ),
        (
            (
                "replenishment-service",
                "inventory.replenishment.v1.ReplenishmentService/ReceivePurchaseOrder",
            ),
            "ReceiveStock",
        ),
        (
            (
                "reconciliation-service",
                "inventory.reconciliation.v1.ReconciliationService/ApproveAdjustment",
            ),
            "AdjustStock",
        ),
    ] {
        let peer_rpc = format!("{stock}/{peer}");
        let found = calls(&spans, (caller, rpc), ("stock-service", &peer_rpc));
        assert_eq!(
            found.len(),
            1,
            "one {rpc} traced into stock's {peer}; spans received: {:#?}",
            spans
                .iter()
                .map(|s| (&s.service, &s.name))
                .collect::<Vec<_>>()
        );
        let [root, client, served] = found[0];
        assert!(root.parent_span_id.is_empty(), "{rpc} starts its trace");
        for (key, value) in [
            ("rpc.system", "grpc"),
            ("rpc.service", stock),
            ("rpc.method", peer),
        ] {
            assert_eq!(
                client.attributes.get(key).map(String::as_str),
                Some(value),
                "{client:?}"
            );
            assert_eq!(
                served.attributes.get(key).map(String::as_str),
                Some(value),
                "{served:?}"
            );
        }
    }
}

#[tokio::test]
async fn cancelling_an_allocated_order_releases_everything_it_held() {
    let (app, _) = suite_with_demo().await;
    let (mug, lamp) = (product_id(6), product_id(8));
    let order = format!("CANCEL-{}", new_id());
    let mut before = Vec::new();
    for w in 0..4 {
        before.push((
            app.on_hand(&mug, &warehouse_id(w)).await,
            app.on_hand(&lamp, &warehouse_id(w)).await,
        ));
    }
    let allocated = app
        .allocate(&order, (48.14, 11.58), &[(&mug, 3), (&lamp, 2)])
        .await;
    assert!(!allocated.shipments.is_empty());

    app.allocation
        .clone()
        .cancel_allocation(allocation::CancelAllocationRequest {
            request_id: new_id(),
            order_id: order.clone(),
            reason: "customer cancelled".into(),
            actor: "storefront".into(),
        })
        .await
        .expect("cancelled");

    let reservations = app
        .stock
        .clone()
        .list_reservations(stock::ListReservationsRequest {
            order_id: order.clone(),
            ..Default::default()
        })
        .await
        .expect("reservations")
        .into_inner()
        .reservations;
    assert!(!reservations.is_empty());
    assert!(
        reservations.iter().all(|r| r.quantity_held == 0),
        "{reservations:?}"
    );
    for (w, &(mug_before, lamp_before)) in before.iter().enumerate() {
        let mug_level = app.level(&mug, &warehouse_id(w)).await;
        let lamp_level = app.level(&lamp, &warehouse_id(w)).await;
        assert_eq!(mug_level, (mug_before, 0), "mugs in warehouse {w}");
        assert_eq!(lamp_level, (lamp_before, 0), "lamps in warehouse {w}");
    }
    app.stop().await;
}
