//! A request message over `MAX_MESSAGE_BYTES` is answered RESOURCE_EXHAUSTED,
//! the code gRPC gives a message larger than the configured limit, and the
//! one the contract allows past a limit. tonic refuses such a message before
//! any handler runs, but as OUT_OF_RANGE, which no handler of ours answers.

use http::{HeaderValue, Response};
use tonic::{Code, Status};

/// The start of tonic's message for a request over the limit.
const TOO_LARGE: &str = "Error, decoded message length too large";

/// Rewrites tonic's answer to an oversized request (its status is in the
/// headers: nothing else is sent) from OUT_OF_RANGE to RESOURCE_EXHAUSTED.
pub fn oversized_is_resource_exhausted<B>(mut response: Response<B>) -> Response<B> {
    let oversized = Status::from_header_map(response.headers()).is_some_and(|status| {
        status.code() == Code::OutOfRange && status.message().starts_with(TOO_LARGE)
    });
    if oversized {
        // The code as a number, as `grpc-status` carries it.
        let code = HeaderValue::from(Code::ResourceExhausted as i32);
        response.headers_mut().insert("grpc-status", code);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: &'static str, message: &'static str) -> Response<()> {
        let mut response = Response::new(());
        let headers = response.headers_mut();
        headers.insert("grpc-status", HeaderValue::from_static(status));
        headers.insert("grpc-message", HeaderValue::from_static(message));
        response
    }

    fn status_of(response: &Response<()>) -> &str {
        response.headers()["grpc-status"].to_str().unwrap()
    }

    #[test]
    fn only_an_oversized_request_changes_code() {
        // As tonic writes it: percent-encoded.
        let oversized = response(
            "11",
            "Error,%20decoded%20message%20length%20too%20large:%20found%2065537%20bytes,%20the%20limit%20is:%2065536%20bytes",
        );
        assert_eq!(status_of(&oversized_is_resource_exhausted(oversized)), "8");
        let other = response("11", "page out of range");
        assert_eq!(status_of(&oversized_is_resource_exhausted(other)), "11");
        let not_found = response("5", "Error,%20decoded%20message%20length%20too%20large");
        assert_eq!(status_of(&oversized_is_resource_exhausted(not_found)), "5");
        assert!(
            oversized_is_resource_exhausted(Response::new(()))
                .headers()
                .is_empty()
        );
    }
}
