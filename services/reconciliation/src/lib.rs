//! The reconciliation service: physical counts checked against the system's quantities,
//! discrepancies turned into approved, audited adjustments, and the numbers that decide what
//! to count next.
//!
//! - [`domain`]: pure rules (variance at the moment of counting, approval tolerances, ABC
//!   classification, shrinkage and accuracy, the cycle-count schedule); no I/O.
//! - [`counting`]: judging counted lines against stock's log and applying approved ones as
//!   ADJUST transactions, exactly once.
//! - [`feed`]: what is kept from stock's log (positions, shipments, adjustments).
//! - [`store`]: every SQL statement; [`api`]: the gRPC handlers; [`app`]: settings and start.

pub mod api;
pub mod app;
pub mod counting;
pub mod domain;
pub mod feed;
pub mod store;

pub use app::{MIGRATOR, ReconciliationApp, SPEC};
