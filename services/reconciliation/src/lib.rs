//! The reconciliation service: physical counts checked against the system's quantities,
//! discrepancies turned into approved, audited adjustments, and the numbers that decide what
//! to count next.
//!
//! - [`domain`]: pure rules (variance at the moment of counting, approval tolerances, ABC
//!   classification, shrinkage and accuracy, the cycle-count schedule); no I/O.

pub mod domain;
