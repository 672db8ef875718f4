//! The one place where errors become gRPC statuses.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::error::Error;

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => {
                let message = error_message(&violations);
                let mut details = ErrorDetails::new();
                for violation in violations {
                    details.add_bad_request_violation(violation.field, violation.description);
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            Error::NotFound(message) => Status::not_found(message),
            Error::Unauthenticated => Status::unauthenticated("missing or wrong publish token"),
            Error::PermissionDenied(message) => Status::permission_denied(message),
            Error::ResourceExhausted(message) => Status::resource_exhausted(message),
            Error::Unavailable(message) => Status::unavailable(message),
            Error::Internal(detail) => {
                // The detail may name tables or values: it goes to the log,
                // not to the caller.
                tracing::error!(error = %detail, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

fn error_message(violations: &[crate::domain::article::FieldViolation]) -> String {
    violations
        .iter()
        .map(|violation| format!("{}: {}", violation.field, violation.description))
        .collect::<Vec<_>>()
        .join("; ")
}
