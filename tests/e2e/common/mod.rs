//! One harness for the integration and end-to-end tests: a fresh database per
//! test on the PostgreSQL that `DATABASE_URL` names (`make test` provides
//! one), the real `article-service` binary on a random port, gRPC clients,
//! grpcurl, and a TCP proxy that can cut the database off.

pub mod change_copy;
pub mod observe;
pub mod pg_cluster;
pub mod proxy;
pub mod service_proxy;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::{PublishArticleRequest, PublishArticleResponse};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use tonic::transport::Channel;

pub const BIN: &str = env!("CARGO_BIN_EXE_article-service");
pub const PUBLISH_TOKEN: &str = "test-publish-token-5f1c";
pub const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/us-russia-terrorism-2019-12-31.txt"
);
pub const SAMPLE_SLUG: &str = "2019-12-31-us-and-russian-leaders-unite-to-combat-terrorism";
/// The sample's title, which is also the contract's example of slug derivation.
pub const SAMPLE_TITLE: &str = "US and Russian Leaders Unite to Combat Terrorism";

/// How long a test waits for what should come promptly (a message, a log
/// line): long enough for anything that should happen, on a loaded 2-core
/// machine.
pub const WAIT: Duration = Duration::from_secs(10);
/// The contract: UNAVAILABLE within 5 s for a call without a deadline, health
/// NOT_SERVING within 15 s, recovery within 20 s of the database's return.
pub const UNAVAILABLE_WITHIN: Duration = Duration::from_secs(5);
pub const NOT_SERVING_WITHIN: Duration = Duration::from_secs(15);
pub const RECOVERED_WITHIN: Duration = Duration::from_secs(20);

/// The server PostgreSQL, from `DATABASE_URL`.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must name a PostgreSQL server the tests may create databases on (run `make test`)")
}

/// A new, empty, migrated database; returns its URL.
pub async fn fresh_database() -> String {
    fresh_database_created_with("").await
}

/// A new, migrated database made by `CREATE DATABASE <name> <options>`.
pub async fn fresh_database_created_with(options: &str) -> String {
    let admin: PgConnectOptions = admin_url()
        .parse()
        .expect("DATABASE_URL is a PostgreSQL URL");
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = admin.connect().await.expect("connect to DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} {options}"
    )))
    .execute(&mut conn)
    .await
    .expect("create the test database");
    let url = database_url_named(&name);
    let pool = pool(&url).await;
    article_service::store::run_migrations(&pool)
        .await
        .expect("migrate");
    pool.close().await;
    url
}

/// `DATABASE_URL` with another database name.
pub fn database_url_named(name: &str) -> String {
    let mut url = url::Url::parse(&admin_url()).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

pub async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .connect(url)
        .await
        .expect("connect to the test database")
}

/// Deletes these articles by hand, as an operator would (`DELETE FROM
/// articles`, which fires the deletion trigger); returns how many went.
pub async fn delete_by_hand(database_url: &str, ids: &[&str]) -> u64 {
    let pool = pool(database_url).await;
    let ids: Vec<uuid::Uuid> = ids
        .iter()
        .map(|id| id.parse().expect("an article id"))
        .collect();
    let deleted = sqlx::query("DELETE FROM articles WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&pool)
        .await
        .expect("delete by hand")
        .rows_affected();
    pool.close().await;
    deleted
}

/// How to start the server.
#[derive(Clone)]
pub struct ServerOptions {
    pub database_url: String,
    pub publish_token: Option<String>,
    pub env: Vec<(String, String)>,
    /// Open-file limit (soft and hard) of the process, set by `prlimit`.
    pub open_files: Option<u64>,
}

impl ServerOptions {
    pub fn new(database_url: &str) -> Self {
        Self {
            database_url: database_url.to_owned(),
            publish_token: Some(PUBLISH_TOKEN.to_owned()),
            env: Vec::new(),
            open_files: None,
        }
    }

    pub fn open_files(mut self, limit: u64) -> Self {
        self.open_files = Some(limit);
        self
    }

    pub fn without_publish_token(mut self) -> Self {
        self.publish_token = None;
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// The real binary, serving on a random port of 127.0.0.1. Killed on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub database_url: String,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl TestServer {
    /// A server on a fresh database.
    pub async fn start() -> Self {
        Self::start_with(ServerOptions::new(&fresh_database().await)).await
    }

    pub async fn start_with(options: ServerOptions) -> Self {
        let server = Self::start_unready(options).await;
        server.wait_until_serving().await;
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn client(&self) -> ArticleServiceClient<Channel> {
        ArticleServiceClient::connect(self.endpoint())
            .await
            .expect("connect to the server")
    }

    /// Health of service "" as the server reports it.
    pub async fn health(&self) -> i32 {
        let channel = Channel::from_shared(self.endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|response| response.into_inner().status)
            .unwrap_or(-1)
    }

    pub async fn wait_until_serving(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.health().await
            != tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        {
            assert!(
                Instant::now() < deadline,
                "server did not report SERVING within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the exit, at most `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        // A signal sent directly: a minimal machine has no `kill` command.
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("a pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn listening_addr(line: &str) -> Option<SocketAddr> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    if value.get("message")?.as_str()? != "article-service listening" {
        return None;
    }
    value.get("grpc_addr")?.as_str()?.parse().ok()
}

/// A request with the publish token attached.
pub fn authorized<T>(message: T) -> tonic::Request<T> {
    with_token(message, PUBLISH_TOKEN)
}

pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// A valid article with the given title and tags.
pub fn article(title: &str, tags: &[&str]) -> PublishArticleRequest {
    PublishArticleRequest {
        title: title.to_owned(),
        body: format!("Body of {title}.\n\nSecond paragraph."),
        byline: "Test Desk".to_owned(),
        tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
        ..PublishArticleRequest::default()
    }
}

pub async fn publish(
    client: &mut ArticleServiceClient<Channel>,
    request: PublishArticleRequest,
) -> PublishArticleResponse {
    client
        .publish_article(authorized(request))
        .await
        .expect("publish")
        .into_inner()
}

/// Runs `article-service` with arguments against a database.
pub fn run_cli(database_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("LOG_FORMAT", "text")
        .output()
        .expect("run article-service")
}

/// A new, migrated database holding the sample article, imported with the
/// CLI; returns its URL.
pub async fn fresh_database_with_sample() -> String {
    let database = fresh_database().await;
    let output = run_cli(&database, &["import", SAMPLE]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    database
}

/// The grpcurl binary (`make test` installs it and sets GRPCURL).
pub fn grpcurl() -> String {
    std::env::var("GRPCURL").expect("GRPCURL must name a grpcurl binary (run `make test`)")
}

/// Runs `grpcurl -plaintext [options] <server> [rest]`; returns (success,
/// stdout, stderr).
pub fn grpcurl_call(
    server: &TestServer,
    options: &[&str],
    rest: &[&str],
) -> (bool, String, String) {
    let output = Command::new(grpcurl())
        .arg("-plaintext")
        .args(options)
        .arg(server.addr.to_string())
        .args(rest)
        .output()
        .expect("run grpcurl");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The `google.rpc.BadRequest` field names of an INVALID_ARGUMENT status.
pub fn bad_request_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad_request| {
            bad_request
                .field_violations
                .into_iter()
                .map(|v| v.field)
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Helpers of the API end-to-end tests (api_reads, api_publish, api_errors,
// grpcurl). In a module of their own so that their imports never clash with
// another section's; everything public is re-exported.

pub use api_helpers::*;

mod api_helpers {
    use super::*;
    use article_service::proto::{
        Article, GetArticleRequest, ListArticlesByTagRequest, ListTagsRequest, TagSummary,
        get_article_request::Key,
    };

    impl TestServer {
        /// Starts the binary like [`TestServer::start_with`] but returns as soon
        /// as it listens, without waiting for SERVING (for a server started while
        /// its database is unreachable).
        pub async fn start_unready(options: ServerOptions) -> Self {
            let mut command = match options.open_files {
                // prlimit sets the limits and execs the binary: same pid.
                Some(limit) => {
                    let mut command = Command::new("prlimit");
                    command.arg(format!("--nofile={limit}:{limit}")).arg(BIN);
                    command
                }
                None => Command::new(BIN),
            };
            command
                .arg("serve")
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("DATABASE_URL", &options.database_url)
                .env("GRPC_ADDR", "127.0.0.1:0")
                .env("METRICS_ADDR", "127.0.0.1:0")
                .env("LOG_FORMAT", "json")
                .env("RUST_LOG", "info")
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if let Some(token) = &options.publish_token {
                command.env("PUBLISH_TOKEN", token);
            }
            for (name, value) in &options.env {
                command.env(name, value);
            }
            let mut child = command.spawn().expect("start article-service");
            let stdout = child.stdout.take().expect("piped stdout");
            let logs = Arc::new(Mutex::new(Vec::new()));
            let (addr_tx, addr_rx) = std::sync::mpsc::channel();
            let collected = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = listening_addr(&line) {
                        let _ = addr_tx.send(addr);
                    }
                    collected.lock().unwrap().push(line);
                }
            });
            let addr = addr_rx
                .recv_timeout(Duration::from_secs(20))
                .expect("the server logs its address within 20 s");
            Self {
                addr,
                database_url: options.database_url,
                child,
                logs,
            }
        }

        /// Health of `service` as the server reports it (-1 when the call fails).
        pub async fn health_of(&self, service: &str) -> i32 {
            let Ok(channel) = Channel::from_shared(self.endpoint())
                .unwrap()
                .connect()
                .await
            else {
                return -1;
            };
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: service.to_owned(),
                })
                .await
                .map(|response| response.into_inner().status)
                .unwrap_or(-1)
        }
    }

    pub const SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    pub const NOT_SERVING: i32 =
        tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;

    /// A protobuf timestamp from RFC 3339 text.
    pub fn timestamp(rfc3339: &str) -> prost_types::Timestamp {
        let at =
            time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
                .expect("an RFC 3339 timestamp");
        prost_types::Timestamp {
            seconds: at.unix_timestamp(),
            nanos: i32::try_from(at.nanosecond()).unwrap(),
        }
    }

    /// A valid article of `tags` published at `published_at` (RFC 3339).
    pub fn article_at(title: &str, tags: &[&str], published_at: &str) -> PublishArticleRequest {
        PublishArticleRequest {
            published_at: Some(timestamp(published_at)),
            ..article(title, tags)
        }
    }

    pub async fn get_article(
        client: &mut ArticleServiceClient<Channel>,
        key: Option<Key>,
    ) -> Result<Article, tonic::Status> {
        client
            .get_article(GetArticleRequest {
                key,
                ..Default::default()
            })
            .await
            .map(|response| response.into_inner().article.expect("an article"))
    }

    pub async fn get_by_slug(
        client: &mut ArticleServiceClient<Channel>,
        slug: &str,
    ) -> Result<Article, tonic::Status> {
        get_article(client, Some(Key::Slug(slug.to_owned()))).await
    }

    pub async fn get_by_id(
        client: &mut ArticleServiceClient<Channel>,
        id: &str,
    ) -> Result<Article, tonic::Status> {
        get_article(client, Some(Key::Id(id.to_owned()))).await
    }

    /// Every article of `tag`, following `next_page_token` with `page_size`;
    /// also returns how many pages it took.
    pub async fn list_all_by_tag(
        client: &mut ArticleServiceClient<Channel>,
        tag: &str,
        page_size: i32,
    ) -> (Vec<Article>, usize) {
        let mut articles = Vec::new();
        let mut page_token = String::new();
        let mut pages = 0;
        loop {
            let page = client
                .list_articles_by_tag(ListArticlesByTagRequest {
                    tag: tag.to_owned(),
                    page_size,
                    page_token,
                    ..Default::default()
                })
                .await
                .expect("ListArticlesByTag")
                .into_inner();
            pages += 1;
            assert!(pages < 10_000, "paging does not end");
            articles.extend(page.articles);
            if page.next_page_token.is_empty() {
                return (articles, pages);
            }
            page_token = page.next_page_token;
        }
    }

    /// The `next_page_token` of `tag`'s first page of one article.
    pub async fn page_token_after_one(
        client: &mut ArticleServiceClient<Channel>,
        tag: &str,
    ) -> String {
        client
            .list_articles_by_tag(ListArticlesByTagRequest {
                tag: tag.to_owned(),
                page_size: 1,
                page_token: String::new(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .next_page_token
    }

    /// The `next_page_token` of ListTags' first page of one tag.
    pub async fn tags_page_token_after_one(client: &mut ArticleServiceClient<Channel>) -> String {
        client
            .list_tags(ListTagsRequest {
                page_size: 1,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .next_page_token
    }

    /// Every tag with articles, following `next_page_token` with `page_size`.
    pub async fn list_all_tags(
        client: &mut ArticleServiceClient<Channel>,
        page_size: i32,
    ) -> Vec<TagSummary> {
        let mut tags = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = client
                .list_tags(ListTagsRequest {
                    page_size,
                    page_token,
                })
                .await
                .expect("ListTags")
                .into_inner();
            tags.extend(page.tags);
            if page.next_page_token.is_empty() {
                return tags;
            }
            assert!(tags.len() < 100_000, "paging does not end");
            page_token = page.next_page_token;
        }
    }

    /// (slug, name, article_count) of tag summaries.
    pub fn tag_counts(tags: &[TagSummary]) -> Vec<(String, String, i64)> {
        tags.iter()
            .map(|summary| {
                let tag = summary.tag.clone().expect("a tag");
                (tag.slug, tag.name, summary.article_count)
            })
            .collect()
    }

    /// (slug, name) of an article's tags.
    pub fn tag_pairs(article: &Article) -> Vec<(String, String)> {
        article
            .tags
            .iter()
            .map(|tag| (tag.slug.clone(), tag.name.clone()))
            .collect()
    }

    /// The ids of articles, in order.
    pub fn ids(articles: &[Article]) -> Vec<String> {
        articles.iter().map(|article| article.id.clone()).collect()
    }

    /// Like [`fresh_database`], but the database's default collation is ICU's
    /// en-US, where "éclair" sorts before "ecole" and "zebra": any ORDER BY that
    /// relies on the default collation shows up as a wrong order.
    pub async fn fresh_database_with_icu_collation() -> String {
        fresh_database_created_with(
            "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'",
        )
        .await
    }
}

// ---------------------------------------------------------------------------
// Helpers of the StreamNewArticles tests (feed, feed_faults, feed_concurrency),
// in a module of their own like the API helpers; everything public is
// re-exported.

pub use feed_helpers::*;

mod feed_helpers {
    use super::*;
    use article_service::proto::{Article, StreamNewArticlesRequest, StreamNewArticlesResponse};

    /// A unique article title (slugs are derived from titles).
    pub fn unique_title(label: &str) -> String {
        format!("{label} {}", uuid::Uuid::new_v4().simple())
    }

    /// Opens StreamNewArticles; `Ok` once the response headers have arrived (the
    /// subscription is then in place).
    pub async fn open_stream(
        client: &mut ArticleServiceClient<Channel>,
        tags: &[&str],
        resume_token: &str,
    ) -> Result<tonic::Streaming<StreamNewArticlesResponse>, tonic::Status> {
        client
            .stream_new_articles(StreamNewArticlesRequest {
                tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
                resume_token: resume_token.to_owned(),
                ..Default::default()
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// How one read from a stream turned out.
    #[derive(Debug)]
    pub enum Read {
        Message(Box<StreamNewArticlesResponse>),
        /// The stream ended with an error status.
        Ended(tonic::Status),
        /// Nothing arrived in time.
        TimedOut,
    }

    /// Reads one message. A stream that ends with OK is a contract breach and
    /// fails the test.
    pub async fn read_one(
        stream: &mut tonic::Streaming<StreamNewArticlesResponse>,
        timeout: Duration,
    ) -> Read {
        match tokio::time::timeout(timeout, stream.message()).await {
            Err(_) => Read::TimedOut,
            Ok(Ok(Some(message))) => Read::Message(Box::new(message)),
            Ok(Ok(None)) => panic!("StreamNewArticles ended with OK"),
            Ok(Err(status)) => Read::Ended(status),
        }
    }

    /// A consumer of the feed: the articles it received in order, and the last
    /// resume token it was given (of an article or a heartbeat).
    pub struct FeedReader {
        pub stream: tonic::Streaming<StreamNewArticlesResponse>,
        pub articles: Vec<Article>,
        /// The resume token that came with each article.
        pub article_tokens: Vec<String>,
        pub token: String,
        pub heartbeats: usize,
    }

    impl FeedReader {
        pub async fn open(
            client: &mut ArticleServiceClient<Channel>,
            tags: &[&str],
            resume_token: &str,
        ) -> Self {
            let stream = open_stream(client, tags, resume_token)
                .await
                .expect("StreamNewArticles");
            Self::new(stream, resume_token)
        }

        pub fn new(
            stream: tonic::Streaming<StreamNewArticlesResponse>,
            resume_token: &str,
        ) -> Self {
            Self {
                stream,
                articles: Vec::new(),
                article_tokens: Vec::new(),
                token: resume_token.to_owned(),
                heartbeats: 0,
            }
        }

        /// Takes one message into account.
        pub fn record(&mut self, message: StreamNewArticlesResponse) {
            assert!(
                !message.resume_token.is_empty(),
                "every message carries a resume token"
            );
            match message.article {
                Some(article) => {
                    self.articles.push(article);
                    self.article_tokens.push(message.resume_token.clone());
                }
                None => self.heartbeats += 1,
            }
            self.token = message.resume_token;
        }

        /// Reads until `count` articles were received in all, or the stream ends
        /// with an error status (returned), or the deadline passes (panics).
        pub async fn read_articles(
            &mut self,
            count: usize,
            timeout: Duration,
        ) -> Result<(), tonic::Status> {
            let deadline = tokio::time::Instant::now() + timeout;
            while self.articles.len() < count {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match read_one(&mut self.stream, left).await {
                    Read::Message(message) => self.record(*message),
                    Read::Ended(status) => return Err(status),
                    Read::TimedOut => panic!(
                        "received {} of {count} articles within {timeout:?}",
                        self.articles.len()
                    ),
                }
            }
            Ok(())
        }

        /// Like `read_articles`, but whenever the stream ends with an error
        /// status it resumes from the last token, as a consumer should
        /// (retrying while the server answers UNAVAILABLE). Returns the
        /// statuses the stream ended with.
        pub async fn read_resuming(
            &mut self,
            client: &mut ArticleServiceClient<Channel>,
            tags: &[&str],
            count: usize,
            timeout: Duration,
        ) -> Vec<tonic::Status> {
            let deadline = tokio::time::Instant::now() + timeout;
            let mut endings = Vec::new();
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match self.read_articles(count, left).await {
                    Ok(()) => return endings,
                    Err(status) => endings.push(status),
                }
                loop {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "could not resume within {timeout:?}; endings: {endings:?}"
                    );
                    match open_stream(client, tags, &self.token).await {
                        Ok(stream) => {
                            self.stream = stream;
                            break;
                        }
                        Err(status) if status.code() == tonic::Code::Unavailable => {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(status) => panic!("cannot resume: {status:?}"),
                    }
                }
            }
        }

        /// The ids received, in order.
        pub fn ids(&self) -> Vec<String> {
            self.articles
                .iter()
                .map(|article| article.id.clone())
                .collect()
        }
    }

    /// Publishes an article with a unique title and the given tags; returns it.
    pub async fn publish_new(
        client: &mut ArticleServiceClient<Channel>,
        label: &str,
        tags: &[&str],
    ) -> Article {
        let response = publish(client, article(&unique_title(label), tags)).await;
        assert!(response.created, "a new article");
        response.article.expect("the stored article")
    }

    /// Every article's id in store order (feed position ascending), read from the
    /// database: the order StreamNewArticles must deliver.
    pub async fn store_order(database_url: &str) -> Vec<String> {
        let pool = pool(database_url).await;
        let ids: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM articles ORDER BY feed_position")
                .fetch_all(&pool)
                .await
                .expect("read the store order");
        pool.close().await;
        ids.into_iter().map(|id| id.to_string()).collect()
    }

    /// Polls `condition` until it holds, failing the test after `timeout`.
    pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut condition: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + timeout;
        while !condition().await {
            assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub use change_helpers::*;

/// StreamArticleChanges, as the tests call it.
mod change_helpers {
    use std::time::{Duration, Instant};

    use article_service::proto::article_service_client::ArticleServiceClient;
    use article_service::proto::{
        ArticleChange, StreamArticleChangesRequest, StreamArticleChangesResponse,
    };
    use tonic::Streaming;
    use tonic::transport::Channel;

    pub async fn changes(
        client: &mut ArticleServiceClient<Channel>,
        request: StreamArticleChangesRequest,
    ) -> Result<Streaming<StreamArticleChangesResponse>, tonic::Status> {
        client
            .stream_article_changes(request)
            .await
            .map(tonic::Response::into_inner)
    }

    pub fn from_beginning(tags: &[&str]) -> StreamArticleChangesRequest {
        StreamArticleChangesRequest {
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            from_beginning: true,
            ..Default::default()
        }
    }

    /// Reads changes (skipping heartbeats) until `count` arrived; returns them
    /// with the last resume token.
    pub async fn read_changes(
        stream: &mut Streaming<StreamArticleChangesResponse>,
        count: usize,
        timeout: Duration,
    ) -> (Vec<ArticleChange>, String) {
        let deadline = Instant::now() + timeout;
        let mut received = Vec::new();
        let mut token = String::new();
        while received.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, stream.message()).await {
                Ok(Ok(Some(message))) => {
                    token = message.resume_token;
                    received.extend(message.change);
                }
                Ok(Ok(None)) => panic!("the stream ended with OK"),
                Ok(Err(status)) => panic!("the stream failed: {status:?}"),
                Err(_) => panic!(
                    "{} of {count} changes within {timeout:?}: {received:?}",
                    received.len()
                ),
            }
        }
        (received, token)
    }
}

/// Tokens made from a good one that no RPC may accept: altered,
/// truncated, extended, garbage, and far too long.
pub fn tampered_tokens(good: &str) -> Vec<(&'static str, String)> {
    let mut altered = good.to_owned().into_bytes();
    let middle = altered.len() / 2;
    altered[middle] = if altered[middle] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("tokens are ASCII");
    let mut truncated = good.to_owned();
    truncated.pop();
    vec![
        ("altered", altered),
        ("truncated", truncated),
        ("extended", format!("{good}A")),
        ("garbage", "not a token".to_owned()),
        (
            "base64 garbage",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
        ("huge", "A".repeat(5000)),
    ]
}

/// A server whose broadcast keeps 4 items and whose catch-up reads one
/// change at a time, logging when a stream falls behind: slow consumers
/// fall behind soon and catch up over many reads.
pub async fn start_with_a_short_broadcast(database: &str) -> TestServer {
    TestServer::start_with(
        ServerOptions::new(database)
            .env("FEED_BUFFER", "4")
            .env("FEED_BATCH_SIZE", "1")
            .env("RUST_LOG", "info,article_service::feed=debug"),
    )
    .await
}

/// Publishes `count` articles of 40 KB, every other one tagged "Half": far
/// more than a stream's HTTP/2 window (2 MiB) holds, so streams not read
/// meanwhile fall behind the broadcast. Returns them in publishing order.
pub async fn publish_a_large_burst(
    publisher: &mut ArticleServiceClient<Channel>,
    count: usize,
) -> Vec<article_service::proto::Article> {
    let body = "x".repeat(40_000);
    let mut published = Vec::with_capacity(count);
    for i in 0..count {
        let mut request = article(
            &unique_title(&format!("Bulk {i}")),
            if i % 2 == 0 { &["Half"] } else { &[] },
        );
        request.body = body.clone();
        published.push(
            publish(publisher, request)
                .await
                .article
                .expect("an article"),
        );
    }
    published
}

/// Tag filters no stream accepts (nothing left once slugged).
pub const BAD_TAG_FILTERS: [&[&str]; 4] = [&["!!!"], &[""], &["world", "  "], &["--"]];

/// 101 distinct tag names: one more than a stream may filter on.
pub fn too_many_tags() -> Vec<String> {
    (0..101).map(|i| format!("tag{i}")).collect()
}

/// The server logged that a stream fell behind the broadcast (so a slow
/// consumer test proves what it means to).
pub fn assert_some_stream_fell_behind(server: &TestServer) {
    assert!(
        server
            .logs()
            .iter()
            .any(|line| line.contains("fell behind")),
        "no stream fell behind the broadcast"
    );
}

/// What the tests ask of a message of either feed stream.
pub trait FeedMessage: prost::Message + Default + 'static {
    /// Whether it carries an article or a change (not a heartbeat).
    fn has_content(&self) -> bool;
    fn resume_token(&self) -> &str;
}

impl FeedMessage for article_service::proto::StreamNewArticlesResponse {
    fn has_content(&self) -> bool {
        self.article.is_some()
    }
    fn resume_token(&self) -> &str {
        &self.resume_token
    }
}

impl FeedMessage for article_service::proto::StreamArticleChangesResponse {
    fn has_content(&self) -> bool {
        self.change.is_some()
    }
    fn resume_token(&self) -> &str {
        &self.resume_token
    }
}

/// Reads the heartbeat a stream opened without a token starts with (the
/// head's token, sent at once); returns its token.
pub async fn opening_heartbeat<M: FeedMessage>(stream: &mut tonic::Streaming<M>) -> String {
    let message = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("the opening heartbeat in time")
        .expect("the stream goes on")
        .expect("a message");
    assert!(!message.has_content(), "the first message is a heartbeat");
    assert!(!message.resume_token().is_empty());
    message.resume_token().to_owned()
}
