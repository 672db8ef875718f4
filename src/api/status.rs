//! The one place where errors become gRPC statuses.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::article::describe_violations;
use crate::error::Error;

/// `google.rpc.ErrorInfo` of a withdrawn article (the contract's values).
const WITHDRAWN_REASON: &str = "ARTICLE_WITHDRAWN";
const ERROR_DOMAIN: &str = "newsroom.content.v1";

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(violations) => {
                let message = describe_violations(&violations);
                let mut details = ErrorDetails::new();
                for violation in violations {
                    details.add_bad_request_violation(violation.field, violation.description);
                }
                Status::with_error_details(Code::InvalidArgument, message, details)
            }
            Error::NotFound(message) => Status::not_found(message),
            Error::Withdrawn => {
                let mut details = ErrorDetails::new();
                details.set_error_info(WITHDRAWN_REASON, ERROR_DOMAIN, HashMap::new());
                Status::with_error_details(Code::NotFound, "the article was withdrawn", details)
            }
            Error::FailedPrecondition(message) => Status::failed_precondition(message),
            Error::Unauthenticated => Status::unauthenticated("missing or wrong publish token"),
            Error::PermissionDenied(message) => Status::permission_denied(message),
            Error::ResourceExhausted(message) => Status::resource_exhausted(message),
            Error::DeadlineExceeded(message) => Status::deadline_exceeded(message),
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
