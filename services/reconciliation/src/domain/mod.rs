//! Pure reconciliation rules: no database, no network.

pub mod abc;
pub mod evaluate;
pub mod kpi;
pub mod schedule;
pub mod tolerance;
pub mod variance;
