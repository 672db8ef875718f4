//! gRPC-Web for browsers (`GRPC_WEB`), with CORS for the origins in
//! `GRPC_WEB_ALLOWED_ORIGINS`. The translation sits outside every other
//! layer: the call log, load shedding and the message-size rule see a
//! gRPC-Web call as the plain gRPC call it becomes, by the same path and
//! with the same status in its trailers.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tonic_web::GrpcWebLayer;
use tower::layer::util::{Identity, Stack};
use tower::util::Either;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::ServeConfig;

/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

/// Request headers a gRPC-Web client sends (the browser asks before
/// sending them cross-origin).
const ALLOWED_HEADERS: [&str; 8] = [
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "grpc-accept-encoding",
    "grpc-encoding",
    "authorization",
    "x-request-id",
];

/// Response headers a browser lets the page read: the status (when it comes
/// in the headers) and the request id.
const EXPOSED_HEADERS: [&str; 4] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-request-id",
];

/// gRPC-Web and its CORS (`GRPC_WEB`, `GRPC_WEB_ALLOWED_ORIGINS`), when on.
pub(super) fn layer(
    config: &ServeConfig,
) -> anyhow::Result<Option<Stack<GrpcWebLayer, OptionCors>>> {
    let cors = cors(&config.grpc_web_allowed_origins)?;
    if !config.grpc_web {
        anyhow::ensure!(
            cors.is_none(),
            "GRPC_WEB_ALLOWED_ORIGINS is set but GRPC_WEB is off: set GRPC_WEB=true to serve gRPC-Web"
        );
        return Ok(None);
    }
    // CORS outside: it answers preflights (OPTIONS) itself.
    Ok(Some(Stack::new(
        GrpcWebLayer::new(),
        tower::util::option_layer(cors),
    )))
}

type OptionCors = Either<CorsLayer, Identity>;

/// One body type whether or not gRPC-Web is on (its layer answers with
/// tonic's `Body`).
pub(super) fn boxed_body<B>(response: http::Response<B>) -> http::Response<tonic::body::Body>
where
    B: http_body::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    B::Error: Into<tonic::codegen::StdError>,
{
    response.map(tonic::body::Body::new)
}

/// The CORS layer for `GRPC_WEB_ALLOWED_ORIGINS`; `None` when no origin is
/// allowed (a browser then calls only from the server's own origin).
fn cors(allowed_origins: &[String]) -> anyhow::Result<Option<CorsLayer>> {
    let origins: Vec<&str> = allowed_origins
        .iter()
        .map(|origin| origin.trim())
        .filter(|origin| !origin.is_empty())
        .collect();
    let origin = match origins.as_slice() {
        [] => return Ok(None),
        [any] if *any == "*" => AllowOrigin::any(),
        origins => AllowOrigin::list(
            origins
                .iter()
                .map(|origin| {
                    HeaderValue::from_str(origin).map_err(|_| {
                        anyhow::anyhow!("GRPC_WEB_ALLOWED_ORIGINS: {origin:?} is not an origin")
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        ),
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers(ALLOWED_HEADERS.map(HeaderName::from_static))
            .expose_headers(EXPOSED_HEADERS.map(HeaderName::from_static))
            .max_age(PREFLIGHT_MAX_AGE),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(origins: &[&str]) -> Vec<String> {
        origins.iter().map(|origin| (*origin).to_owned()).collect()
    }

    #[test]
    fn no_origin_means_no_cors() {
        assert!(cors(&settings(&[])).expect("valid").is_none());
        assert!(cors(&settings(&["", " "])).expect("valid").is_none());
        assert!(cors(&settings(&["*"])).expect("valid").is_some());
        assert!(
            cors(&settings(&["https://a.example", "http://localhost:3000"]))
                .expect("valid")
                .is_some()
        );
    }

    #[test]
    fn an_origin_that_is_no_header_value_is_refused() {
        let error = cors(&settings(&["https://a.example\u{7f}"])).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "GRPC_WEB_ALLOWED_ORIGINS: \"https://a.example\\u{7f}\" is not an origin"
        );
    }
}
