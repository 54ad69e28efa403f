//! Stock slow or unreachable behind a faulty line: every call to it has a deadline, what is
//! safe to retry is retried a bounded number of times, the caller gets UNAVAILABLE with
//! nothing held or recorded, and nothing leaks: tasks, stock connections and database
//! sessions are back where they were once the calls are over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::helpers::{POTSDAM, TestApp, order};
use inventory_testkit::{FaultyProxy, StockServer, TestDatabase, TestServer};
use tonic::Code;

/// Sessions the allocation service holds in PostgreSQL, and how many are mid-transaction.
async fn sessions(database: &TestDatabase) -> (i64, i64) {
    let mut db = database.connect("allocation").await;
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE state LIKE 'idle in transaction%')
           FROM pg_stat_activity
          WHERE datname = current_database() AND application_name = 'allocation'",
    )
    .fetch_one(&mut db)
    .await
    .expect("sessions")
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Waits (up to 10 s) until `settled` holds, so what is still finishing can finish.
async fn eventually(what: &str, mut settled: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if settled().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} never settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_then_unreachable_stock_gives_unavailable_holds_nothing_and_leaks_nothing() {
    let database = Arc::new(TestDatabase::create().await);
    let stock = StockServer::spawn_on(database.clone(), &[]).await;
    let proxy = FaultyProxy::start(stock.server.addr).await;
    let url = format!("http://{}", proxy.addr);
    let server = TestServer::spawn::<fulfillment_allocation_service::AllocationApp>(
        database.clone(),
        &[
            ("STOCK_URL", url.as_str()),
            ("WAREHOUSE_REFRESH_MS", "0"),
            ("STOCK_DEADLINE_MS", "300"),
            ("STOCK_RETRY_ATTEMPTS", "2"),
        ],
    )
    .await;
    let app = TestApp::around(server, stock).await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 50).await;
    app.allocate(order("warm-up", &[("1", &mug, 1)]))
        .await
        .expect("allocated while stock is fine");
    let tasks_before = alive_tasks();
    let sessions_before = sessions(&database).await;

    for fault in ["slow", "unreachable"] {
        match fault {
            "slow" => proxy.slow_down(Duration::from_secs(1)),
            _ => {
                proxy.slow_down(Duration::ZERO);
                proxy.cut();
            }
        }
        let calls: Vec<_> = (0..16)
            .map(|i| {
                let mut client = app.client.clone();
                let request = order(&format!("{fault}-{i}"), &[("1", &mug, 1)]);
                tokio::spawn(async move { client.allocate_order(request).await })
            })
            .collect();
        for call in calls {
            let status = call
                .await
                .expect("join")
                .expect_err("stock is not answering");
            assert_eq!(status.code(), Code::Unavailable, "{fault}: {status:?}");
        }
        for i in 0..16 {
            let status = app
                .get(&format!("{fault}-{i}"))
                .await
                .expect_err("nothing recorded");
            assert_eq!(status.code(), Code::NotFound);
        }
    }
    proxy.restore();
    assert_eq!(
        app.stock_level(&mug, &potsdam).await,
        (50, 1),
        "only the warm-up is held"
    );
    app.allocate(order("after", &[("1", &mug, 1)]))
        .await
        .expect("allocated once stock answers again");

    eventually("tasks", async || alive_tasks() <= tasks_before).await;
    eventually("database sessions", async || {
        let (open, in_transaction) = sessions(&database).await;
        in_transaction == 0 && open <= sessions_before.0.max(4)
    })
    .await;
    assert!(
        proxy.open_connections() <= 1,
        "one HTTP/2 connection to stock, not one per failed call: {}",
        proxy.open_connections()
    );
}
