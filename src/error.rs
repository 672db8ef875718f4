//! The service's one error type. Every layer returns it; `api::status` maps
//! it to a gRPC status in one place.

use crate::domain::article::{FieldViolation, describe_violations};

/// `Clone`: one failed batched lookup (`store::lookups`) answers each of
/// its callers with the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The request breaks a rule; each violation names its field.
    #[error("invalid argument: {}", describe_violations(.0))]
    InvalidArgument(Vec<FieldViolation>),
    #[error("{0}")]
    NotFound(String),
    /// The article was taken down: NOT_FOUND, with a detail that tells a
    /// takedown from an article that never existed.
    #[error("the article was withdrawn")]
    Withdrawn,
    /// The request is valid but the article's state does not allow it.
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("missing or wrong publish token")]
    Unauthenticated,
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    ResourceExhausted(String),
    /// The caller's own deadline ran out before the call was done.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// The database (or the server itself, while shutting down) cannot serve
    /// the call now; retrying later is safe.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected database error: logged in full, answered
    /// without details.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}

impl From<FieldViolation> for Error {
    fn from(violation: FieldViolation) -> Self {
        Self::InvalidArgument(vec![violation])
    }
}

impl From<Vec<FieldViolation>> for Error {
    fn from(violations: Vec<FieldViolation>) -> Self {
        Self::InvalidArgument(violations)
    }
}

/// Database errors: anything that means "the database cannot be reached or
/// cannot take us now" is UNAVAILABLE; the rest is a bug (INTERNAL).
/// sqlx's messages carry no credentials, but we still log rather than return
/// them.
impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => {
                Self::Unavailable("the database cannot be reached".into())
            }
            // The SQLSTATE (never the database's message, which may name a
            // role or a database) tells an operator which of these it is.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|code| is_unavailable_sqlstate(&code)) =>
            {
                Self::Unavailable(format!(
                    "the database cannot serve requests now (SQLSTATE {})",
                    db.code().unwrap_or_default()
                ))
            }
            _ => Self::Internal(error.to_string()),
        }
    }
}

/// SQLSTATEs that mean the database cannot take us now, not that the query
/// is wrong, by class: connection exceptions (08), insufficient resources
/// (53), operator intervention (57: shutdown, cannot connect now), a
/// serialization or deadlock retry (40), credentials refused (28: a password
/// rotated under us), errors outside PostgreSQL (58: I/O); and one by one: a
/// database that does not exist (3D000: not created yet, or being restored)
/// and a read-only transaction (25006: the primary became a standby in a
/// failover). Each is the deployment's state, which an operator or the next
/// retry fixes.
fn is_unavailable_sqlstate(code: &str) -> bool {
    ["08", "53", "57", "40", "28", "58"]
        .iter()
        .any(|class| code.starts_with(class))
        || ["3D000", "25006"].contains(&code)
}

#[cfg(test)]
mod tests {
    use super::is_unavailable_sqlstate;

    #[test]
    fn the_deployments_state_is_unavailable_and_a_bad_query_is_not() {
        for code in [
            "08006", "53300", "57P01", "40001", "28P01", "58030", "3D000", "25006",
        ] {
            assert!(is_unavailable_sqlstate(code), "{code}");
        }
        for code in ["42P01", "23505", "22P02", "25001", "3D001"] {
            assert!(!is_unavailable_sqlstate(code), "{code}");
        }
    }
}
