//! One error type for every service; the gRPC status is decided here and nowhere else.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, PreconditionViolation, StatusExt};

/// What went wrong, in the words of the API: each variant maps to one canonical gRPC code.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    /// Bad input: every offending field, by its path in the request.
    #[error("invalid argument: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// The system is not in a state that allows the operation (not enough stock, wrong status).
    #[error("{message}")]
    FailedPrecondition {
        /// UPPER_SNAKE_CASE, stable for clients to branch on.
        reason: &'static str,
        /// The service that decided, for example `stock.inventory`.
        domain: &'static str,
        message: String,
        /// The numbers that matter (requested, available, ...).
        metadata: Vec<(&'static str, String)>,
    },
    /// Like `FailedPrecondition`, for several subjects at once (each order line that cannot
    /// be served): the ErrorInfo plus a PreconditionFailure naming each subject.
    #[error("{message}")]
    PreconditionsFailed {
        reason: &'static str,
        domain: &'static str,
        message: String,
        metadata: Vec<(&'static str, String)>,
        /// (subject, description): the field path of what failed, and the numbers.
        subjects: Vec<(String, String)>,
    },
    #[error("{resource} {id} not found")]
    NotFound { resource: &'static str, id: String },
    #[error("{resource} {id} already exists")]
    AlreadyExists { resource: &'static str, id: String },
    /// A lost race the client may retry.
    #[error("aborted: {0}")]
    Aborted(String),
    /// A dependency (the database, a peer) is down.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The caller's deadline passed before the work was done; nothing was changed.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// Anything unexpected; the detail is logged, never sent to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Most field violations or precondition subjects one error carries. Error details travel in
/// trailers, and common clients refuse trailers above 16 KiB (they would report
/// RESOURCE_EXHAUSTED instead of our answer): a request with hundreds of bad lines gets the
/// first ones and a count of the rest.
pub const MAX_DETAILS: usize = 20;
/// Violations spelled out in the status message; the details carry the rest.
const MESSAGE_VIOLATIONS: usize = 3;

fn describe(violations: &[FieldViolation]) -> String {
    let shown: Vec<String> = violations
        .iter()
        .take(MESSAGE_VIOLATIONS)
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect();
    match violations.len().saturating_sub(MESSAGE_VIOLATIONS) {
        0 => shown.join("; "),
        more => format!("{} (and {more} more)", shown.join("; ")),
    }
}

/// At most [`MAX_DETAILS`] items, the last saying how many were left out.
fn bounded<T>(mut items: Vec<T>, rest: impl FnOnce(usize) -> T) -> Vec<T> {
    if items.len() > MAX_DETAILS {
        let left_out = items.len() - (MAX_DETAILS - 1);
        items.truncate(MAX_DETAILS - 1);
        items.push(rest(left_out));
    }
    items
}

impl ServiceError {
    /// A single bad field.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn not_found(resource: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            resource,
            id: id.to_string(),
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Self::InvalidArgument(_) => Code::InvalidArgument,
            Self::FailedPrecondition { .. } | Self::PreconditionsFailed { .. } => {
                Code::FailedPrecondition
            }
            Self::NotFound { .. } => Code::NotFound,
            Self::AlreadyExists { .. } => Code::AlreadyExists,
            Self::Aborted(_) => Code::Aborted,
            Self::Unavailable(_) => Code::Unavailable,
            Self::ResourceExhausted(_) => Code::ResourceExhausted,
            Self::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Self::Internal(_) => Code::Internal,
        }
    }
}

/// A handler's result as tonic wants it: the answer, or the error's one status.
pub fn reply<T>(result: Result<T, ServiceError>) -> Result<tonic::Response<T>, Status> {
    result.map(tonic::Response::new).map_err(Status::from)
}

/// The error of one entry of a batch call: the code, message and details the same request
/// alone would have failed with.
pub fn rpc_status(error: ServiceError) -> tonic_types::Status {
    let status = Status::from(error);
    // A status with details carries them as an encoded google.rpc.Status already.
    match <tonic_types::Status as prost::Message>::decode(status.details()) {
        Ok(full) if !status.details().is_empty() => full,
        _ => tonic_types::Status {
            code: status.code() as i32,
            message: status.message().to_owned(),
            details: Vec::new(),
        },
    }
}

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let code = error.code();
        match error {
            ServiceError::InvalidArgument(violations) => {
                let message = format!("invalid argument: {}", describe(&violations));
                let violations = bounded(violations, |n| {
                    FieldViolation::new("*", format!("{n} more fields are invalid"))
                });
                let mut details = ErrorDetails::new();
                details.set_bad_request(violations);
                Status::with_error_details(code, message, details)
            }
            ServiceError::FailedPrecondition {
                reason,
                domain,
                message,
                metadata,
            } => {
                let metadata: HashMap<String, String> = metadata
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                Status::with_error_details(
                    code,
                    message,
                    ErrorDetails::with_error_info(reason, domain, metadata),
                )
            }
            ServiceError::PreconditionsFailed {
                reason,
                domain,
                message,
                metadata,
                subjects,
            } => {
                let metadata: HashMap<String, String> = metadata
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect();
                let mut details = ErrorDetails::with_error_info(reason, domain, metadata);
                let violations = subjects
                    .into_iter()
                    .map(|(subject, description)| {
                        PreconditionViolation::new(reason, subject, description)
                    })
                    .collect::<Vec<_>>();
                details.set_precondition_failure(bounded(violations, |n| {
                    PreconditionViolation::new(reason, "*", format!("{n} more"))
                }));
                Status::with_error_details(code, message, details)
            }
            ServiceError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                Status::internal("internal error")
            }
            other => Status::new(code, other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hundreds_of_bad_fields_make_a_small_error() {
        let violations = (0..200)
            .map(|i| FieldViolation::new(format!("lines[{i}].quantity"), "must be positive, got 0"))
            .collect();
        let status = Status::from(ServiceError::InvalidArgument(violations));
        let size = status.message().len() + status.details().len();
        assert!(size < 4096, "{size} bytes");
        let fields = status
            .get_details_bad_request()
            .expect("bad request")
            .field_violations;
        assert_eq!(fields.len(), MAX_DETAILS);
        assert_eq!(fields[0].field, "lines[0].quantity");
        assert!(fields[MAX_DETAILS - 1].description.starts_with("181 more"));
        assert!(
            status.message().contains("and 197 more"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn hundreds_of_failed_subjects_make_a_small_error() {
        let status = Status::from(ServiceError::PreconditionsFailed {
            reason: "ORDER_NOT_SERVABLE",
            domain: "allocation",
            message: "short".to_owned(),
            metadata: vec![],
            subjects: (0..200)
                .map(|i| (format!("lines[{i}]"), "requested 5, at most 0".to_owned()))
                .collect(),
        });
        assert!(status.details().len() < 4096);
        let failure = status.get_details_precondition_failure().expect("details");
        assert_eq!(failure.violations.len(), MAX_DETAILS);
    }
}
