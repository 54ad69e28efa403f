//! A small, believable data set loaded through the services' own APIs (so stock's ledger
//! holds every unit): four German warehouses with coordinates and capacities, two dozen
//! products with suppliers and offers, stock levels, a few shipped orders as demand, and
//! reorder policies one of which the next scan will act on.
//!
//! Ids are fixed (the README's walkthrough uses them), so a second `demo` finds the data
//! already there and loads nothing.

use inventory_proto::allocation::v1 as allocation;
use inventory_proto::replenishment::v1 as replenishment;
use inventory_proto::stock::v1 as stock;
use inventory_telemetry::Progress;
use tonic::transport::Channel;

use crate::suite::Addresses;

/// (name, latitude, longitude, allocation capacity in open lines)
pub const WAREHOUSES: [(&str, f64, f64, i64); 4] = [
    ("Berlin DC", 52.520, 13.405, 500),
    ("Hamburg DC", 53.551, 9.993, 300),
    ("Munich DC", 48.137, 11.575, 400),
    ("Cologne DC", 50.937, 6.960, 200),
];

/// (sku, name, category, unit cost in micros)
const PRODUCTS: [(&str, &str, &str, i64); 24] = [
    ("TEE-BLK-M", "Cotton tee, black, M", "apparel", 4_500_000),
    ("TEE-WHT-M", "Cotton tee, white, M", "apparel", 4_500_000),
    ("HOOD-GRY-L", "Hoodie, grey, L", "apparel", 14_000_000),
    ("JEAN-IND-32", "Jeans, indigo, 32", "apparel", 19_000_000),
    ("SOCK-3PK", "Socks, 3-pack", "apparel", 3_200_000),
    ("CAP-NVY", "Cap, navy", "apparel", 5_800_000),
    ("MUG-CER-350", "Ceramic mug, 350 ml", "home", 2_400_000),
    ("BTL-STL-750", "Steel bottle, 750 ml", "home", 7_900_000),
    ("LAMP-DSK-LED", "LED desk lamp", "home", 16_500_000),
    ("PIL-LIN-50", "Linen pillow case, 50 cm", "home", 6_200_000),
    ("TWL-BTH-70", "Bath towel, 70x140", "home", 8_300_000),
    ("CNDL-SOY-200", "Soy candle, 200 g", "home", 3_900_000),
    ("CBL-USBC-1M", "USB-C cable, 1 m", "electronics", 1_900_000),
    ("CHG-65W", "65 W charger", "electronics", 13_500_000),
    ("BUD-WRLS", "Wireless earbuds", "electronics", 22_000_000),
    (
        "PWR-10K",
        "Power bank, 10,000 mAh",
        "electronics",
        11_000_000,
    ),
    ("MSE-WRLS", "Wireless mouse", "electronics", 7_400_000),
    ("KBD-MECH", "Mechanical keyboard", "electronics", 38_000_000),
    ("NTB-A5-DOT", "Notebook A5, dotted", "stationery", 2_100_000),
    (
        "PEN-GEL-BLK",
        "Gel pen, black, 10-pack",
        "stationery",
        3_300_000,
    ),
    ("PLN-2027", "Weekly planner 2027", "stationery", 6_900_000),
    ("TAPE-WASHI", "Washi tape set", "stationery", 2_800_000),
    ("BAG-TOTE", "Canvas tote bag", "accessories", 3_600_000),
    ("UMB-CPT", "Compact umbrella", "accessories", 6_400_000),
];

/// (name, EDI id, default lead time in days)
const SUPPLIERS: [(&str, &str, i32); 3] = [
    ("Nordic Textiles GmbH", "NORDICTEX", 6),
    ("Rhein Home & Living", "RHEINHOME", 4),
    ("Elbe Electronics AG", "ELBEELEC", 8),
];

/// Warehouse `i`'s id (0-based).
pub fn warehouse_id(i: usize) -> String {
    format!("d0000000-0000-4000-8000-1000000000{i:02}")
}

/// Product `i`'s id (0-based).
pub fn product_id(i: usize) -> String {
    format!("d0000000-0000-4000-8000-2000000000{i:02}")
}

/// The product the first reorder scan orders (its Berlin stock is below its point).
pub const LOW_PRODUCT: usize = 6;

/// On hand loaded for product `p` in warehouse `w`: varied, some pairs empty so orders split.
pub fn opening_stock(p: usize, w: usize) -> i64 {
    if p == LOW_PRODUCT && w == 0 {
        return 12;
    }
    if (p + w) % 5 == 4 {
        return 0;
    }
    let base = [120, 60, 90, 40][w];
    base + ((p * 37 + w * 11) % 80) as i64
}

type Failed = Box<dyn std::error::Error + Send + Sync>;

/// Loads the demo through the services at `addresses`; false when it was already there.
pub async fn load(addresses: &Addresses) -> Result<bool, Failed> {
    let channel = |addr: std::net::SocketAddr| {
        Channel::from_shared(format!("http://{addr}")).map(|e| e.connect_lazy())
    };
    let mut stock = stock::stock_service_client::StockServiceClient::new(channel(addresses.stock)?);
    let mut allocation = allocation::allocation_service_client::AllocationServiceClient::new(
        channel(addresses.allocation)?,
    );
    let mut replenishment =
        replenishment::replenishment_service_client::ReplenishmentServiceClient::new(channel(
            addresses.replenishment,
        )?);
    let already = stock
        .get_warehouse(stock::GetWarehouseRequest {
            warehouse_id: warehouse_id(0),
        })
        .await;
    if already.is_ok() {
        tracing::info!("demo data already loaded");
        return Ok(false);
    }
    let progress = Progress::new(
        "loading demo data",
        WAREHOUSES.len() * 2
            + PRODUCTS.len() * (2 + WAREHOUSES.len())
            + SUPPLIERS.len()
            + ORDERS.len() * 2
            + 2,
    );
    for (i, &(name, latitude, longitude, capacity)) in WAREHOUSES.iter().enumerate() {
        stock
            .create_warehouse(stock::CreateWarehouseRequest {
                request_id: format!("demo:warehouse:{i}"),
                warehouse: Some(stock::Warehouse {
                    warehouse_id: warehouse_id(i),
                    name: name.into(),
                    address: format!("{name}, Germany"),
                    r#type: stock::WarehouseType::Fulfillment.into(),
                    location: Some(stock::GeoPoint {
                        latitude,
                        longitude,
                    }),
                    ..Default::default()
                }),
            })
            .await?;
        progress.step();
        allocation
            .set_warehouse_profile(allocation::SetWarehouseProfileRequest {
                request_id: format!("demo:profile:{i}"),
                warehouse_id: warehouse_id(i),
                capacity_lines: Some(capacity),
                paused: false,
            })
            .await?;
        progress.step();
    }
    let mut suppliers = Vec::new();
    for (i, &(name, edi_id, lead)) in SUPPLIERS.iter().enumerate() {
        let supplier = replenishment
            .create_supplier(replenishment::CreateSupplierRequest {
                request_id: format!("demo:supplier:{i}"),
                name: name.into(),
                channel: replenishment::SupplierChannel::Edi.into(),
                edi_qualifier: "ZZ".into(),
                edi_id: edi_id.into(),
                default_lead_time_days: lead,
                api_endpoint: String::new(),
            })
            .await?
            .into_inner()
            .supplier
            .ok_or("no supplier answered")?;
        suppliers.push(supplier.supplier_id);
        progress.step();
    }
    for (p, &(sku, name, category, cost)) in PRODUCTS.iter().enumerate() {
        stock
            .create_product(stock::CreateProductRequest {
                request_id: format!("demo:product:{p}"),
                product: Some(stock::Product {
                    product_id: product_id(p),
                    sku: sku.into(),
                    name: name.into(),
                    category: category.into(),
                    unit_of_measure: "each".into(),
                    reorder_point: 30,
                    reorder_quantity: 150,
                    lead_time_days: 5,
                    unit_cost_micros: cost,
                    ..Default::default()
                }),
            })
            .await?;
        progress.step();
        let supplier = match category {
            "apparel" | "accessories" => &suppliers[0],
            "electronics" => &suppliers[2],
            _ => &suppliers[1],
        };
        replenishment
            .set_supplier_offer(replenishment::SetSupplierOfferRequest {
                request_id: format!("demo:offer:{p}"),
                offer: Some(replenishment::SupplierOffer {
                    supplier_id: supplier.clone(),
                    product_id: product_id(p),
                    unit_cost_micros: cost * 7 / 10,
                    minimum_order_quantity: 50,
                    pack_multiple: 10,
                    lead_time_days: 0,
                    supplier_part_number: format!("SP-{sku}"),
                    ..Default::default()
                }),
            })
            .await?;
        progress.step();
        for w in 0..WAREHOUSES.len() {
            let quantity = opening_stock(p, w);
            if quantity > 0 {
                stock
                    .receive_stock(stock::ReceiveStockRequest {
                        request_id: format!("demo:receive:{p}:{w}"),
                        product_id: product_id(p),
                        warehouse_id: warehouse_id(w),
                        quantity,
                        reference_id: "demo-opening-stock".into(),
                        actor: "demo".into(),
                    })
                    .await?;
            }
            progress.step();
        }
    }
    // Demand: orders allocated and shipped through allocation, as a storefront would.
    for (n, &(latitude, longitude, lines)) in ORDERS.iter().enumerate() {
        let order_id = format!("DEMO-ORDER-{:04}", n + 1);
        let allocated = allocation
            .allocate_order(allocation::AllocateOrderRequest {
                request_id: format!("demo:allocate:{n}"),
                order_id: order_id.clone(),
                destination: Some(allocation::Destination {
                    latitude,
                    longitude,
                    postal_code: String::new(),
                    country: "DE".into(),
                }),
                lines: lines
                    .iter()
                    .enumerate()
                    .map(|(l, &(p, quantity))| allocation::OrderLine {
                        order_line_id: format!("{}", l + 1),
                        product_id: product_id(p),
                        quantity,
                    })
                    .collect(),
                options: None,
                actor: "demo".into(),
            })
            .await?
            .into_inner()
            .allocation
            .ok_or("no allocation answered")?;
        progress.step();
        ship_all(
            &mut allocation,
            &allocated,
            &format!("demo:ship:{n}"),
            "demo",
        )
        .await?;
        progress.step();
    }
    // Purchasing's fixed policies for two pairs; the first is already below its point.
    for (i, (p, w)) in [(LOW_PRODUCT, 0), (0, 0)].into_iter().enumerate() {
        replenishment
            .set_reorder_policy(replenishment::SetReorderPolicyRequest {
                request_id: format!("demo:policy:{i}"),
                product_id: product_id(p),
                warehouse_id: warehouse_id(w),
                source: replenishment::PolicySource::Fixed.into(),
                reorder_point: 40,
                reorder_quantity: 200,
                service_level: 0.0,
                actor: "demo".into(),
            })
            .await?;
        progress.step();
    }
    progress.finish();
    tracing::info!(
        warehouses = WAREHOUSES.len(),
        products = PRODUCTS.len(),
        orders = ORDERS.len(),
        "demo data loaded"
    );
    Ok(true)
}

/// Confirms every shipment of `allocated` in full, one ConfirmShipment per warehouse (request
/// id `{request_prefix}:{warehouse_id}`), as the warehouses would once the parcels leave.
pub async fn ship_all(
    client: &mut allocation::allocation_service_client::AllocationServiceClient<Channel>,
    allocated: &allocation::Allocation,
    request_prefix: &str,
    actor: &str,
) -> Result<(), tonic::Status> {
    for shipment in &allocated.shipments {
        client
            .confirm_shipment(allocation::ConfirmShipmentRequest {
                request_id: format!("{request_prefix}:{}", shipment.warehouse_id),
                order_id: allocated.order_id.clone(),
                warehouse_id: shipment.warehouse_id.clone(),
                lines: shipment
                    .lines
                    .iter()
                    .map(|l| allocation::ShipmentLineQuantity {
                        order_line_id: l.order_line_id.clone(),
                        quantity: l.quantity,
                    })
                    .collect(),
                actor: actor.into(),
            })
            .await?;
    }
    Ok(())
}

/// A demo order: destination (latitude, longitude) and (product, quantity) lines.
type DemoOrder = (f64, f64, &'static [(usize, i64)]);

/// Shipped orders.
const ORDERS: [DemoOrder; 8] = [
    (52.40, 13.06, &[(0, 2), (6, 1)]),
    (53.08, 8.80, &[(1, 1), (12, 3)]),
    (48.78, 9.18, &[(14, 1), (16, 1), (18, 2)]),
    (50.11, 8.68, &[(3, 1), (22, 2)]),
    (51.34, 12.37, &[(9, 2), (10, 1)]),
    (49.45, 11.08, &[(13, 1)]),
    (51.23, 6.78, &[(2, 1), (5, 1), (23, 1)]),
    (54.32, 10.12, &[(7, 2), (19, 5)]),
];
