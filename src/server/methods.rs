//! The gRPC methods this server offers, recognised by their request path
//! (`/service/method`). Service names come from the generated code; method
//! names are spelt here, because tonic-prost-build 0.14 writes the paths only
//! as literals inside each server's `call` (no constant to refer to).

use tonic_health::pb::health_server::SERVICE_NAME as HEALTH;
use tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME as REFLECTION_V1;
use tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME as REFLECTION_V1ALPHA;

use crate::proto::article_service_server::SERVICE_NAME as ARTICLES;

/// The service and the method of a request path.
fn split(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix('/')?.split_once('/')
}

/// Whether the call lives as long as its client wants (a stream that never
/// ends on its own).
pub(super) fn is_long_lived(path: &str) -> bool {
    matches!(
        split(path),
        Some(
            (ARTICLES, "StreamNewArticles")
                | (HEALTH, "Watch")
                | (REFLECTION_V1 | REFLECTION_V1ALPHA, "ServerReflectionInfo")
        )
    )
}

/// Whether this server offers the method (a client may send any path).
pub(super) fn is_offered(path: &str) -> bool {
    matches!(
        split(path),
        Some(
            (
                ARTICLES,
                "GetArticle"
                    | "ListArticlesByTag"
                    | "StreamNewArticles"
                    | "PublishArticle"
                    | "ListTags"
            ) | (HEALTH, "Check" | "Watch")
                | (REFLECTION_V1 | REFLECTION_V1ALPHA, "ServerReflectionInfo")
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_recognised_by_service_and_method() {
        for path in [
            "/newsroom.content.v1.ArticleService/StreamNewArticles",
            "/grpc.health.v1.Health/Watch",
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            assert!(is_long_lived(path), "{path}");
            assert!(is_offered(path), "{path}");
        }
        for path in [
            "/newsroom.content.v1.ArticleService/GetArticle",
            "/newsroom.content.v1.ArticleService/ListTags",
            "/grpc.health.v1.Health/Check",
        ] {
            assert!(!is_long_lived(path), "{path}");
            assert!(is_offered(path), "{path}");
        }
        for path in [
            "/newsroom.content.v1.ArticleService/Other",
            "/newsroom.content.v1.ArticleService",
            "newsroom.content.v1.ArticleService/GetArticle",
            "/other.Service/GetArticle",
            "/",
            "",
        ] {
            assert!(!is_long_lived(path), "{path}");
            assert!(!is_offered(path), "{path}");
        }
    }
}
