//! Stock's answers as typed errors, decoded once from the status and its google.rpc details.

use std::collections::BTreeMap;

use inventory_core::ServiceError;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The ErrorInfo domain of stock's refusals.
pub const STOCK_DOMAIN: &str = "stock.inventory";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StockError {
    /// A line cannot be held: what was asked and what is available now, so the caller can
    /// re-plan (another warehouse, a smaller quantity) without parsing a message.
    #[error(
        "insufficient stock of product {product_id} in warehouse {warehouse_id}: requested {requested}, available {available}"
    )]
    InsufficientStock {
        product_id: String,
        warehouse_id: String,
        requested: i64,
        available: i64,
    },
    /// An adjustment's `expected_on_hand` no longer holds: something moved since the count.
    #[error("on hand changed: expected {expected}, now {actual}")]
    OnHandChanged { expected: i64, actual: i64 },
    /// Any other FAILED_PRECONDITION (reservation not active, exceeds what is reserved,
    /// adjustment below zero or below reserved), with stock's reason and numbers.
    #[error("stock refused ({reason}): {message}")]
    Refused {
        reason: String,
        message: String,
        metadata: BTreeMap<String, String>,
    },
    /// The request was malformed: a bug in the caller. Each bad field, with why.
    #[error("stock refused the request as invalid: {message}")]
    InvalidArgument {
        message: String,
        fields: Vec<(String, String)>,
    },
    #[error("not found in stock: {0}")]
    NotFound(String),
    #[error("already exists in stock: {0}")]
    AlreadyExists(String),
    /// Stock is down or shedding load, still after the retries.
    #[error("stock unavailable: {0}")]
    Unavailable(String),
    /// A lost race, still after the retries.
    #[error("stock aborted the call: {0}")]
    Aborted(String),
    #[error("stock did not answer within the deadline: {0}")]
    DeadlineExceeded(String),
    #[error("stock answered {code:?}: {message}")]
    Other { code: Code, message: String },
}

impl StockError {
    pub fn code(&self) -> Code {
        match self {
            Self::InsufficientStock { .. } | Self::OnHandChanged { .. } | Self::Refused { .. } => {
                Code::FailedPrecondition
            }
            Self::InvalidArgument { .. } => Code::InvalidArgument,
            Self::NotFound(_) => Code::NotFound,
            Self::AlreadyExists(_) => Code::AlreadyExists,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Aborted(_) => Code::Aborted,
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::Other { code, .. } => *code,
        }
    }
}

fn number(metadata: &BTreeMap<String, String>, key: &str) -> i64 {
    metadata
        .get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

/// A batch entry's error, read as the same call alone would have failed.
impl From<tonic_types::Status> for StockError {
    fn from(status: tonic_types::Status) -> Self {
        let code = Code::from(status.code);
        let message = status.message.clone();
        let details = if status.details.is_empty() {
            tonic::codegen::Bytes::new()
        } else {
            tonic::codegen::Bytes::from(prost::Message::encode_to_vec(&status))
        };
        Self::from(Status::with_details(code, message, details))
    }
}

impl From<Status> for StockError {
    fn from(status: Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::FailedPrecondition => {
                let Some(info) = status.get_details_error_info() else {
                    return Self::Refused {
                        reason: String::new(),
                        message,
                        metadata: BTreeMap::new(),
                    };
                };
                let metadata: BTreeMap<String, String> = info.metadata.into_iter().collect();
                match info.reason.as_str() {
                    "INSUFFICIENT_STOCK" => Self::InsufficientStock {
                        product_id: metadata.get("product_id").cloned().unwrap_or_default(),
                        warehouse_id: metadata.get("warehouse_id").cloned().unwrap_or_default(),
                        requested: number(&metadata, "requested"),
                        available: number(&metadata, "available"),
                    },
                    "ON_HAND_CHANGED" => Self::OnHandChanged {
                        expected: number(&metadata, "expected_on_hand"),
                        actual: number(&metadata, "on_hand"),
                    },
                    _ => Self::Refused {
                        reason: info.reason,
                        message,
                        metadata,
                    },
                }
            }
            Code::InvalidArgument => Self::InvalidArgument {
                fields: status
                    .get_details_bad_request()
                    .map(|b| {
                        b.field_violations
                            .into_iter()
                            .map(|v| (v.field, v.description))
                            .collect()
                    })
                    .unwrap_or_default(),
                message,
            },
            Code::NotFound => Self::NotFound(message),
            Code::AlreadyExists => Self::AlreadyExists(message),
            Code::Unavailable | Code::ResourceExhausted => Self::Unavailable(message),
            // A call cut off by a broken connection: tonic reports UNKNOWN with the transport
            // error as its source; stock never answered, so it is an outage like any other
            // (and retrying the same request id is safe).
            Code::Unknown if std::error::Error::source(&status).is_some() => {
                Self::Unavailable(message)
            }
            Code::Aborted => Self::Aborted(message),
            Code::DeadlineExceeded | Code::Cancelled => Self::DeadlineExceeded(message),
            code => Self::Other { code, message },
        }
    }
}

/// How a service answers its own caller when stock refused or failed: stock's refusal stays
/// a refusal (with stock's reason and numbers), stock being down is UNAVAILABLE, and a value
/// stock refused as invalid is INVALID_ARGUMENT naming stock's field (and logged: the
/// caller's checks should have caught it).
impl From<StockError> for ServiceError {
    fn from(error: StockError) -> Self {
        match error {
            StockError::InsufficientStock {
                product_id,
                warehouse_id,
                requested,
                available,
            } => ServiceError::FailedPrecondition {
                reason: "INSUFFICIENT_STOCK",
                domain: STOCK_DOMAIN,
                message: format!(
                    "insufficient stock of product {product_id} in warehouse {warehouse_id}: requested {requested}, available {available}"
                ),
                metadata: vec![
                    ("product_id", product_id),
                    ("warehouse_id", warehouse_id),
                    ("requested", requested.to_string()),
                    ("available", available.to_string()),
                ],
            },
            StockError::OnHandChanged { expected, actual } => ServiceError::FailedPrecondition {
                reason: "ON_HAND_CHANGED",
                domain: STOCK_DOMAIN,
                message: format!("on hand changed: expected {expected}, now {actual}"),
                metadata: vec![
                    ("expected_on_hand", expected.to_string()),
                    ("on_hand", actual.to_string()),
                ],
            },
            StockError::Refused {
                reason,
                message,
                metadata,
            } => ServiceError::FailedPrecondition {
                reason: "STOCK_REFUSED",
                domain: STOCK_DOMAIN,
                message: format!("stock refused ({reason}): {message}"),
                metadata: std::iter::once(("stock_reason", reason))
                    .chain(
                        metadata
                            .into_iter()
                            .filter_map(|(k, v)| known_key(&k).map(|k| (k, v))),
                    )
                    .collect(),
            },
            StockError::NotFound(message) => ServiceError::NotFound {
                resource: "stock record",
                id: message,
            },
            StockError::InvalidArgument { message, fields } => {
                // What this service sent broke a limit of stock's: its own checks should have
                // caught it (logged, to be fixed), and the caller learns which value.
                tracing::warn!(%message, "stock refused a request as invalid");
                if fields.is_empty() {
                    ServiceError::invalid("stock", message)
                } else {
                    ServiceError::InvalidArgument(
                        fields
                            .into_iter()
                            .map(|(field, description)| {
                                tonic_types::FieldViolation::new(
                                    format!("stock.{field}"),
                                    format!("stock refused it: {description}"),
                                )
                            })
                            .collect(),
                    )
                }
            }
            StockError::Aborted(message) => ServiceError::Aborted(format!("stock: {message}")),
            StockError::Unavailable(message) | StockError::DeadlineExceeded(message) => {
                ServiceError::Unavailable(format!("stock: {message}"))
            }
            other => ServiceError::Internal(format!("calling stock: {other}")),
        }
    }
}

/// The metadata keys stock uses, as static names (ServiceError keeps keys static).
fn known_key(key: &str) -> Option<&'static str> {
    [
        "reservation_id",
        "status",
        "requested",
        "reserved",
        "held",
        "quantity_delta",
        "on_hand",
        "available",
        "product_id",
        "warehouse_id",
    ]
    .into_iter()
    .find(|k| *k == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insufficient_stock_is_decoded_with_its_numbers() {
        let status: Status = ServiceError::FailedPrecondition {
            reason: "INSUFFICIENT_STOCK",
            domain: STOCK_DOMAIN,
            message: "not enough".to_owned(),
            metadata: vec![
                ("product_id", "p".to_owned()),
                ("warehouse_id", "w".to_owned()),
                ("requested", "5".to_owned()),
                ("available", "3".to_owned()),
            ],
        }
        .into();
        assert_eq!(
            StockError::from(status),
            StockError::InsufficientStock {
                product_id: "p".to_owned(),
                warehouse_id: "w".to_owned(),
                requested: 5,
                available: 3,
            }
        );
    }

    #[test]
    fn bad_fields_are_decoded() {
        let status: Status = ServiceError::invalid("quantity", "must be positive").into();
        let StockError::InvalidArgument { fields, .. } = StockError::from(status) else {
            panic!("expected invalid argument");
        };
        assert_eq!(
            fields,
            [("quantity".to_owned(), "must be positive".to_owned())]
        );
    }

    #[test]
    fn a_batch_entry_error_decodes_as_the_same_call_alone() {
        let refusal = || ServiceError::FailedPrecondition {
            reason: "INSUFFICIENT_STOCK",
            domain: STOCK_DOMAIN,
            message: "not enough".to_owned(),
            metadata: vec![
                ("product_id", "p".to_owned()),
                ("requested", "5".to_owned()),
                ("available", "3".to_owned()),
            ],
        };
        let entry = inventory_core::error::rpc_status(refusal());
        assert_eq!(
            StockError::from(entry),
            StockError::from(Status::from(refusal()))
        );
        let bad = inventory_core::error::rpc_status(ServiceError::invalid("quantity", "zero"));
        assert!(matches!(
            StockError::from(bad),
            StockError::InvalidArgument { fields, .. } if fields == [("quantity".to_owned(), "zero".to_owned())]
        ));
        // An error without details keeps its code and message.
        let gone = inventory_core::error::rpc_status(ServiceError::not_found("product", "p-1"));
        assert!(matches!(StockError::from(gone), StockError::NotFound(m) if m.contains("p-1")));
    }

    #[test]
    fn stock_down_is_unavailable_to_our_caller() {
        let error = StockError::from(Status::unavailable("shutting down"));
        assert_eq!(ServiceError::from(error).code(), Code::Unavailable);
    }
}
