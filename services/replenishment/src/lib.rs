//! The replenishment service: keeps stock from running out. It knows suppliers and demand,
//! decides when and how much to reorder, and runs purchase orders from draft to receipt.
//!
//! - [`domain`]: the reorder math (reorder point from the lead-time demand the history shows,
//!   EOQ) and the X12 850 writer; pure, no I/O.

pub mod domain;
