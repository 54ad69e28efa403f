//! Pure replenishment rules: no database, no network.

pub mod policy;
pub mod x12;
