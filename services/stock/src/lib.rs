//! The stock service: products, warehouses, inventory per product and warehouse,
//! reservations, and the append-only transaction log that is the event log of the system.
//!
//! - [`domain`]: the rules, pure and unit-tested (movements, reservations, catalog values);
//! - [`store`]: PostgreSQL queries, one conditional statement per row, in one lock order;
//! - [`api`]: the gRPC layer (validation, idempotency, conversion);
//! - [`expiry`]: the background release of expired reservations;
//! - [`feed_watch`]: what holds the transaction feed back, sampled;
//! - [`app`]: wiring, used by the binary and by the tests.

pub mod api;
pub mod app;
pub mod domain;
pub mod expiry;
pub mod feed_watch;
pub mod store;

pub use app::{StockApp, StockSettings};
