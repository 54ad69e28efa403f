//! Pure stock rules: no I/O, unit-tested on their own.
//!
//! - [`movement`]: how each movement changes an inventory row, the order rows are locked in,
//!   the after-values the log records, and why a rejected movement was rejected;
//! - [`reservation`]: what shipping and releasing do to a reservation;
//! - [`catalog`]: products and warehouses as validated values;
//! - [`feed`]: a position in the transaction feed, and its cursor token.

pub mod catalog;
pub mod feed;
pub mod movement;
pub mod reservation;

/// ErrorInfo domain of every error this service decides.
pub const ERROR_DOMAIN: &str = "stock.inventory";
