//! Stock keyed by product, and on a Citus cluster (`TEST_CITUS_WORKERS`, see `.ci/citus`)
//! distributed by it.

use inventory_proto::stock::v1 as pb;

use crate::helpers::{TestApp, new_id, worker_count};

#[tokio::test]
async fn every_key_of_the_per_product_tables_includes_the_product() {
    let app = TestApp::spawn().await;
    let mut db = app.db().await;
    let keys: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT c.conrelid::regclass::text, c.conname,
                EXISTS (SELECT 1 FROM pg_attribute a
                         WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
                           AND a.attname = 'product_id')
           FROM pg_constraint c
          WHERE c.contype IN ('p', 'u')
            AND c.conrelid IN ('inventory'::regclass, 'inventory_transactions'::regclass,
                               'reservations'::regclass)
          ORDER BY 1, 2",
    )
    .fetch_all(&mut db)
    .await
    .expect("keys");
    assert_eq!(keys.len(), 6, "{keys:?}");
    for (table, key, with_product) in &keys {
        assert!(with_product, "{table}.{key} does not include product_id");
    }
}

#[tokio::test]
async fn on_citus_rows_live_with_their_product_and_request_ids_on_the_coordinator() {
    let app = TestApp::spawn().await;
    let mut db = app.db().await;
    let citus: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
            .fetch_one(&mut db)
            .await
            .expect("extensions");
    assert_eq!(
        citus,
        worker_count() > 0,
        "tables distributed exactly on Citus"
    );
    if !citus {
        return;
    }
    let layout: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT logicalrelid::regclass::text,
                CASE WHEN partmethod = 'h' THEN 'distributed'
                     WHEN repmodel = 't' THEN 'reference' ELSE 'coordinator' END,
                colocationid
           FROM pg_dist_partition ORDER BY 1",
    )
    .fetch_all(&mut db)
    .await
    .expect("layout");
    let kinds: Vec<(&str, &str)> = layout
        .iter()
        .map(|(t, k, _)| (t.as_str(), k.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("idempotency_keys", "coordinator"),
            ("inventory", "distributed"),
            ("inventory_transactions", "distributed"),
            ("products", "reference"),
            ("reservations", "distributed"),
            ("warehouses", "reference"),
        ]
    );
    let colocations: std::collections::BTreeSet<i32> = layout
        .iter()
        .filter(|(_, k, _)| k == "distributed")
        .map(|(_, _, c)| *c)
        .collect();
    assert_eq!(
        colocations.len(),
        1,
        "log and reservations co-located with inventory"
    );

    // A two-line order across products on different workers is reserved as one.
    let products = app.products_across_workers("SKU", 2).await;
    let w = app.warehouse("A").await;
    for p in &products {
        app.receive(p, &w, 3).await;
    }
    let mut workers = Vec::new();
    for p in &products {
        workers.push(app.worker_of(p).await.expect("placed"));
    }
    assert_ne!(workers[0], workers[1], "rows on both workers: {workers:?}");
    let lines = products
        .iter()
        .enumerate()
        .map(|(i, p)| pb::ReservationLine {
            order_line_id: i.to_string(),
            product_id: p.clone(),
            warehouse_id: w.clone(),
            quantity: 2,
        })
        .collect();
    app.reserve_order(pb::ReserveOrderRequest {
        request_id: new_id(),
        order_id: "order-1".into(),
        lines,
        ..Default::default()
    })
    .await
    .expect("reserved across workers");
    for p in &products {
        assert_eq!(app.inventory(p, &w).await.quantity_reserved, 2);
    }
    let placement: Vec<(String, i64)> = sqlx::query_as(
        "SELECT nodename || ':' || nodeport, count(*) FROM citus_shards
          WHERE table_name = 'inventory'::regclass GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&mut db)
    .await
    .expect("placement");
    eprintln!("inventory shards per node: {placement:?}; the order's rows on {workers:?}");
    assert_eq!(placement.len(), worker_count(), "shards on every worker");
    app.assert_ledger_clean().await;
}

/// A deployment upgraded after its tables were distributed applies the new migrations to
/// tables Citus holds, and Citus passes a DDL command's text on to its nodes as one command,
/// refusing several statements in it (the runtime runs such a migration as one block). Each
/// migration after stock's 0004 (the first schema Citus can distribute) is applied to a
/// database distributed just before it.
#[tokio::test]
async fn each_migration_applies_where_the_tables_are_already_distributed() {
    const EARLIEST_CUT: i64 = 5;
    if worker_count() == 0 {
        return;
    }
    let all = inventory_runtime::database::with_platform(&stock_service::app::MIGRATOR);
    for cut in all.iter().map(|m| m.version).filter(|v| *v >= EARLIEST_CUT) {
        let database = inventory_testkit::TestDatabase::create().await;
        let mut conn = database.connect("stock").await;
        sqlx::query("CREATE SCHEMA stock")
            .execute(&mut conn)
            .await
            .expect("schema");
        let earlier = sqlx::migrate::Migrator {
            migrations: all
                .iter()
                .filter(|m| m.version < cut)
                .cloned()
                .collect::<Vec<_>>()
                .into(),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        earlier
            .run(&mut conn)
            .await
            .expect("the earlier migrations");
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&format!("{}?options=-csearch_path%3Dstock", database.url))
            .await
            .expect("pool");
        let distributed = inventory_runtime::citus::distribute(
            &pool,
            inventory_runtime::Distribution::Citus,
            &stock_service::app::CITUS_LAYOUT,
        )
        .await
        .expect("distributed");
        assert!(distributed);
        pool.close().await;
        // Every migration from `cut` on, as a service upgraded in place applies them.
        let upgraded = database
            .migrate("stock", &stock_service::app::MIGRATOR)
            .await;
        let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
            .fetch_one(&upgraded)
            .await
            .expect("applied");
        assert_eq!(
            applied,
            i64::try_from(all.iter().count()).expect("count"),
            "from {cut} on"
        );
    }
}
