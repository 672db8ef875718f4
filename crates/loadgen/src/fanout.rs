//! `fanout`: stream fan-out, publish-to-delivery latency across subscribers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use article_service::proto::article_service_client::ArticleServiceClient;
use hdrhistogram::Histogram;
use tonic::transport::Endpoint;

pub fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// Peak and current resident set size of a process, in MiB.
pub fn rss_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map(|kib| kib / 1024.0)
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// What the publisher does, and which streams wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Event {
    /// A new article, on StreamNewArticles (latency from the publish call).
    New,
    /// A new article, on StreamArticleChanges (latency from its commit).
    Published,
    /// An article scheduled 1 s ahead, released by the server's release job
    /// (latency from the end of its embargo).
    Release,
    /// A withdrawal of an article published before the streams opened
    /// (latency from its commit).
    Withdraw,
}

pub fn authorized<T>(message: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

/// Microseconds since the epoch of a protobuf timestamp.
fn micros_of(at: Option<&prost_types::Timestamp>) -> u64 {
    at.map_or(0, |at| {
        (at.seconds as u64) * 1_000_000 + (at.nanos as u64) / 1_000
    })
}

/// A stream's next message: `Some(Some(sent))` for an awaited event sent at
/// `sent` (microseconds), `Some(None)` for any other message, `None` at its end.
enum Opened {
    New(tonic::Streaming<article_service::proto::StreamNewArticlesResponse>),
    Changes(
        tonic::Streaming<article_service::proto::StreamArticleChangesResponse>,
        i32,
    ),
}

impl Opened {
    async fn next(&mut self) -> Result<Option<Option<u64>>, tonic::Status> {
        Ok(match self {
            Self::New(stream) => stream.message().await?.map(|message| {
                message
                    .article
                    .map(|article| article.summary.parse().unwrap_or(0))
            }),
            Self::Changes(stream, awaited) => stream.message().await?.map(|message| {
                message
                    .change
                    .filter(|change| change.r#type == *awaited)
                    .map(|change| micros_of(change.change_time.as_ref()))
            }),
        })
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn fanout(
    addr: &str,
    subscribers: usize,
    connections: usize,
    publishes_per_second: f64,
    duration: Duration,
    server_pid: Option<u32>,
    token: &str,
    event: Event,
    article_bytes: usize,
) -> anyhow::Result<()> {
    use article_service::proto::{
        ChangeType, PublishArticleRequest, StreamArticleChangesRequest, StreamNewArticlesRequest,
        WithdrawArticleRequest, withdraw_article_request,
    };
    use std::sync::Mutex;

    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut publisher = ArticleServiceClient::new(channel);
    let run = unix_micros();
    let planned = (duration.as_secs_f64() * publishes_per_second).ceil() as u64 + 1;
    // Withdrawals take down articles published before the streams open.
    if event == Event::Withdraw {
        for n in 0..planned {
            let request = PublishArticleRequest {
                slug: format!("fanout-{run}-{n}"),
                title: format!("Fan-out article {n}"),
                body: "x".repeat(article_bytes),
                byline: "loadgen".into(),
                tags: vec!["Loadgen".into()],
                ..Default::default()
            };
            publisher
                .publish_article(authorized(request, token)?)
                .await?;
        }
    }

    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(
            // Hundreds of streams share a connection: a small connection
            // window would split messages into many small DATA frames,
            // which h2 (>= 0.4.20) treats as a flood and answers with GOAWAY.
            Endpoint::from_shared(format!("http://{addr}"))?
                .initial_connection_window_size(64 << 20)
                .initial_stream_window_size(1 << 20)
                .connect()
                .await?,
        );
    }
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let stop = tokio_util::sync::CancellationToken::new();
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let opened = Instant::now();
    let expected_per_stream = (duration.as_secs_f64() * publishes_per_second) as usize + 16;
    let mut readers = Vec::with_capacity(subscribers);
    for n in 0..subscribers {
        let mut client = ArticleServiceClient::new(channels[n % connections].clone())
            .max_decoding_message_size(8 << 20);
        let mut stream = match event {
            Event::New => Opened::New(
                client
                    .stream_new_articles(StreamNewArticlesRequest::default())
                    .await?
                    .into_inner(),
            ),
            Event::Published | Event::Release | Event::Withdraw => {
                let awaited = match event {
                    Event::Withdraw => ChangeType::Withdrawn,
                    _ => ChangeType::Published,
                };
                Opened::Changes(
                    client
                        .stream_article_changes(StreamArticleChangesRequest::default())
                        .await?
                        .into_inner(),
                    awaited as i32,
                )
            }
        };
        let histogram = histogram.clone();
        let errors = errors.clone();
        // The driver shares the server's cores, so each reader keeps its
        // per-message work to what a consumer does (decode the message, read
        // a field): a stop token of its own, waited on by one future (not a
        // fresh waiter on a lock every reader shares, per message), and
        // latencies kept in a small Vec, added to the histogram at the end
        // (not a histogram of some 80 KiB per reader, missing the cache).
        let stop = stop.child_token().cancelled_owned();
        readers.push(tokio::spawn(async move {
            let mut stop = std::pin::pin!(stop);
            let mut latencies: Vec<u64> = Vec::with_capacity(expected_per_stream);
            loop {
                let message = tokio::select! {
                    biased;
                    message = stream.next() => message,
                    () = &mut stop => break,
                };
                match message {
                    Ok(Some(Some(sent))) => latencies.push(unix_micros().saturating_sub(sent)),
                    Ok(Some(None)) => {}
                    other => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("stream ended: {other:?}");
                        }
                        break;
                    }
                }
            }
            if let Ok(mut histogram) = histogram.lock() {
                for &latency in &latencies {
                    let _ = histogram.record(latency);
                }
            }
            latencies.len() as u64
        }));
    }
    println!(
        "{subscribers} streams open in {:.1} s",
        opened.elapsed().as_secs_f64()
    );

    let interval = Duration::from_secs_f64(1.0 / publishes_per_second);
    let started = Instant::now();
    let mut published = 0u64;
    let mut ticker = tokio::time::interval(interval);
    while started.elapsed() < duration && published < planned {
        ticker.tick().await;
        let slug = format!("fanout-{run}-{published}");
        if event == Event::Withdraw {
            let request = WithdrawArticleRequest {
                key: Some(withdraw_article_request::Key::Slug(slug)),
                reason: "loadgen".into(),
            };
            publisher
                .withdraw_article(authorized(request, token)?)
                .await?;
        } else {
            let published_at = (event == Event::Release).then(|| {
                let at = std::time::SystemTime::now() + Duration::from_secs(1);
                let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                prost_types::Timestamp {
                    seconds: since.as_secs() as i64,
                    nanos: (since.subsec_micros() * 1_000) as i32,
                }
            });
            let request = PublishArticleRequest {
                slug,
                title: format!("Fan-out article {published}"),
                summary: unix_micros().to_string(),
                body: "x".repeat(article_bytes),
                byline: "loadgen".into(),
                tags: vec!["Loadgen".into()],
                published_at,
            };
            publisher
                .publish_article(authorized(request, token)?)
                .await?;
        }
        published += 1;
    }
    let publishing = started.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let mut delivered = 0u64;
    for reader in readers {
        delivered += reader.await?;
    }
    let expected = published * subscribers as u64;
    let histogram = histogram.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let ms = |micros: u64| micros as f64 / 1000.0;
    println!(
        "fan-out ({event:?}): {subscribers} subscribers over {connections} connections, {published} publishes in {:.0} s: \
         {delivered}/{expected} deliveries ({} missing, {} stream errors); latency ms p50 {:.1} p99 {:.1} max {:.1}",
        publishing.as_secs_f64(),
        expected.saturating_sub(delivered),
        errors.load(Ordering::Relaxed),
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max()),
    );
    if let Some((peak, now)) = server_pid.and_then(rss_mib) {
        println!("server RSS: peak {peak:.0} MiB, now {now:.0} MiB");
    }
    Ok(())
}
