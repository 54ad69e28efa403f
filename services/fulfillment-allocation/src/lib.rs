//! The fulfillment-allocation service: decides which warehouses ship each order line and
//! holds the stock for that decision through stock's API.
//!
//! - [`domain`]: the planner (pure: distances, the cost, exact and heuristic solvers).

pub mod domain;
