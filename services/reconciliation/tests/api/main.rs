//! The reconciliation service's tests, one binary: the real service over gRPC on a fresh
//! database, beside a real stock service on the same database (see `helpers`).

mod cancelled;
mod counting;
mod crashes;
mod decisions;
mod helpers;
mod platform;
mod reports;
mod validation;
