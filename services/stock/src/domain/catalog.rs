//! Products and warehouses as validated values. The gRPC layer builds them from requests;
//! the store persists them.

use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub category: String,
    pub unit_of_measure: String,
    pub reorder_point: i64,
    pub reorder_quantity: i64,
    pub lead_time_days: i32,
    pub unit_cost_micros: i64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

/// The fields an update may replace; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProductPatch {
    pub sku: Option<String>,
    pub name: Option<String>,
    pub category: Option<String>,
    pub unit_of_measure: Option<String>,
    pub reorder_point: Option<i64>,
    pub reorder_quantity: Option<i64>,
    pub lead_time_days: Option<i32>,
    pub unit_cost_micros: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarehouseType {
    Fulfillment,
    Distribution,
    Retail,
}

impl WarehouseType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fulfillment => "FULFILLMENT",
            Self::Distribution => "DISTRIBUTION",
            Self::Retail => "RETAIL",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Fulfillment, Self::Distribution, Self::Retail]
            .into_iter()
            .find(|t| t.as_str() == value)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Warehouse {
    pub warehouse_id: Uuid,
    pub name: String,
    pub address: String,
    pub warehouse_type: WarehouseType,
    pub latitude: f64,
    pub longitude: f64,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct WarehousePatch {
    pub name: Option<String>,
    pub address: Option<String>,
    pub warehouse_type: Option<WarehouseType>,
    pub location: Option<(f64, f64)>,
}
