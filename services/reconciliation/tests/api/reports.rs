//! Shrinkage from stock's log, counting figures per location and class, and the schedule.

use chrono::{Duration, Utc};
use inventory_core::time::timestamp;
use inventory_proto::reconciliation::v1 as pb;

use crate::helpers::TestApp;

#[tokio::test]
async fn the_shrinkage_report_matches_a_hand_computed_example() {
    let app = TestApp::spawn().await;
    let north = app.warehouse("North").await;
    let south = app.warehouse("South").await;
    // 2.00 a unit.
    let p = app.product("S-1", 2_000_000).await;
    app.stocked(&p, &north, 1_000).await;
    app.stocked(&p, &south, 1_000).await;
    // North: -10 and +4 by adjustment, 500 shipped: 6 lost, 1.2% (12.00 of 1000.00).
    app.adjust_in_stock(&p, &north, -10).await;
    app.adjust_in_stock(&p, &north, 4).await;
    // South: -3, 100 shipped: 3%.
    app.adjust_in_stock(&p, &south, -3).await;
    app.ship(&p, &south, 100).await;
    app.ship(&p, &north, 500).await;

    let report = app.shrinkage_once_shipped(600).await;

    let row = |w: &str| {
        report
            .warehouses
            .iter()
            .find(|s| s.warehouse_id == w)
            .cloned()
            .expect("warehouse row")
    };
    let n = row(&north);
    assert_eq!(
        (n.shipped_units, n.adjusted_units, n.lost_units),
        (500, -6, 6)
    );
    assert_eq!(
        (n.shipped_value_micros, n.lost_value_micros),
        (1_000_000_000, 12_000_000)
    );
    assert!((n.rate_percent.expect("rate") - 1.2).abs() < 1e-9);
    assert!((n.value_rate_percent.expect("value rate") - 1.2).abs() < 1e-9);
    let s = row(&south);
    assert_eq!((s.shipped_units, s.lost_units), (100, 3));
    assert!((s.rate_percent.expect("rate") - 3.0).abs() < 1e-9);
    let overall = report.overall.expect("overall");
    assert_eq!((overall.shipped_units, overall.lost_units), (600, 9));
    assert!((overall.rate_percent.expect("rate") - 1.5).abs() < 1e-9);
}

#[tokio::test]
async fn a_ledger_with_one_point_six_percent_injected_loss_reports_it() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Munich").await;
    let products = [
        app.product("L-1", 1_000_000).await,
        app.product("L-2", 3_500_000).await,
        app.product("L-3", 250_000).await,
    ];
    // 12,500 shipped in all; 200 lost (1.6%), scattered over products and adjustments, with
    // a gain that a later loss outweighs.
    let shipped = [5_000_i64, 4_500, 3_000];
    let losses: [&[i64]; 3] = [&[-50, -40, 10], &[-72], &[-30, -18]];
    for ((p, ship), loss) in products.iter().zip(shipped).zip(losses) {
        app.stocked(p, &w, 10_000).await;
        for &delta in loss {
            app.adjust_in_stock(p, &w, delta).await;
        }
        app.ship(p, &w, ship).await;
    }

    let report = app.shrinkage_once_shipped(12_500).await;

    let overall = report.overall.expect("overall");
    assert_eq!(overall.lost_units, 200);
    let rate = overall.rate_percent.expect("rate");
    assert!((rate - 1.6).abs() <= 0.05, "reported {rate}%");
    assert!(report.note.contains("1 to 2%"));
}

#[tokio::test]
async fn the_counting_report_shows_frequency_size_and_accuracy_per_location_and_class() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Munich").await;
    let a = app.product("R-1", 1_000_000).await;
    let b = app.product("R-2", 1_000_000).await;
    app.stocked(&a, &w, 100).await;
    app.stocked(&b, &w, 100).await;
    let aisle = app.create_task_at(&w, "aisle-1", &[&a, &b], false).await;
    // a: 2 missing (applied, within C's 5%); b: exact.
    app.submit(&aisle.task_id, "alice", &[(&a, 98), (&b, 100)])
        .await
        .expect("count");
    app.complete(&aisle.task_id).await.expect("complete");
    let now = Utc::now();

    let report = app
        .client()
        .get_counting_report(pb::GetCountingReportRequest {
            start_time: Some(timestamp(now - Duration::hours(1))),
            end_time: Some(timestamp(now + Duration::hours(1))),
            warehouse_id: String::new(),
        })
        .await
        .expect("report")
        .into_inner();

    assert_eq!(report.locations.len(), 1);
    let l = &report.locations[0];
    assert_eq!(
        (l.location.as_str(), l.counted_lines, l.adjusted_lines),
        ("aisle-1", 2, 1)
    );
    assert_eq!((l.net_units, l.absolute_units), (-2, 2));
    assert!((l.adjustment_frequency - 0.5).abs() < 1e-9);
    assert!((l.exact_accuracy - 0.5).abs() < 1e-9);
    assert!((l.within_tolerance_accuracy - 1.0).abs() < 1e-9);
    let all = report
        .classes
        .iter()
        .find(|c| c.abc_class == "ALL")
        .expect("overall");
    assert_eq!(all.counted_lines, 2);
    assert!(report.classes.iter().any(|c| c.abc_class == "C"));
}

#[tokio::test]
async fn high_variance_locations_are_due_earlier_and_fast_movers_more_often() {
    let app = TestApp::spawn().await;
    let w = app.warehouse("Munich").await;
    let steady = app.product("Q-1", 1_000_000).await;
    let shaky = app.product("Q-2", 1_000_000).await;
    let mover = app.product("Q-3", 1_000_000).await;
    let never = app.product("Q-4", 1_000_000).await;
    for p in [&steady, &shaky, &mover, &never] {
        app.stocked(p, &w, 100).await;
    }
    // The mover ships: class A (it is the only product that moved).
    app.ship(&mover, &w, 10).await;
    let good = app
        .create_task_at(&w, "aisle-good", &[&steady, &mover], false)
        .await;
    app.submit(&good.task_id, "alice", &[(&steady, 100), (&mover, 90)])
        .await
        .expect("count");
    app.complete(&good.task_id).await.expect("complete");
    let bad = app.create_task_at(&w, "aisle-bad", &[&shaky], false).await;
    app.submit(&bad.task_id, "alice", &[(&shaky, 97)])
        .await
        .expect("count");
    app.complete(&bad.task_id).await.expect("complete");

    // Wait for the feed to know every position and the mover's shipment.
    let mut due = Vec::new();
    for _ in 0..200 {
        due = app
            .client()
            .list_counts_due(pb::ListCountsDueRequest {
                page_size: 10,
                warehouse_id: w.clone(),
            })
            .await
            .expect("due")
            .into_inner()
            .due;
        if due.len() == 4 && due.iter().any(|d| d.abc_class == "A") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let order: Vec<&str> = due.iter().map(|d| d.product_id.as_str()).collect();
    assert_eq!(order.len(), 4, "{due:?}");
    assert_eq!(order[0], never, "never counted: due now");
    assert_eq!(order[1], mover, "class A: 4 counts a year");
    assert_eq!(
        order[2], shaky,
        "C, but its location had variances: twice a year"
    );
    assert_eq!(order[3], steady, "C at a steady location: once a year");
    assert_eq!(due[1].abc_class, "A");
    assert_eq!(due[2].counts_per_year, 2);
    assert!(due[2].reason.contains("variances"), "{}", due[2].reason);
    assert_eq!(due[2].location, "aisle-bad");
    assert!(due[0].reason.contains("never counted"));
}
