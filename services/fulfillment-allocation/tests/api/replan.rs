//! When stock moves between planning and reserving, the order is planned again with fresh
//! numbers (here with a scripted stock, to make the race certain); when stock is down, the
//! caller gets UNAVAILABLE and nothing is left half-done (with the real stock).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use fulfillment_allocation_service::api::AllocationApi;
use fulfillment_allocation_service::app::MIGRATOR;
use fulfillment_allocation_service::directory::Directory;
use inventory_proto::allocation::v1 as pb;
use inventory_proto::allocation::v1::allocation_service_server::AllocationService;
use inventory_runtime::database::page_tokens;
use inventory_stock_client::{MockStockClient, StockError, pb as stock};
use inventory_testkit::{StockServer, TestDatabase};
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{MUNICH, POTSDAM, TestApp, order, sources};

/// A warehouse as a scripted stock lists it.
pub fn warehouse(id: Uuid, name: &str, (latitude, longitude): (f64, f64)) -> stock::Warehouse {
    stock::Warehouse {
        warehouse_id: id.to_string(),
        name: name.to_owned(),
        location: Some(stock::GeoPoint {
            latitude,
            longitude,
        }),
        ..Default::default()
    }
}

/// A scripted stock listing `warehouses`, with `units_in(warehouse)` of every product there.
pub fn scripted_stock(
    warehouses: Vec<stock::Warehouse>,
    units_in: impl Fn(Uuid) -> i64 + Send + 'static,
) -> MockStockClient {
    let mut stock = MockStockClient::new();
    stock.expect_list_warehouses().returning(move |_| {
        Ok(stock::ListWarehousesResponse {
            warehouses: warehouses.clone(),
            next_page_token: String::new(),
        })
    });
    stock
        .expect_batch_get_availability()
        .returning(move |keys| {
            Ok(keys
                .into_iter()
                .map(|k| {
                    let units = Uuid::parse_str(&k.warehouse_id).map_or(0, &units_in);
                    stock::Availability {
                        product_id: k.product_id,
                        warehouse_id: k.warehouse_id,
                        quantity_on_hand: units,
                        quantity_reserved: 0,
                        quantity_available: units,
                    }
                })
                .collect())
        });
    stock
}

/// The allocation API over a scripted stock (three plans per order), without batches.
pub async fn api_over(pool: &sqlx::PgPool, stock: MockStockClient) -> AllocationApi {
    let stock = Arc::new(stock);
    AllocationApi::new(
        pool.clone(),
        page_tokens(pool).await.expect("page key"),
        stock.clone(),
        Directory::new(stock, std::time::Duration::ZERO),
        3,
    )
}

#[tokio::test]
async fn stock_taken_between_plan_and_reserve_leads_to_a_new_plan_not_an_oversell() {
    let database = TestDatabase::create().await;
    let pool = database.migrate("allocation", &MIGRATOR).await;
    let (potsdam, munich, mug) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    // The first look sees 5 in Potsdam (the order's one product); by the second, another
    // buyer took them.
    let potsdam_looks = Arc::new(AtomicUsize::new(0));
    let looked = potsdam_looks.clone();
    let mut stock = scripted_stock(
        vec![
            warehouse(potsdam, "Potsdam", POTSDAM),
            warehouse(munich, "Munich", MUNICH),
        ],
        move |at| match at == potsdam {
            true if looked.fetch_add(1, Ordering::SeqCst) == 0 => 5,
            true => 0,
            false => 5,
        },
    );
    stock
        .expect_list_reservations()
        .returning(|_| Ok(Vec::new()));
    let reserved = Arc::new(Mutex::new(Vec::new()));
    let record = reserved.clone();
    stock.expect_reserve_order().returning(move |request| {
        record.lock().expect("record").push(request.clone());
        let line = &request.lines[0];
        if line.warehouse_id == potsdam.to_string() {
            Err(StockError::InsufficientStock {
                product_id: line.product_id.clone(),
                warehouse_id: line.warehouse_id.clone(),
                requested: line.quantity,
                available: 0,
            })
        } else {
            Ok(stock::ReserveOrderResponse::default())
        }
    });
    let api = api_over(&pool, stock).await;
    let response = api
        .allocate_order(tonic::Request::new(order(
            "o-1",
            &[("1", &mug.to_string(), 2)],
        )))
        .await
        .expect("allocated on the second plan")
        .into_inner();
    let allocation = response.allocation.expect("allocation");
    assert_eq!(
        sources(&allocation),
        [("1".to_owned(), munich.to_string(), 2)]
    );
    let attempts = reserved.lock().expect("attempts");
    assert_eq!(attempts.len(), 2);
    assert_ne!(
        attempts[0].request_id, attempts[1].request_id,
        "a failed stock request never answers for another plan"
    );
    assert_eq!(
        potsdam_looks.load(Ordering::SeqCst),
        2,
        "fresh numbers for the second plan"
    );
}

#[tokio::test]
async fn with_stock_down_allocation_is_unavailable_records_nothing_and_completes_when_it_returns() {
    let mut app = TestApp::spawn_with(&[("STOCK_RETRY_ATTEMPTS", "2")]).await;
    let potsdam = app.warehouse("Potsdam", POTSDAM).await;
    let mug = app.product("MUG").await;
    app.receive(&mug, &potsdam, 5).await;
    app.stock.server.stop().await;
    let request = order("o-1", &[("1", &mug, 1)]);
    let status = app
        .allocate(request.clone())
        .await
        .expect_err("stock is down");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let status = app.get("o-1").await.expect_err("nothing recorded");
    assert_eq!(status.code(), Code::NotFound);

    // Stock comes back where it was: the caller's retry of the same request completes.
    let addr = app.stock.server.addr.to_string();
    let database = app.stock.server.database.clone();
    app.stock = StockServer::spawn_on(database, &[("LISTEN_ADDR", addr.as_str())]).await;
    let allocation = app
        .allocate(request)
        .await
        .expect("allocated once stock is back");
    assert_eq!(allocation.status, pb::AllocationStatus::Allocated as i32);
    assert_eq!(app.stock.level(&mug, &potsdam).await, Some((5, 1)));
}

/// Stock held the order but its answer was lost (the call's deadline passed): the caller
/// gets the error, and allocation releases what stock may hold for the order, so no hold
/// outlives an attempt it gave up on.
#[tokio::test]
async fn an_attempt_whose_hold_may_have_landed_is_released_when_allocation_gives_up() {
    let database = TestDatabase::create().await;
    let pool = database.migrate("allocation", &MIGRATOR).await;
    let (potsdam, mug) = (Uuid::now_v7(), Uuid::now_v7());
    let mut stock = scripted_stock(vec![warehouse(potsdam, "Potsdam", POTSDAM)], |_| 5);
    stock
        .expect_list_reservations()
        .returning(|_| Ok(Vec::new()));
    stock.expect_reserve_order().times(1).returning(|_| {
        Err(StockError::DeadlineExceeded(
            "the hold committed, the answer did not arrive".to_owned(),
        ))
    });
    let released = Arc::new(Mutex::new(Vec::new()));
    let record = released.clone();
    stock.expect_release().returning(move |request| {
        record
            .lock()
            .expect("record")
            .push(request.order_id.clone());
        Ok(stock::ReleaseReservationResponse::default())
    });
    let api = api_over(&pool, stock).await;
    let status = api
        .allocate_order(tonic::Request::new(order(
            "o-1",
            &[("1", &mug.to_string(), 2)],
        )))
        .await
        .expect_err("stock's answer was lost");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(*released.lock().expect("released"), ["o-1"]);
}
