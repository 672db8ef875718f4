//! The crate's one error type.

/// Any error a handler or a [`TokenStore`](crate::TokenStore) may return.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a call or a follower failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint URI could not be parsed or used.
    #[error("endpoint: {0}")]
    Endpoint(#[from] tonic::transport::Error),
    /// The service answered with an error status. For a follower, only a
    /// status that [`Reconnect`](crate::Reconnect) does not retry ends up
    /// here (INVALID_ARGUMENT for a token the service rejects, for one).
    #[error("{:?}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// The [`TokenStore`](crate::TokenStore) failed to load or store a token.
    #[error("token store: {0}")]
    TokenStore(#[source] BoxError),
    /// The caller's handler returned an error; the event's token was not stored.
    #[error("handler: {0}")]
    Handler(#[source] BoxError),
    /// The publish token cannot be sent as a header value.
    #[error("the publish token holds characters a header cannot carry")]
    InvalidPublishToken,
    /// The service answered without a field the contract says it always sets.
    #[error("the response has no {0}")]
    MissingField(&'static str),
}

impl Error {
    /// The gRPC status, when the service answered with one.
    pub fn status(&self) -> Option<&tonic::Status> {
        match self {
            Error::Status(status) => Some(status),
            _ => None,
        }
    }
}
