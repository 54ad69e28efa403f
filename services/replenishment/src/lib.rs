//! The replenishment service: keeps stock from running out. It knows suppliers and demand,
//! decides when and how much to reorder, and runs purchase orders from draft to receipt.
//!
//! - [`domain`]: the reorder math (reorder point from the lead-time demand the history shows,
//!   EOQ), the purchase order's life, the X12 850 writer; pure, no I/O;
//! - [`store`]: PostgreSQL (suppliers, offers, purchase orders, receipts, the outbox);
//! - [`api`]: the gRPC layer;
//! - [`outbox`]: sends approved POs to suppliers (X12 850 through a transport, or a call
//!   to the supplier's API through [`supplier_api`]);
//! - [`planning`]: reorder policies and the scan, with their inputs gathered (demand and
//!   positions from stock's feed);
//! - [`app`]: wiring, used by the binary and by the tests.

pub mod api;
pub mod app;
pub mod domain;
pub mod outbox;
pub mod planning;
pub mod store;
pub mod supplier_api;

pub use app::ReplenishmentApp;
