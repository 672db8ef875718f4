//! The article lifecycle under faults: two replicas on a private PostgreSQL
//! cluster while writers publish, update, withdraw, publish again and
//! schedule; one replica SIGKILLed and replaced, PostgreSQL stopped (fast) and
//! started, the other replica SIGKILLed and replaced. Consumers of
//! StreamArticleChanges (one for every change, one for a tag) reconnect to a
//! live replica whenever their stream ends and resume from their last token,
//! applying changes by revision: they receive no change twice, each
//! article's revisions in increasing order, and end with exactly the public
//! articles. A consumer that starts from the beginning only at the end
//! reaches the same copy. In SQL: every due embargo was released, and every
//! article became public for the first time once.
//!
//! The scenario's random choices come from a seed, printed; set
//! `LIFECYCLE_FAULTS_SEED` to replay one.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::common::change_copy::ChangeCopy;
use crate::common::pg_cluster::{PgCluster, StopMode};
use crate::common::*;
use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::get_article_request::Key;
use article_service::proto::{
    Article, ArticleChange, ArticleState, ChangeType, GetArticleRequest, PublishArticleRequest,
    StreamArticleChangesRequest, StreamArticleChangesResponse, WithdrawArticleRequest,
    withdraw_article_request,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tonic::transport::Channel;
use tonic::{Code, Streaming};

/// Every article has this tag, so that paging it lists every public one.
const ALL: &str = "Fault";
/// Some articles have this tag, and move in and out of it.
const HOT: &str = "Hot";
const HOT_SLUG: &str = "hot";
const SENTINEL: &str = "lf-sentinel";
/// Writers at once, each on its own articles.
const WRITERS: usize = 3;

const WITHDRAWN: i32 = ArticleState::Withdrawn as i32;
const W: i32 = ChangeType::Withdrawn as i32;

/// A stream that sends nothing (not even a heartbeat, every 1 s here) for
/// this long is taken for dead: its consumer reconnects.
const SILENCE: Duration = Duration::from_secs(5);
/// How long one call may take before the caller gives up on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an operation is retried before the test fails.
const RETRY_FOR: Duration = Duration::from_secs(40);

/// How a call that failed during a fault may fail: the replica died
/// (UNKNOWN, CANCELLED or UNAVAILABLE, by how the connection broke), the
/// database is away (UNAVAILABLE), or it did not answer in time.
fn transient(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

/// The endpoints of the replicas that run now, by slot, and a connection to
/// each that the writers share (so that a kill cuts calls in flight).
#[derive(Clone)]
struct Replicas {
    endpoints: Arc<Mutex<Vec<String>>>,
    connections: Arc<Mutex<HashMap<String, ArticleServiceClient<Channel>>>>,
}

impl Replicas {
    fn new(servers: &[TestServer]) -> Self {
        Self {
            endpoints: Arc::new(Mutex::new(
                servers.iter().map(TestServer::endpoint).collect(),
            )),
            connections: Arc::default(),
        }
    }

    fn pick(&self, n: usize) -> String {
        let endpoints = self.endpoints.lock().expect("replicas");
        endpoints[n % endpoints.len()].clone()
    }

    fn set(&self, slot: usize, endpoint: String) {
        self.endpoints.lock().expect("replicas")[slot] = endpoint;
    }

    /// The shared connection to `endpoint`, made if need be.
    async fn client(&self, endpoint: &str) -> Option<ArticleServiceClient<Channel>> {
        let held = self
            .connections
            .lock()
            .expect("connections")
            .get(endpoint)
            .cloned();
        if held.is_some() {
            return held;
        }
        let client = connect(endpoint).await?;
        self.connections
            .lock()
            .expect("connections")
            .insert(endpoint.to_owned(), client.clone());
        Some(client)
    }

    fn forget(&self, endpoint: &str) {
        self.connections
            .lock()
            .expect("connections")
            .remove(endpoint);
    }
}

async fn connect(endpoint: &str) -> Option<ArticleServiceClient<Channel>> {
    Channel::from_shared(endpoint.to_owned())
        .expect("an endpoint")
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .ok()
        .map(ArticleServiceClient::new)
}

/// How the transient failures went, by code (for the report).
#[derive(Default, Clone)]
struct Failures(Arc<Mutex<BTreeMap<String, usize>>>);

impl Failures {
    fn record(&self, what: &str) {
        *self
            .0
            .lock()
            .expect("failures")
            .entry(what.to_owned())
            .or_default() += 1;
    }

    fn status(&self, status: &tonic::Status) {
        self.record(&format!("{:?}", status.code()));
    }
}

/// Calls `call` on some live replica until it succeeds, retrying transient
/// failures (on another replica, after a pause). Any other failure fails
/// the test.
async fn retrying<T, F, Fut>(
    replicas: &Replicas,
    failures: &Failures,
    what: &str,
    first_slot: usize,
    mut call: F,
) -> T
where
    F: FnMut(ArticleServiceClient<Channel>) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + RETRY_FOR;
    for attempt in first_slot.. {
        assert!(
            Instant::now() < deadline,
            "{what}: not done within {RETRY_FOR:?}"
        );
        let endpoint = replicas.pick(attempt);
        let Some(client) = replicas.client(&endpoint).await else {
            failures.record("connect");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        match tokio::time::timeout(CALL_TIMEOUT, call(client)).await {
            Ok(Ok(value)) => return value,
            Ok(Err(status)) if transient(&status) => failures.status(&status),
            Ok(Err(status)) => panic!("{what}: {status:?}"),
            Err(_) => failures.record("call timed out"),
        }
        replicas.forget(&endpoint);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    unreachable!("the attempts never end")
}

fn at(seconds: f64) -> (prost_types::Timestamp, SystemTime) {
    let when = SystemTime::now() + Duration::from_secs_f64(seconds);
    let since = when
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    (
        prost_types::Timestamp {
            seconds: i64::try_from(since.as_secs()).expect("seconds"),
            // Microseconds, as the service stores them: a retried request
            // is then the very same as the stored article.
            nanos: i32::try_from(since.subsec_micros() * 1_000).expect("nanos"),
        },
        when,
    )
}

/// What the writers did to one article, as last acknowledged.
#[derive(Debug, Clone)]
struct Written {
    request: PublishArticleRequest,
    withdrawn: bool,
}

/// A writer: its own articles (slugs `lf-<writer>-<n>`), one operation after
/// another on either replica, each retried until acknowledged.
struct Writer {
    index: usize,
    rng: StdRng,
    replicas: Replicas,
    failures: Failures,
    articles: Vec<Written>,
    operations: BTreeMap<&'static str, usize>,
    /// When the latest embargo ends.
    last_release: SystemTime,
}

impl Writer {
    fn tags(&mut self) -> Vec<String> {
        if self.rng.random_bool(0.5) {
            vec![ALL.to_owned(), HOT.to_owned()]
        } else {
            vec![ALL.to_owned()]
        }
    }

    async fn publish(&mut self, what: &'static str, request: PublishArticleRequest) -> Article {
        *self.operations.entry(what).or_default() += 1;
        let slot = self.rng.random_range(0..2);
        let stored = retrying(
            &self.replicas,
            &self.failures,
            &format!("{what} {}", request.slug),
            slot,
            |mut client| {
                let request = request.clone();
                async move {
                    client
                        .publish_article(authorized(request))
                        .await
                        .map(|response| response.into_inner().article.expect("an article"))
                }
            },
        )
        .await;
        assert_eq!(
            (&stored.slug, &stored.title, &stored.body, &stored.byline),
            (
                &request.slug,
                &request.title,
                &request.body,
                &request.byline
            ),
            "{what}"
        );
        stored
    }

    async fn step(&mut self, n: usize) {
        let live: Vec<usize> = (0..self.articles.len())
            .filter(|&i| !self.articles[i].withdrawn)
            .collect();
        let withdrawn: Vec<usize> = (0..self.articles.len())
            .filter(|&i| self.articles[i].withdrawn)
            .collect();
        let roll = self.rng.random_range(0..100);
        if roll < 30 || live.is_empty() {
            let slug = format!("lf-{}-{n}", self.index);
            let tags = self.tags();
            let request = PublishArticleRequest {
                slug,
                tags,
                ..article(&format!("Fault {} {n}", self.index), &[])
            };
            self.publish("publish", request.clone()).await;
            self.articles.push(Written {
                request,
                withdrawn: false,
            });
        } else if roll < 45 {
            let slug = format!("lf-{}-{n}", self.index);
            let tags = self.tags();
            let (published_at, when) = at(self.rng.random_range(1.0..3.0));
            let request = PublishArticleRequest {
                slug,
                tags,
                published_at: Some(published_at),
                ..article(&format!("Embargo {} {n}", self.index), &[])
            };
            let stored = self.publish("schedule", request.clone()).await;
            assert_eq!(stored.published_at, Some(published_at));
            self.last_release = self.last_release.max(when);
            self.articles.push(Written {
                request,
                withdrawn: false,
            });
        } else if roll < 75 {
            let i = live[self.rng.random_range(0..live.len())];
            let tags = self.tags();
            let request = PublishArticleRequest {
                body: format!("Update {n} of {}.", self.articles[i].request.slug),
                tags,
                // Omitted: the stored one stays.
                published_at: None,
                ..self.articles[i].request.clone()
            };
            self.publish("update", request.clone()).await;
            self.articles[i].request = PublishArticleRequest {
                published_at: self.articles[i].request.published_at,
                ..request
            };
        } else if roll < 90 || withdrawn.is_empty() {
            let i = live[self.rng.random_range(0..live.len())];
            let slug = self.articles[i].request.slug.clone();
            *self.operations.entry("withdraw").or_default() += 1;
            let slot = self.rng.random_range(0..2);
            let stored = retrying(
                &self.replicas,
                &self.failures,
                &format!("withdraw {slug}"),
                slot,
                |mut client| {
                    let slug = slug.clone();
                    async move {
                        client
                            .withdraw_article(authorized(WithdrawArticleRequest {
                                key: Some(withdraw_article_request::Key::Slug(slug)),
                                reason: "fault test".to_owned(),
                            }))
                            .await
                            .map(|response| response.into_inner().article.expect("an article"))
                    }
                },
            )
            .await;
            assert_eq!(stored.state, WITHDRAWN);
            self.articles[i].withdrawn = true;
        } else {
            let i = withdrawn[self.rng.random_range(0..withdrawn.len())];
            let request = PublishArticleRequest {
                body: format!("Back {n}: {}.", self.articles[i].request.slug),
                published_at: None,
                ..self.articles[i].request.clone()
            };
            self.publish("publish again", request.clone()).await;
            self.articles[i] = Written {
                request: PublishArticleRequest {
                    published_at: self.articles[i].request.published_at,
                    ..request
                },
                withdrawn: false,
            };
        }
    }

    async fn run(mut self, stop: Arc<AtomicBool>) -> Self {
        for n in 0.. {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            self.step(n).await;
            let pause = self.rng.random_range(20..80);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        self
    }
}

/// A consumer of StreamArticleChanges that keeps a copy, applied by
/// revision, and resumes from its last token on a live replica whenever its
/// stream ends.
struct Consumer {
    label: &'static str,
    /// The tag filter's slug, if any.
    tag: Option<&'static str>,
    token: String,
    from_beginning: bool,
    copy: ChangeCopy,
    /// Changes applied, for the test to watch.
    applied: Arc<AtomicUsize>,
    reconnects: usize,
    failures: Failures,
}

impl Consumer {
    fn new(label: &'static str, tag: Option<&'static str>, from_beginning: bool) -> Self {
        Self {
            label,
            tag,
            token: String::new(),
            from_beginning,
            copy: ChangeCopy::new(label, tag),
            applied: Arc::new(AtomicUsize::new(0)),
            reconnects: 0,
            failures: Failures::default(),
        }
    }

    fn request(&self) -> StreamArticleChangesRequest {
        StreamArticleChangesRequest {
            tags: self.tag.iter().map(|tag| (*tag).to_owned()).collect(),
            resume_token: self.token.clone(),
            from_beginning: self.token.is_empty() && self.from_beginning,
            ..Default::default()
        }
    }

    /// Applies one change; true when it is the sentinel's.
    fn apply(&mut self, change: ArticleChange) -> bool {
        let article = self.copy.apply(&change);
        self.applied.fetch_add(1, Ordering::SeqCst);
        change.r#type != W && article.slug == SENTINEL
    }

    /// Follows the changes (from `stream` first, if given) until the
    /// sentinel's arrives.
    async fn follow(
        mut self,
        replicas: Replicas,
        mut stream: Option<Streaming<StreamArticleChangesResponse>>,
        timeout: Duration,
    ) -> Self {
        let deadline = Instant::now() + timeout;
        let label = self.label;
        for attempt in 0.. {
            assert!(
                Instant::now() < deadline,
                "{label}: no sentinel within {timeout:?}"
            );
            let mut current = match stream.take() {
                Some(stream) => stream,
                None => {
                    assert!(
                        !self.token.is_empty() || self.from_beginning,
                        "{label}: no token to resume from"
                    );
                    self.reconnects += 1;
                    let Some(mut client) = connect(&replicas.pick(attempt)).await else {
                        self.failures.record("connect");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    match client.stream_article_changes(self.request()).await {
                        Ok(response) => response.into_inner(),
                        Err(status) if transient(&status) => {
                            self.failures.status(&status);
                            tokio::time::sleep(Duration::from_millis(150)).await;
                            continue;
                        }
                        Err(status) => panic!("{label}: cannot resume: {status:?}"),
                    }
                }
            };
            loop {
                match tokio::time::timeout(SILENCE, current.message()).await {
                    Err(_) => {
                        self.failures.record("silent");
                        break;
                    }
                    Ok(Ok(Some(message))) => {
                        assert!(
                            !message.resume_token.is_empty(),
                            "{label}: a message without a token"
                        );
                        self.token = message.resume_token;
                        if let Some(change) = message.change
                            && self.apply(change)
                        {
                            return self;
                        }
                    }
                    Ok(Ok(None)) => panic!("{label}: the stream ended with OK"),
                    Ok(Err(status)) => {
                        assert!(transient(&status), "{label}: the stream failed: {status:?}");
                        self.failures.status(&status);
                        break;
                    }
                }
            }
        }
        unreachable!("the attempts never end")
    }

    fn sorted_copy(&self) -> Vec<Article> {
        self.copy.sorted()
    }
}

async fn wait_until_serving(server: &TestServer) {
    eventually("SERVING", RECOVERED_WITHIN, || async {
        server.health_of("").await == SERVING
    })
    .await;
}

/// Kills the replica in `slot` (SIGKILL) and starts a new one there.
async fn replace(
    servers: &mut [TestServer],
    replicas: &Replicas,
    slot: usize,
    options: &ServerOptions,
) {
    servers[slot].kill();
    servers[slot] = TestServer::start_with(options.clone()).await;
    replicas.set(slot, servers[slot].endpoint());
}

/// Every public article of `tag`, by paging (page size 7), retried as a
/// whole while a replica fails.
async fn public_of(replicas: &Replicas, failures: &Failures, tag: &str) -> Vec<Article> {
    let tag = tag.to_owned();
    let mut articles = retrying(replicas, failures, "list", 0, |mut client| {
        let tag = tag.clone();
        async move {
            let mut articles = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_articles_by_tag(article_service::proto::ListArticlesByTagRequest {
                        tag: tag.clone(),
                        page_size: 7,
                        page_token,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                articles.extend(page.articles);
                if page.next_page_token.is_empty() {
                    return Ok(articles);
                }
                page_token = page.next_page_token;
            }
        }
    })
    .await;
    articles.sort_by(|a, b| a.id.cmp(&b.id));
    articles
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_resuming_through_replica_kills_and_a_postgres_restart_end_with_exactly_the_public_articles()
 {
    let started = Instant::now();
    let seed: u64 = std::env::var("LIFECYCLE_FAULTS_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random);
    println!("LIFECYCLE_FAULTS_SEED={seed}");
    let cluster = PgCluster::start(&[]);
    let database = cluster.owned_database("articles", "article_service").await;
    let options = ServerOptions::new(&database).env("HEARTBEAT_INTERVAL", "1");
    let mut servers = vec![
        TestServer::start_with(options.clone()).await,
        TestServer::start_with(options.clone()).await,
    ];
    let replicas = Replicas::new(&servers);
    let failures = Failures::default();

    // The consumers subscribe (live) before anything is published, one on
    // each replica; a seed article gives each its first token.
    let mut live_consumers = Vec::new();
    let mut applied = Vec::new();
    for (slot, consumer) in [
        Consumer::new("every change", None, false),
        Consumer::new("tag hot", Some(HOT_SLUG), false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut client = servers[slot].client().await;
        let stream = client
            .stream_article_changes(consumer.request())
            .await
            .expect("subscribe")
            .into_inner();
        applied.push(consumer.applied.clone());
        let replicas = replicas.clone();
        live_consumers.push(tokio::spawn(consumer.follow(
            replicas,
            Some(stream),
            Duration::from_secs(90),
        )));
    }
    let mut client = servers[0].client().await;
    publish(
        &mut client,
        PublishArticleRequest {
            slug: "lf-seed".to_owned(),
            ..article("Seed", &[ALL, HOT])
        },
    )
    .await;
    eventually("both consumers have the seed", WAIT, || {
        let applied = applied.clone();
        async move {
            applied
                .iter()
                .all(|count| count.load(Ordering::SeqCst) >= 1)
        }
    })
    .await;

    // The writers.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for index in 0..WRITERS {
        let writer = Writer {
            index,
            rng: StdRng::seed_from_u64(seed.wrapping_add(index as u64)),
            replicas: replicas.clone(),
            failures: failures.clone(),
            articles: Vec::new(),
            operations: BTreeMap::new(),
            last_release: SystemTime::now(),
        };
        writers.push(tokio::spawn(writer.run(stop.clone())));
    }

    // The faults.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let faults_at = Instant::now();
    replace(&mut servers, &replicas, 0, &options).await;
    println!("replica 0 killed and replaced at {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cluster.stop(StopMode::Fast);
    println!("PostgreSQL stopped at {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.start_again();
    println!("PostgreSQL started at {:?}", started.elapsed());
    for server in &servers {
        wait_until_serving(server).await;
    }
    println!("both replicas SERVING at {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(1)).await;
    replace(&mut servers, &replicas, 1, &options).await;
    println!("replica 1 killed and replaced at {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let mut written = Vec::new();
    let mut last_release = SystemTime::now();
    let mut operations = BTreeMap::new();
    for writer in writers {
        let writer = writer.await.expect("writer");
        last_release = last_release.max(writer.last_release);
        for (what, count) in &writer.operations {
            *operations.entry(*what).or_insert(0) += count;
        }
        written.extend(writer.articles);
    }
    println!(
        "writers done at {:?} ({:?} after the first fault): {operations:?}",
        started.elapsed(),
        faults_at.elapsed()
    );

    // Every embargo has ended, with time to spare for its release.
    let settle = last_release + Duration::from_secs(3);
    if let Ok(left) = settle.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }

    // Released, and once.
    let pool = pool(&database).await;
    let overdue: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM articles WHERE state = 2 AND published_at < now() - interval '2 s'",
    )
    .fetch_one(&pool)
    .await
    .expect("overdue");
    assert_eq!(overdue, 0, "scheduled articles due over 2 s ago");
    let twice: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT article_id FROM article_changes WHERE first_public \
         GROUP BY article_id HAVING count(*) > 1",
    )
    .fetch_all(&pool)
    .await
    .expect("first_public");
    assert_eq!(twice, Vec::<uuid::Uuid>::new(), "became public twice");
    let never_first: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT article_id) FROM article_changes c WHERE NOT EXISTS \
           (SELECT 1 FROM article_changes f WHERE f.article_id = c.article_id AND f.first_public)",
    )
    .fetch_one(&pool)
    .await
    .expect("first_public");
    assert_eq!(never_first, 0, "public articles never first public");
    let published_without_change: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM articles a WHERE a.state = 1 AND NOT EXISTS \
           (SELECT 1 FROM article_changes f WHERE f.article_id = a.id AND f.first_public)",
    )
    .fetch_one(&pool)
    .await
    .expect("first_public");
    assert_eq!(published_without_change, 0, "PUBLISHED without a change");
    pool.close().await;

    // The sentinel: the last change; the consumers stop at it.
    let sentinel = retrying(
        &replicas,
        &failures,
        "sentinel",
        1,
        |mut client| async move {
            client
                .publish_article(authorized(PublishArticleRequest {
                    slug: SENTINEL.to_owned(),
                    ..article("Sentinel", &[ALL, HOT])
                }))
                .await
                .map(|response| response.into_inner().article.expect("an article"))
        },
    )
    .await;

    // What the public sees now: by paging, and by GetArticle of each.
    let public = public_of(&replicas, &failures, ALL).await;
    let public_hot = public_of(&replicas, &failures, HOT_SLUG).await;
    let mut expected_slugs: Vec<String> = written
        .iter()
        .filter(|written| !written.withdrawn)
        .map(|written| written.request.slug.clone())
        .chain(["lf-seed".to_owned(), SENTINEL.to_owned()])
        .collect();
    expected_slugs.sort();
    let mut public_slugs: Vec<String> = public.iter().map(|a| a.slug.clone()).collect();
    public_slugs.sort();
    assert_eq!(public_slugs, expected_slugs, "the public articles");
    let by_slug: HashMap<&str, &Article> = public.iter().map(|a| (a.slug.as_str(), a)).collect();
    let mut client = connect(&replicas.pick(0)).await.expect("connect");
    for written in &written {
        let request = &written.request;
        let got = client
            .get_article(GetArticleRequest {
                key: Some(Key::Slug(request.slug.clone())),
                ..Default::default()
            })
            .await
            .map(|response| response.into_inner().article.expect("an article"));
        if written.withdrawn {
            assert_eq!(
                got.expect_err("withdrawn").code(),
                Code::NotFound,
                "{}",
                request.slug
            );
            continue;
        }
        let got = got.expect("public");
        assert_eq!(Some(&&got), by_slug.get(request.slug.as_str()));
        let names: Vec<&str> = got.tags.iter().map(|tag| tag.name.as_str()).collect();
        assert_eq!(
            (&got.title, &got.body, &got.byline, names),
            (
                &request.title,
                &request.body,
                &request.byline,
                request.tags.iter().map(String::as_str).collect()
            ),
            "{} as last written",
            request.slug
        );
    }
    let hot: Vec<Article> = public
        .iter()
        .filter(|a| a.tags.iter().any(|t| t.slug == HOT_SLUG))
        .cloned()
        .collect();
    assert_eq!(public_hot, hot, "tag hot's pages");

    // The live consumers, and late ones from the beginning.
    let mut consumers = Vec::new();
    for consumer in live_consumers {
        consumers.push(consumer.await.expect("consumer"));
    }
    for consumer in [
        Consumer::new("every change, from the beginning", None, true),
        Consumer::new("tag hot, from the beginning", Some(HOT_SLUG), true),
    ] {
        consumers.push(consumer.follow(replicas.clone(), None, WAIT).await);
    }
    for consumer in &consumers {
        let expected = if consumer.tag.is_some() {
            &public_hot
        } else {
            &public
        };
        assert_eq!(
            &consumer.sorted_copy(),
            expected,
            "{}'s copy: {} articles, {} public",
            consumer.label,
            consumer.copy.len(),
            expected.len()
        );
        println!(
            "{}: {} changes, {} reconnects ({:?}); copy of {} articles",
            consumer.label,
            consumer.copy.changes(),
            consumer.reconnects,
            consumer.failures.0.lock().expect("failures"),
            consumer.copy.len()
        );
    }
    assert!(
        consumers[0].reconnects >= 1 && consumers[1].reconnects >= 1,
        "both live consumers lived through the kills"
    );
    assert_eq!(sentinel.revision, 1);
    println!(
        "writers' retries: {:?}; {} articles, {} public; wall time {:?}",
        failures.0.lock().expect("failures"),
        written.len() + 2,
        public.len(),
        started.elapsed()
    );
}
