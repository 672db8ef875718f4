//! The gRPC methods this server offers, recognised by their request path
//! (`/service/method`). Service names come from the generated code; method
//! names are spelt here, because tonic-prost-build 0.14 writes the paths only
//! as literals inside each server's `call` (no constant to refer to).

use tonic_health::pb::health_server::SERVICE_NAME as HEALTH;
use tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME as REFLECTION_V1;
use tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME as REFLECTION_V1ALPHA;

use crate::proto::article_service_server::SERVICE_NAME as ARTICLES;

/// The request paths the server answers itself, before tonic (the direct
/// feed streams, cached GetArticle hits); the test below holds them to the
/// generated service name.
pub(super) const GET_ARTICLE_PATH: &str = "/newsroom.content.v1.ArticleService/GetArticle";
pub(super) const PUBLISH_ARTICLE_PATH: &str = "/newsroom.content.v1.ArticleService/PublishArticle";
pub(super) const STREAM_NEW_ARTICLES_PATH: &str =
    "/newsroom.content.v1.ArticleService/StreamNewArticles";
pub(super) const STREAM_ARTICLE_CHANGES_PATH: &str =
    "/newsroom.content.v1.ArticleService/StreamArticleChanges";

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
            (ARTICLES, "StreamNewArticles" | "StreamArticleChanges")
                | (HEALTH, "Watch")
                | (REFLECTION_V1 | REFLECTION_V1ALPHA, "ServerReflectionInfo")
        )
    )
}

/// Whether the call is a health Check: answered from memory, and never
/// refused for load (a busy replica is not an unready one).
pub(super) fn is_health_check(path: &str) -> bool {
    split(path) == Some((HEALTH, "Check"))
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
                    | "StreamArticleChanges"
                    | "PublishArticle"
                    | "WithdrawArticle"
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
    fn the_paths_answered_before_tonic_are_the_services() {
        assert_eq!(GET_ARTICLE_PATH, format!("/{ARTICLES}/GetArticle"));
        assert_eq!(PUBLISH_ARTICLE_PATH, format!("/{ARTICLES}/PublishArticle"));
        assert_eq!(
            STREAM_NEW_ARTICLES_PATH,
            format!("/{ARTICLES}/StreamNewArticles")
        );
        assert_eq!(
            STREAM_ARTICLE_CHANGES_PATH,
            format!("/{ARTICLES}/StreamArticleChanges")
        );
    }

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

    /// Every RPC of the proto is offered, and exactly the server-streaming
    /// ones are long-lived: a new RPC cannot be forgotten here.
    #[test]
    fn every_rpc_of_the_proto_is_known() {
        use prost::Message;
        let descriptors = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set decodes");
        let service = descriptors
            .file
            .iter()
            .flat_map(|file| &file.service)
            .find(|service| service.name() == "ArticleService")
            .expect("the service is described");
        assert_eq!(service.method.len(), 7);
        for method in &service.method {
            let path = format!("/{ARTICLES}/{}", method.name());
            assert!(is_offered(&path), "{path}");
            assert_eq!(is_long_lived(&path), method.server_streaming(), "{path}");
        }
    }
}
