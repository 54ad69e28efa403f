//! The suite: the four inventory services in one process for development and demos, each on
//! its own port with its own schema and settings, wired over real gRPC (each service keeps
//! its own binary for production).
//!
//! - [`database`]: a PostgreSQL with no set-up step (found, created or started privately).
//! - [`suite`]: starting and stopping the four services.
//! - [`demo`]: a small, believable data set loaded through the services' APIs.

pub mod database;
pub mod demo;
pub mod suite;

pub use suite::{Addresses, SERVICE_NAMES, Suite};
