//! What every service's tests stand on (a dev-dependency):
//!
//! - [`TestDatabase`]: a fresh PostgreSQL database per test, dropped afterwards;
//! - [`TestServer`]: any service ([`App`]) started on port 0 against it, stopped on drop;
//! - [`StockServer`]: a real stock service, for the tests of the services that call it;
//! - [`ServiceProcess`]: a service binary in a process of its own, to `kill -9` at a
//!   failpoint;
//! - [`FaultyProxy`]: a TCP line to cut or slow down between a service and its database
//!   or a peer;
//! - [`bad_fields`], [`error_info`], [`assert_idempotent`]: the answers every API gives;
//! - [`cancel`]: requests cancelled at random points, and the checks that none left a
//!   connection inside a transaction;
//! - [`contract`]: the platform contract (health, both reflection versions, load shedding);
//! - [`fuzz`]: mutated requests for fuzzing a service's validation;
//! - [`init_logs`]: quiet unless `TEST_LOG` is set.

pub mod cancel;
pub mod contract;
mod database;
pub mod fuzz;
mod load;
pub mod pki;
mod process;
mod proxy;
mod server;

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;

pub use database::{TestDatabase, admin_url, citus_workers, create_database, drop_database};
pub use inventory_runtime::App;
pub use load::ReceiptLoad;
pub use process::ServiceProcess;
pub use proxy::FaultyProxy;
pub use server::{StockServer, TestServer, assert_ledger_clean, inventory_level};
use tonic_types::StatusExt;

/// A new request id (UUIDv7).
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Logs for a test run, only when `TEST_LOG` is set (to a filter such as `debug`).
pub fn init_logs() {
    if let Ok(filter) = std::env::var("TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// The fields named by an INVALID_ARGUMENT's BadRequest details, in order.
pub fn bad_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("bad request details")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

/// The ErrorInfo reason and metadata of a FAILED_PRECONDITION from `domain`.
pub fn error_info(status: &tonic::Status, domain: &str) -> (String, HashMap<String, String>) {
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let info = status.get_details_error_info().expect("error info details");
    assert_eq!(info.domain, domain, "{status:?}");
    (info.reason, info.metadata)
}

/// The retry story of every mutating RPC (AIP-155): the same request twice gets the same
/// answer, and the same request id with other parameters is INVALID_ARGUMENT on
/// `request_id`. Returns the first answer; the caller checks the effect happened once.
pub async fn assert_idempotent<Req, Resp, F, Fut>(call: F, request: Req, altered: Req) -> Resp
where
    Req: Clone,
    Resp: PartialEq + Debug,
    F: Fn(Req) -> Fut,
    Fut: Future<Output = Result<Resp, tonic::Status>>,
{
    let first = call(request.clone()).await.expect("first call succeeds");
    let retry = call(request).await.expect("a retry succeeds");
    assert_eq!(first, retry, "a retry replays the first answer");
    let status = call(altered)
        .await
        .expect_err("the same request id with other parameters is refused");
    assert_eq!(bad_fields(&status), ["request_id"], "{status:?}");
    first
}
