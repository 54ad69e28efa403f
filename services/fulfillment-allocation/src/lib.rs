//! The fulfillment-allocation service: decides which warehouses ship each order line and
//! holds the stock for that decision through stock's API (never its tables).
//!
//! - [`domain`]: the planner (pure: distances, one cost, exact and heuristic solvers) and the
//!   explanation of each decision;
//! - [`store`]: PostgreSQL (allocations per order line, warehouse profiles);
//! - [`api`]: the gRPC layer (allocate, lifecycle, profiles);
//! - [`directory`]: stock's warehouses, cached;
//! - [`app`]: wiring, used by the binary and by the tests.

pub mod api;
pub mod app;
pub mod directory;
pub mod domain;
pub mod store;

pub use app::AllocationApp;
