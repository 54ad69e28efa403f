//! The replenishment service's tests, one binary: the real service over gRPC on a fresh
//! database, beside a real stock service on the same database (see `helpers`).

mod api_suppliers;
mod cancelled;
mod crashes;
mod helpers;
mod orders;
mod platform;
mod policies;
mod receipts;
mod suppliers;
