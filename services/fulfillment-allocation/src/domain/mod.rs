//! Pure allocation rules: no database, no network.

pub mod explain;
pub mod geo;
pub mod planner;
