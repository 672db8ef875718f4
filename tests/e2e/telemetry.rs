//! OpenTelemetry trace export: with OTEL_EXPORTER_OTLP_ENDPOINT set, the real
//! binary sends a span per call to an OTLP/gRPC collector (here, one inside
//! the test), and flushes what it holds when it shuts down.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use article_service::proto::GetArticleRequest;
use article_service::proto::get_article_request::Key;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;

/// A span as received, with its resource's attributes.
type Received = (Vec<KeyValue>, Span);

/// Keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let resource = resource_spans.resource.unwrap_or_default().attributes;
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    spans.push((resource.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Serves OTLP/gRPC on 127.0.0.1; returns its endpoint URL.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the collector");
        let addr = listener.local_addr().expect("collector address");
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        format!("http://{addr}")
    }

    /// The spans named `name`.
    fn named(&self, name: &str) -> Vec<Received> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, span)| span.name == name)
            .cloned()
            .collect()
    }
}

/// An attribute's value, as text.
fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let value = attributes.iter().find(|kv| kv.key == key)?.value.clone()?;
    match value.value? {
        Value::StringValue(text) => Some(text),
        Value::IntValue(number) => Some(number.to_string()),
        Value::BoolValue(flag) => Some(flag.to_string()),
        other => Some(format!("{other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_are_exported_as_spans_and_flushed_at_shutdown() {
    let collector = Collector::default();
    let endpoint = collector.start().await;
    let mut server = TestServer::start_with(
        ServerOptions::new(&fresh_database().await)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            // Nothing goes out on the batch timer during the test: what the
            // collector gets, shutdown flushed.
            .env("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    )
    .await;
    assert!(
        server
            .logs()
            .iter()
            .any(|line| line.contains("exporting traces over OTLP/gRPC")),
        "{:?}",
        server.logs()
    );
    let mut client = server.client().await;
    let published = publish_new(&mut client, "Traced", &["Desk"]).await;
    let mut request = tonic::Request::new(GetArticleRequest {
        key: Some(Key::Slug(published.slug.clone())),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "trace-me-4711".parse().unwrap());
    client.get_article(request).await.expect("GetArticle");
    let mut request = tonic::Request::new(GetArticleRequest {
        key: Some(Key::Slug("2020-01-01-missing".into())),
    });
    request
        .metadata_mut()
        .insert("x-request-id", "trace-me-4712".parse().unwrap());
    let missing = client.get_article(request).await.expect_err("not found");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert!(
        collector.spans.lock().unwrap().is_empty(),
        "nothing is sent before the batch timer or the shutdown"
    );

    let status = server.terminate(Duration::from_secs(15)).expect("exits");
    assert!(status.success(), "{status:?}");

    let get = collector.named("newsroom.content.v1.ArticleService/GetArticle");
    assert_eq!(get.len(), 2, "{:?}", collector.spans.lock().unwrap());
    let found = get
        .iter()
        .find(|(_, span)| {
            attribute(&span.attributes, "request_id").as_deref() == Some("trace-me-4711")
        })
        .expect("the GetArticle span with its request id");
    let (resource, span) = found;
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(
        attribute(&span.attributes, "rpc.method").as_deref(),
        Some("GetArticle")
    );
    assert_eq!(
        attribute(&span.attributes, "rpc.service").as_deref(),
        Some("newsroom.content.v1.ArticleService")
    );
    assert_eq!(
        attribute(&span.attributes, "rpc.system").as_deref(),
        Some("grpc")
    );
    assert_eq!(
        attribute(&span.attributes, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );
    assert_eq!(
        attribute(resource, "service.name").as_deref(),
        Some("article-service")
    );
    let not_found = get
        .iter()
        .find(|(_, span)| {
            attribute(&span.attributes, "request_id").as_deref() == Some("trace-me-4712")
        })
        .expect("the second GetArticle span");
    assert_eq!(
        attribute(&not_found.1.attributes, "rpc.grpc.status_code").as_deref(),
        Some("5")
    );
    assert_eq!(
        collector
            .named("newsroom.content.v1.ArticleService/PublishArticle")
            .len(),
        1
    );
}

/// Without the variable, nothing says it exports (and no span is made).
#[tokio::test(flavor = "multi_thread")]
async fn no_export_without_an_endpoint() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    publish_new(&mut client, "Untraced", &["Desk"]).await;
    assert!(
        !server
            .logs()
            .iter()
            .any(|line| line.contains("exporting traces") || line.contains("trace export")),
        "{:?}",
        server.logs()
    );
}
