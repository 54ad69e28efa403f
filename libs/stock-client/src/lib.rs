//! How the other services reach stock, the only writer of quantities:
//!
//! - [`StockClient`]: the calls they make (availability in batch, reserve an order,
//!   release, ship, receive, adjust, reads, the ledger check, the transaction feed), a trait
//!   so handlers depend on it and unit tests mock it (`MockStockClient`, feature `mock`);
//! - [`GrpcStockClient`]: the implementation over gRPC: `STOCK_URL`, a deadline per call, W3C
//!   trace context, retries only of what is safe ([`retry`]), errors decoded into
//!   [`StockError`] so a caller can re-plan without parsing messages;
//! - [`feed`]: a consumer of the transaction feed that keeps its cursor beside what it
//!   derives, so a restart neither loses nor double-counts an event.

mod client;
mod error;
pub mod feed;
pub mod retry;

#[cfg(any(test, feature = "mock"))]
pub use client::MockStockClient;
pub use client::{
    FeedEvent, FeedStart, GrpcStockClient, StockClient, StockClientOptions, TransactionStream,
};
pub use error::StockError;
pub use feed::{FeedConsumer, FeedHandler, FeedStatus};
pub use inventory_proto::stock::v1 as pb;
pub use retry::RetryPolicy;
