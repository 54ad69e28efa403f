//! Pure replenishment rules: no database, no network.

pub mod policy;
pub mod purchase_order;
pub mod simulation;
pub mod x12;
