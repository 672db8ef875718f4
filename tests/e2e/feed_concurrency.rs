//! The property of StreamNewArticles that matters most: with many
//! publishers on two replicas of one database, and subscribers that drop and
//! resume at random points on either replica, every subscriber sees each
//! matching article exactly once, and all of them in the same order: the
//! store order (feed position ascending).

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use article_service::proto::article_service_client::ArticleServiceClient;
use proptest::prelude::*;
use tonic::transport::Channel;

/// What a case does.
#[derive(Debug, Clone)]
struct Scenario {
    publishers: Vec<PublisherPlan>,
    subscribers: Vec<SubscriberPlan>,
    /// FEED_BUFFER of both servers: 2 makes streams fall behind the
    /// broadcast all the time.
    feed_buffer: usize,
}

#[derive(Debug, Clone)]
struct PublisherPlan {
    /// Which replica it publishes to.
    server: usize,
    /// The tags of each of its articles, by `tags_of`.
    articles: Vec<u8>,
    /// Whether it then updates its first article (not a new article).
    update_first: bool,
}

#[derive(Debug, Clone)]
struct SubscriberPlan {
    server: usize,
    /// A tag filter, by `filter_of`; `None`: every article.
    filter: Option<u8>,
    /// What it does after this share of its articles.
    breaks: Vec<(f64, Break)>,
}

#[derive(Debug, Clone)]
enum Break {
    /// Drops its stream, and after `pause_ms` resumes from its last token
    /// on `server`.
    Resume { server: usize, pause_ms: u64 },
    /// Stops reading for a while: with its small HTTP/2 window the server
    /// soon cannot send, and the stream falls behind the broadcast.
    Stall { pause_ms: u64 },
}

fn tags_of(code: u8) -> &'static [&'static str] {
    match code % 4 {
        0 => &[],
        1 => &["Alpha"],
        2 => &["beta"],
        _ => &["alpha", "Gamma"],
    }
}

fn filter_of(code: u8) -> &'static str {
    match code % 3 {
        0 => "ALPHA",
        1 => "Beta",
        _ => "gamma",
    }
}

fn matches(filter: Option<u8>, tag_code: u8) -> bool {
    let Some(filter) = filter else { return true };
    let wanted = article_service::domain::slug::slugify(filter_of(filter));
    tags_of(tag_code)
        .iter()
        .any(|tag| article_service::domain::slug::slugify(tag) == wanted)
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let publisher = (
        0..2usize,
        prop::collection::vec(0..4u8, 3..=15),
        any::<bool>(),
    )
        .prop_map(|(server, articles, update_first)| PublisherPlan {
            server,
            articles,
            update_first,
        });
    let subscriber = (
        0..2usize,
        prop::option::of(0..3u8),
        prop::collection::vec(
            (
                0.0..1.0f64,
                prop_oneof![
                    (0..2usize, 0..250u64)
                        .prop_map(|(server, pause_ms)| Break::Resume { server, pause_ms }),
                    (50..400u64).prop_map(|pause_ms| Break::Stall { pause_ms }),
                ],
            ),
            0..=3,
        ),
    )
        .prop_map(|(server, filter, mut breaks)| {
            breaks.sort_by(|a, b| a.0.total_cmp(&b.0));
            SubscriberPlan {
                server,
                filter,
                breaks,
            }
        });
    (
        prop::collection::vec(publisher, 2..=6),
        prop::collection::vec(subscriber, 2..=4),
        prop::sample::select(vec![2usize, 16, 4096]),
    )
        .prop_map(|(publishers, subscribers, feed_buffer)| Scenario {
            publishers,
            subscribers,
            feed_buffer,
        })
}

const READ_TIMEOUT: Duration = Duration::from_secs(15);

async fn run(scenario: Scenario) {
    let database = fresh_database().await;
    let options = ServerOptions::new(&database)
        .env("FEED_BUFFER", &scenario.feed_buffer.to_string())
        .env("FEED_BATCH_SIZE", "3")
        .env("HEARTBEAT_INTERVAL", "1");
    let servers = [
        TestServer::start_with(options.clone()).await,
        TestServer::start_with(options).await,
    ];
    let endpoints: Arc<Vec<String>> = Arc::new(servers.iter().map(TestServer::endpoint).collect());
    let mut clients = Vec::new();
    for server in &servers {
        clients.push(server.client().await);
    }

    // A token from before the scenario: the genesis article's.
    let mut genesis_reader = FeedReader::open(&mut clients[0], &[], "").await;
    let genesis = publish_new(&mut clients[0], "Genesis", &[]).await;
    genesis_reader.read_articles(1, READ_TIMEOUT).await.unwrap();
    let before_all = genesis_reader.token.clone();
    drop(genesis_reader);

    // What each subscriber must get, in store order: known once the store
    // order is; here only how many.
    let all_codes: Vec<u8> = scenario
        .publishers
        .iter()
        .flat_map(|publisher| publisher.articles.iter().copied())
        .collect();

    // Subscribers are in place (headers received) before anyone publishes.
    let mut readers = Vec::new();
    for plan in &scenario.subscribers {
        let tags: Vec<&str> = plan.filter.map(filter_of).into_iter().collect();
        let mut client = connect(&endpoints[plan.server]).await;
        let stream = open_stream(&mut client, &tags, "")
            .await
            .expect("subscribe");
        let expected = all_codes
            .iter()
            .filter(|code| matches(plan.filter, **code))
            .count();
        let endpoints = endpoints.clone();
        let plan = plan.clone();
        readers.push(tokio::spawn(async move {
            let tags: Vec<&str> = plan.filter.map(filter_of).into_iter().collect();
            let mut reader = FeedReader::new(stream, "");
            for (share, action) in &plan.breaks {
                let after = ((expected as f64) * share) as usize;
                reader
                    .read_resuming(&mut client, &tags, after, READ_TIMEOUT)
                    .await;
                let (server, pause_ms) = match *action {
                    Break::Stall { pause_ms } => {
                        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                        continue;
                    }
                    Break::Resume { server, pause_ms } => (server, pause_ms),
                };
                // Without a token yet (nothing received) there is nothing to
                // resume from: an empty token starts anew. Take the next
                // message first (an article, or a heartbeat within 1 s).
                if reader.token.is_empty() {
                    match read_one(&mut reader.stream, READ_TIMEOUT).await {
                        Read::Message(message) => reader.record(*message),
                        other => panic!("no first message: {other:?}"),
                    }
                }
                // Drop the stream, wait while publishing goes on, resume
                // (perhaps on the other replica) from the last token.
                let FeedReader {
                    stream,
                    articles,
                    article_tokens,
                    token,
                    heartbeats,
                } = reader;
                drop(stream);
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                client = connect(&endpoints[server]).await;
                reader = FeedReader {
                    stream: resume(&mut client, &tags, &token).await,
                    articles,
                    article_tokens,
                    token,
                    heartbeats,
                };
            }
            reader
                .read_resuming(&mut client, &tags, expected, READ_TIMEOUT)
                .await;
            (
                reader,
                client,
                tags.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>(),
            )
        }));
    }

    // Publishers, all at once.
    let mut publishers = Vec::new();
    for (index, plan) in scenario.publishers.iter().enumerate() {
        let endpoint = endpoints[plan.server].clone();
        let plan = plan.clone();
        publishers.push(tokio::spawn(async move {
            let mut client = connect(&endpoint).await;
            let mut ids = Vec::new();
            let mut first = None;
            for (n, code) in plan.articles.iter().enumerate() {
                let mut request = article(
                    &unique_title(&format!("Publisher {index} article {n}")),
                    tags_of(*code),
                );
                // A few of these fill a subscriber's HTTP/2 window.
                request.body.push_str(&"\n\nPadding.".repeat(200));
                let response = publish(&mut client, request.clone()).await;
                assert!(response.created);
                ids.push(response.article.unwrap().id);
                first.get_or_insert(request);
            }
            if plan.update_first {
                let mut update = first.unwrap();
                update.body.push_str("\n\nCorrected.");
                assert!(!publish(&mut client, update).await.created);
            }
            ids
        }));
    }
    let mut published = Vec::new();
    for publisher in publishers {
        published.push(publisher.await.expect("publisher"));
    }

    // The store order, from the database itself.
    let store = store_order(&database).await;
    assert_eq!(store[0], genesis.id);
    let body = store[1..].to_vec();
    let total: usize = published.iter().map(Vec::len).sum();
    assert_eq!(body.len(), total, "every publish stored one article");
    // Each publisher's articles are in the store in the order it published.
    for ids in &published {
        let positions: Vec<usize> = ids
            .iter()
            .map(|id| body.iter().position(|x| x == id).expect("stored"))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    }
    let code_of = |id: &String| -> u8 {
        let (p, n) = published
            .iter()
            .enumerate()
            .find_map(|(p, ids)| ids.iter().position(|x| x == id).map(|n| (p, n)))
            .expect("published");
        scenario.publishers[p].articles[n]
    };

    let mut finished = Vec::new();
    for (reader, plan) in readers.into_iter().zip(&scenario.subscribers) {
        let (reader, client, tags) = reader.await.expect("subscriber");
        let expected: Vec<String> = body
            .iter()
            .filter(|id| matches(plan.filter, code_of(id)))
            .cloned()
            .collect();
        assert_eq!(
            reader.ids(),
            expected,
            "subscriber {plan:?} saw {} articles, expected {}",
            reader.articles.len(),
            expected.len()
        );
        finished.push((reader, client, tags));
    }

    // Nothing more is pending on any stream (no late duplicate): the next
    // thing each receives is a new article.
    let sentinel = publish_new(&mut clients[1], "Sentinel", &["alpha", "beta", "gamma"]).await;
    for (mut reader, mut client, tags) in finished {
        let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        let count = reader.articles.len() + 1;
        reader
            .read_resuming(&mut client, &tags, count, READ_TIMEOUT)
            .await;
        assert_eq!(reader.articles.last().unwrap().id, sentinel.id);
    }

    // A consumer that comes back only now replays the same order.
    let mut late = FeedReader::open(&mut clients[1], &[], &before_all).await;
    late.read_articles(body.len() + 1, READ_TIMEOUT)
        .await
        .unwrap();
    let mut expected = body.clone();
    expected.push(sentinel.id.clone());
    assert_eq!(late.ids(), expected);
}

/// A connection of its own, with HTTP/2 windows small enough (8 KiB) that a
/// subscriber that stops reading soon stops the server's stream.
async fn connect(endpoint: &str) -> ArticleServiceClient<Channel> {
    let channel = Channel::from_shared(endpoint.to_owned())
        .expect("an endpoint")
        .initial_stream_window_size(8 * 1024)
        .initial_connection_window_size(64 * 1024)
        .connect()
        .await
        .expect("connect");
    ArticleServiceClient::new(channel)
}

/// Opens a stream, retrying while the server answers UNAVAILABLE.
async fn resume(
    client: &mut ArticleServiceClient<Channel>,
    tags: &[&str],
    token: &str,
) -> tonic::Streaming<article_service::proto::StreamNewArticlesResponse> {
    let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
    loop {
        match open_stream(client, tags, token).await {
            Ok(stream) => return stream,
            Err(status) if status.code() == tonic::Code::Unavailable => {
                assert!(tokio::time::Instant::now() < deadline, "{status:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(status) => panic!("cannot resume: {status:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 8,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_subscriber_sees_every_article_once_in_store_order(scenario in scenario()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(run(scenario));
    }
}
