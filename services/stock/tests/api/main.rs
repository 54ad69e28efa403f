//! The stock service's tests, one binary: each module drives the real service over gRPC on
//! a fresh database (see `helpers`, built on the shared test kit).

mod batch_orders;
mod cancelled;
mod catalog;
mod concurrency;
mod distribution;
mod feed;
mod helpers;
mod movements;
mod outage;
mod platform;
mod probes;
mod process;
