//! The fulfillment-allocation service's tests, one binary: the real service over gRPC on a
//! fresh database, beside a real stock service on the same database (see `helpers`).

mod allocate;
mod batches;
mod cancelled;
mod crashes;
mod helpers;
mod lifecycle;
mod platform;
mod replan;
mod slow_stock;
mod validation;
