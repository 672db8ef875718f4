//! The snapshot-then-changes property under concurrent writers: while two
//! writers on two replicas of one database publish, update (moving articles
//! between tags X and Y), withdraw, publish again and schedule, a reader
//! pages tag X (random page sizes and pauses, each page on a random replica)
//! and then streams X's changes from the session's `changes_token` (perhaps
//! dropping its stream and resuming from its last token on the other
//! replica). Applying the changes by revision to what the pages gave leaves
//! it with exactly X's public articles, as ListArticlesByTag lists them once
//! everything has settled. Every consumer (the reader, a consumer of every
//! change that subscribed before anything was published, and one that reads
//! X's changes from the beginning at the end) receives no change twice and
//! each article's revisions in increasing order.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use crate::common::change_copy::ChangeCopy;
use crate::common::*;
use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::{
    Article, ArticleChange, ArticleState, ChangeType, ListArticlesByTagRequest,
    PublishArticleRequest, StreamArticleChangesRequest, StreamArticleChangesResponse,
    WithdrawArticleRequest, withdraw_article_request,
};
use proptest::prelude::*;
use tonic::Streaming;
use tonic::transport::Channel;

/// Tag X (the reader's) and tag Y, by display name and slug.
const X: &str = "X-Ray";
const X_SLUG: &str = "x-ray";
const Y: &str = "Yankee";
const Y_SLUG: &str = "yankee";
const SENTINEL: &str = "cc-sentinel";

const PUBLISHED: i32 = ArticleState::Published as i32;
const W: i32 = ChangeType::Withdrawn as i32;

const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// One writer's operation.
#[derive(Debug, Clone)]
enum Op {
    /// A new article, in X (true) or Y.
    Publish { in_x: bool },
    /// A new body for an article the writer knows (`pick` modulo their
    /// number), perhaps moved to X (true) or Y.
    Update { pick: usize, move_to: Option<bool> },
    /// Withdraws an article it knows.
    Withdraw { pick: usize },
    /// Publishes an article it withdrew again (an update of any article it
    /// knows when it withdrew none).
    PublishAgain { pick: usize },
    /// A new article in X or Y, its `published_at` this far ahead.
    Schedule { in_x: bool, ahead_ms: u64 },
}

#[derive(Debug, Clone)]
struct WriterPlan {
    server: usize,
    /// Each operation, and the pause after it (ms).
    ops: Vec<(Op, u64)>,
}

#[derive(Debug, Clone)]
struct ReaderPlan {
    /// When it starts paging, after the writers started (ms).
    start_ms: u64,
    /// Page size, replica and pause after the page (ms) of each page, in
    /// turn (cycled).
    pages: Vec<(i32, usize, u64)>,
    /// The replica it streams from.
    stream_server: usize,
    /// Drops its stream after this many changes, and after the pause (ms)
    /// resumes from its last token on the other replica.
    resume_after: Option<(usize, u64)>,
}

#[derive(Debug, Clone)]
struct Scenario {
    /// The articles both writers know, published before it all begins: in X
    /// (true) or Y.
    seeds: Vec<bool>,
    writers: Vec<WriterPlan>,
    reader: ReaderPlan,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => any::<bool>().prop_map(|in_x| Op::Publish { in_x }),
        4 => (any::<usize>(), prop::option::of(any::<bool>()))
            .prop_map(|(pick, move_to)| Op::Update { pick, move_to }),
        2 => any::<usize>().prop_map(|pick| Op::Withdraw { pick }),
        2 => any::<usize>().prop_map(|pick| Op::PublishAgain { pick }),
        1 => (any::<bool>(), 1_000..2_000u64)
            .prop_map(|(in_x, ahead_ms)| Op::Schedule { in_x, ahead_ms }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let writer = (0..2usize, prop::collection::vec((op(), 0..40u64), 5..=20))
        .prop_map(|(server, ops)| WriterPlan { server, ops });
    let reader = (
        0..200u64,
        prop::collection::vec((1..=3i32, 0..2usize, 10..150u64), 1..=6),
        0..2usize,
        prop::option::of((0..12usize, 0..200u64)),
    )
        .prop_map(
            |(start_ms, pages, stream_server, resume_after)| ReaderPlan {
                start_ms,
                pages,
                stream_server,
                resume_after,
            },
        );
    (
        prop::collection::vec(any::<bool>(), 4..=10),
        prop::collection::vec(writer, 2..=2),
        reader,
    )
        .prop_map(|(seeds, writers, reader)| Scenario {
            seeds,
            writers,
            reader,
        })
}

fn tag_of(in_x: bool) -> &'static str {
    if in_x { X } else { Y }
}

fn in_ms(ms: u64) -> (prost_types::Timestamp, SystemTime) {
    let when = SystemTime::now() + Duration::from_millis(ms);
    let since = when
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    (
        prost_types::Timestamp {
            seconds: i64::try_from(since.as_secs()).expect("seconds"),
            nanos: i32::try_from(since.subsec_micros() * 1_000).expect("nanos"),
        },
        when,
    )
}

/// An article a writer knows: its latest request, and whether the writer
/// withdrew it last.
struct Known {
    request: PublishArticleRequest,
    withdrawn: bool,
}

/// Runs a writer's plan; returns when its latest embargo ends.
async fn write(
    index: usize,
    plan: WriterPlan,
    mut client: ArticleServiceClient<Channel>,
    seeds: Vec<PublishArticleRequest>,
) -> SystemTime {
    let mut known: Vec<Known> = seeds
        .into_iter()
        .map(|request| Known {
            request,
            withdrawn: false,
        })
        .collect();
    let mut last_release = SystemTime::now();
    for (n, (op, pause_ms)) in plan.ops.into_iter().enumerate() {
        let slug = format!("cc-{index}-{n}");
        match op {
            Op::Publish { in_x } => {
                let request = PublishArticleRequest {
                    slug,
                    ..article(&format!("Writer {index} article {n}"), &[tag_of(in_x)])
                };
                let response = publish(&mut client, request.clone()).await;
                assert!(response.created);
                known.push(Known {
                    request,
                    withdrawn: false,
                });
            }
            Op::Schedule { in_x, ahead_ms } => {
                let (published_at, when) = in_ms(ahead_ms);
                let request = PublishArticleRequest {
                    slug,
                    published_at: Some(published_at),
                    ..article(&format!("Writer {index} embargo {n}"), &[tag_of(in_x)])
                };
                let stored = publish(&mut client, request.clone())
                    .await
                    .article
                    .expect("an article");
                assert_eq!(stored.state, ArticleState::Scheduled as i32);
                last_release = last_release.max(when);
                known.push(Known {
                    request: PublishArticleRequest {
                        published_at: None,
                        ..request
                    },
                    withdrawn: false,
                });
            }
            Op::Update { pick, move_to } => {
                let i = pick % known.len();
                update(&mut client, &mut known[i], move_to, n).await;
            }
            Op::PublishAgain { pick } => {
                let withdrawn: Vec<usize> =
                    (0..known.len()).filter(|&i| known[i].withdrawn).collect();
                let i = if withdrawn.is_empty() {
                    pick % known.len()
                } else {
                    withdrawn[pick % withdrawn.len()]
                };
                update(&mut client, &mut known[i], None, n).await;
            }
            Op::Withdraw { pick } => {
                let i = pick % known.len();
                client
                    .withdraw_article(authorized(WithdrawArticleRequest {
                        key: Some(withdraw_article_request::Key::Slug(
                            known[i].request.slug.clone(),
                        )),
                        reason: format!("writer {index}, step {n}"),
                    }))
                    .await
                    .expect("withdraw");
                known[i].withdrawn = true;
            }
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
    }
    last_release
}

/// A new body (so a new revision), perhaps another tag; `published_at`
/// omitted (the stored one stays). Publishes a withdrawn article again.
async fn update(
    client: &mut ArticleServiceClient<Channel>,
    known: &mut Known,
    move_to: Option<bool>,
    n: usize,
) {
    let tags = match move_to {
        Some(in_x) => vec![tag_of(in_x).to_owned()],
        None => known.request.tags.clone(),
    };
    known.request = PublishArticleRequest {
        body: format!("{} as of step {n}.", known.request.slug),
        tags,
        ..known.request.clone()
    };
    let response = publish(client, known.request.clone()).await;
    assert!(!response.created);
    known.withdrawn = false;
}

/// A consumer's copy, built from pages and changes applied by revision.
struct Follower {
    label: &'static str,
    /// The tag filter's slug, if any.
    tag: Option<&'static str>,
    token: String,
    copy: ChangeCopy,
    /// Articles the pages gave.
    paged: usize,
}

impl Follower {
    fn new(label: &'static str, tag: Option<&'static str>) -> Self {
        Self {
            label,
            tag,
            token: String::new(),
            copy: ChangeCopy::new(label, tag),
            paged: 0,
        }
    }

    fn request(&self, from_beginning: bool) -> StreamArticleChangesRequest {
        StreamArticleChangesRequest {
            tags: self.tag.iter().map(|tag| (*tag).to_owned()).collect(),
            resume_token: self.token.clone(),
            from_beginning,
            ..Default::default()
        }
    }

    /// An article from a page.
    fn hold(&mut self, article: Article) {
        self.paged += 1;
        self.copy.hold(article);
    }

    /// Applies one change; true when it is the sentinel's.
    fn apply(&mut self, change: ArticleChange) -> bool {
        let article = self.copy.apply(&change);
        change.r#type != W && article.slug == SENTINEL
    }

    /// Reads `stream` until the sentinel's change; after `resume.0` changes,
    /// drops it and resumes from the last token on `resume.1`'s replica.
    async fn follow(
        &mut self,
        mut stream: Streaming<StreamArticleChangesResponse>,
        mut resume: Option<(usize, u64, ArticleServiceClient<Channel>)>,
    ) {
        let label = self.label;
        let mut changes = 0;
        loop {
            if let Some((after, pause_ms, client)) = resume.as_mut()
                && changes == *after
                && !self.token.is_empty()
            {
                drop(stream);
                tokio::time::sleep(Duration::from_millis(*pause_ms)).await;
                stream = client
                    .stream_article_changes(self.request(false))
                    .await
                    .expect("resume")
                    .into_inner();
                resume = None;
            }
            match tokio::time::timeout(READ_TIMEOUT, stream.message()).await {
                Err(_) => panic!("{label}: no sentinel within {READ_TIMEOUT:?}"),
                Ok(Ok(Some(message))) => {
                    assert!(!message.resume_token.is_empty(), "{label}: no token");
                    self.token = message.resume_token;
                    if let Some(change) = message.change {
                        changes += 1;
                        if self.apply(change) {
                            return;
                        }
                    }
                }
                Ok(other) => panic!("{label}: the stream ended: {other:?}"),
            }
        }
    }

    fn sorted(&self) -> Vec<Article> {
        self.copy.sorted()
    }
}

/// The reader: pages X, then streams X's changes from the session's token.
async fn read(plan: ReaderPlan, clients: Vec<ArticleServiceClient<Channel>>) -> Follower {
    tokio::time::sleep(Duration::from_millis(plan.start_ms)).await;
    let mut reader = Follower::new("reader", Some(X_SLUG));
    let mut page_token = String::new();
    let mut changes_token: Option<String> = None;
    let mut listed = HashSet::new();
    for (size, server, pause_ms) in plan.pages.iter().cycle() {
        let page = clients[*server]
            .clone()
            .list_articles_by_tag(ListArticlesByTagRequest {
                tag: X.to_owned(),
                page_size: *size,
                page_token,
                ..Default::default()
            })
            .await
            .expect("a page")
            .into_inner();
        assert!(!page.changes_token.is_empty(), "a changes token");
        match &changes_token {
            None => changes_token = Some(page.changes_token.clone()),
            Some(token) => assert_eq!(token, &page.changes_token, "one token per session"),
        }
        for article in page.articles {
            assert!(
                article.state == PUBLISHED && article.tags.iter().any(|t| t.slug == X_SLUG),
                "a page of X: {article:?}"
            );
            assert!(
                listed.insert(article.id.clone()),
                "listed twice: {article:?}"
            );
            reader.hold(article);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
        tokio::time::sleep(Duration::from_millis(*pause_ms)).await;
    }
    reader.token = changes_token.expect("a page");
    let stream = clients[plan.stream_server]
        .clone()
        .stream_article_changes(reader.request(false))
        .await
        .expect("stream from the changes token")
        .into_inner();
    let resume = plan
        .resume_after
        .map(|(after, pause_ms)| (after, pause_ms, clients[1 - plan.stream_server].clone()));
    reader.follow(stream, resume).await;
    reader
}

async fn run(scenario: Scenario) {
    let database = fresh_database().await;
    let options = ServerOptions::new(&database).env("HEARTBEAT_INTERVAL", "1");
    let servers = [
        TestServer::start_with(options.clone()).await,
        TestServer::start_with(options).await,
    ];
    let mut clients = Vec::new();
    for server in &servers {
        clients.push(server.client().await);
    }

    // A consumer of every change, from before the first.
    let mut everything = Follower::new("every change", None);
    let everything_stream = clients[1 - scenario.reader.stream_server]
        .stream_article_changes(everything.request(false))
        .await
        .expect("subscribe")
        .into_inner();
    let mut seeds = Vec::new();
    for (i, in_x) in scenario.seeds.iter().enumerate() {
        let request = PublishArticleRequest {
            slug: format!("cc-seed-{i}"),
            ..article(&format!("Seed {i}"), &[tag_of(*in_x)])
        };
        publish(&mut clients[0], request.clone()).await;
        seeds.push(request);
    }
    let everything = tokio::spawn(async move {
        everything.follow(everything_stream, None).await;
        everything
    });

    let writers: Vec<_> = scenario
        .writers
        .iter()
        .enumerate()
        .map(|(index, plan)| {
            tokio::spawn(write(
                index,
                plan.clone(),
                clients[plan.server].clone(),
                seeds.clone(),
            ))
        })
        .collect();
    let reader = tokio::spawn(read(scenario.reader.clone(), clients.clone()));
    let mut last_release = SystemTime::now();
    for writer in writers {
        last_release = last_release.max(writer.await.expect("writer"));
    }
    // Every embargo has ended, with time for its release.
    if let Ok(left) = (last_release + Duration::from_secs(3)).duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
    // The last change: the consumers stop at it.
    publish(
        &mut clients[0],
        PublishArticleRequest {
            slug: SENTINEL.to_owned(),
            ..article("Sentinel", &[X])
        },
    )
    .await;

    let mut public_x = list_all_by_tag(&mut clients[1], X_SLUG, 100).await.0;
    public_x.sort_by(|a, b| a.id.cmp(&b.id));
    let mut public = list_all_by_tag(&mut clients[0], Y_SLUG, 100).await.0;
    public.extend(public_x.iter().cloned());
    public.sort_by(|a, b| a.id.cmp(&b.id));

    let reader = reader.await.expect("reader");
    assert_eq!(
        reader.sorted(),
        public_x,
        "the reader's copy ({} articles) and X's public articles ({})",
        reader.copy.len(),
        public_x.len()
    );
    let everything = everything.await.expect("every change");
    assert_eq!(everything.sorted(), public, "every change's copy");
    let mut late = Follower::new("X from the beginning", Some(X_SLUG));
    let stream = clients[scenario.reader.stream_server]
        .stream_article_changes(late.request(true))
        .await
        .expect("from the beginning")
        .into_inner();
    late.follow(stream, None).await;
    assert_eq!(late.sorted(), public_x, "X from the beginning");
    println!(
        "{} seeds, {} operations: reader {} pages' articles, {} changes ({} older than a page's), \
         every change {}, X from the beginning {}; {} public in X, {} in all",
        scenario.seeds.len(),
        scenario.writers.iter().map(|w| w.ops.len()).sum::<usize>(),
        reader.paged,
        reader.copy.changes(),
        reader.copy.stale,
        everything.copy.changes(),
        late.copy.changes(),
        public_x.len(),
        public.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        max_shrink_iters: 8,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_tag_snapshot_then_its_changes_gives_exactly_its_public_articles(scenario in scenario()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(run(scenario));
    }
}
