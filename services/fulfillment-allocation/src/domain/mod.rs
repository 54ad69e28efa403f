//! Pure allocation rules: no database, no network.

pub mod geo;
pub mod planner;
