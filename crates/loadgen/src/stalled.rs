//! `stalled`: streams that never read, while large articles are published.
//!
//! Opens `streams` StreamNewArticles streams over `connections` HTTP/2
//! connections with 64 KiB stream windows (grpc-go's default) and never
//! reads them: each stream's window fills and stays shut. Meanwhile it
//! publishes `publishes_per_second` articles of `article_bytes` bytes, and
//! one good subscriber on a connection of its own times each delivery. Prints
//! the server's RSS (peak, and the highest sampled while publishing), the
//! good subscriber's latency and what it missed.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::{PublishArticleRequest, StreamNewArticlesRequest};
use hdrhistogram::Histogram;
use tonic::transport::Endpoint;

use crate::fanout::{authorized, rss_mib, unix_micros};

pub struct Options {
    pub addr: String,
    pub streams: usize,
    pub connections: usize,
    pub publishes_per_second: f64,
    pub article_bytes: usize,
    pub duration: Duration,
    pub server_pid: Option<u32>,
    pub token: String,
    /// Articles published before the stalled streams open, which they
    /// resume from a token before (0: they start at the head).
    pub behind: usize,
}

/// A StreamNewArticles resume token from before `count` articles it then
/// publishes.
async fn resume_token_before(options: &Options, count: usize) -> anyhow::Result<String> {
    let channel = Endpoint::from_shared(format!("http://{}", options.addr))?
        .connect()
        .await?;
    let mut client = ArticleServiceClient::new(channel).max_encoding_message_size(64 * 1024 * 1024);
    let mut first = client
        .stream_new_articles(StreamNewArticlesRequest::default())
        .await?
        .into_inner();
    let run = unix_micros();
    client
        .publish_article(authorized(
            article(
                format!("backlog-{run}-start"),
                "Start.".into(),
                String::new(),
            ),
            &options.token,
        )?)
        .await?;
    let token = first
        .message()
        .await?
        .map(|message| message.resume_token)
        .ok_or_else(|| anyhow::anyhow!("the stream ended"))?;
    drop(first);
    let body = "x".repeat(options.article_bytes);
    for n in 0..count {
        client
            .publish_article(authorized(
                article(format!("backlog-{run}-{n}"), body.clone(), String::new()),
                &options.token,
            )?)
            .await?;
    }
    Ok(token)
}

/// A loadgen article of `body` under `slug`; `summary` carries a send time
/// where latency is measured.
fn article(slug: String, body: String, summary: String) -> PublishArticleRequest {
    PublishArticleRequest {
        title: format!("Stalled-reader article {slug}"),
        slug,
        summary,
        body,
        byline: "loadgen".into(),
        tags: vec!["Loadgen".into()],
        ..Default::default()
    }
}

pub async fn stalled(options: Options) -> anyhow::Result<()> {
    let endpoint = Endpoint::from_shared(format!("http://{}", options.addr))?
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(64 * 1024 * 1024);
    let resume_token = if options.behind > 0 {
        resume_token_before(&options, options.behind).await?
    } else {
        String::new()
    };
    let rss_before = options
        .server_pid
        .and_then(rss_mib)
        .map_or(0.0, |(_, rss)| rss);
    // The stalled streams: opened, then held without reading.
    let mut held = Vec::with_capacity(options.streams);
    let mut channels = Vec::new();
    for _ in 0..options.connections.max(1) {
        channels.push(endpoint.connect().await?);
    }
    for n in 0..options.streams {
        let mut client = ArticleServiceClient::new(channels[n % channels.len()].clone())
            .max_decoding_message_size(64 * 1024 * 1024);
        held.push(
            client
                .stream_new_articles(StreamNewArticlesRequest {
                    resume_token: resume_token.clone(),
                    ..Default::default()
                })
                .await?
                .into_inner(),
        );
    }
    // Time for them to catch up as far as they can.
    let mut rss_open: f64 = 0.0;
    for _ in 0..if options.behind > 0 { 6 } else { 1 } {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = options
            .server_pid
            .and_then(rss_mib)
            .map_or(0.0, |(_, rss)| rss);
        rss_open = rss_open.max(rss);
    }

    // The good subscriber, on its own connection.
    let good_channel = Endpoint::from_shared(format!("http://{}", options.addr))?
        .connect()
        .await?;
    let mut good = ArticleServiceClient::new(good_channel.clone())
        .max_decoding_message_size(64 * 1024 * 1024)
        .stream_new_articles(StreamNewArticlesRequest::default())
        .await?
        .into_inner();
    let received = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new(3)?));
    let good_task = {
        let received = received.clone();
        let latencies = latencies.clone();
        tokio::spawn(async move {
            while let Ok(Some(message)) = good.message().await {
                if let Some(article) = message.article {
                    let sent: u64 = article.summary.parse().unwrap_or(0);
                    let micros = unix_micros().saturating_sub(sent);
                    if let Ok(mut histogram) = latencies.lock() {
                        let _ = histogram.record(micros.max(1));
                    }
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    let mut publisher =
        ArticleServiceClient::new(good_channel).max_encoding_message_size(64 * 1024 * 1024);
    let run = unix_micros();
    let interval = Duration::from_secs_f64(1.0 / options.publishes_per_second.max(0.01));
    let started = Instant::now();
    let mut ticker = tokio::time::interval(interval);
    let mut published = 0u64;
    let mut rss_max_sampled = rss_open;
    let body = "x".repeat(options.article_bytes);
    while started.elapsed() < options.duration {
        ticker.tick().await;
        let request = article(
            format!("stalled-{run}-{published}"),
            body.clone(),
            unix_micros().to_string(),
        );
        publisher
            .publish_article(authorized(request, &options.token)?)
            .await?;
        published += 1;
        if let Some((_, rss)) = options.server_pid.and_then(rss_mib) {
            rss_max_sampled = rss_max_sampled.max(rss);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    good_task.abort();
    let peak = options
        .server_pid
        .and_then(rss_mib)
        .map_or(0.0, |(peak, _)| peak);
    let histogram = latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let quantile = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{{\"stalled_streams\":{},\"behind\":{},\"published\":{},\"article_bytes\":{},\"good_received\":{},\"good_p50_ms\":{:.1},\"good_p99_ms\":{:.1},\"good_max_ms\":{:.1},\"rss_before_mib\":{:.1},\"rss_streams_open_mib\":{:.1},\"rss_max_sampled_mib\":{:.1},\"rss_peak_mib\":{:.1}}}",
        options.streams,
        options.behind,
        published,
        options.article_bytes,
        received.load(Ordering::Relaxed),
        quantile(0.5),
        quantile(0.99),
        quantile(1.0),
        rss_before,
        rss_open,
        rss_max_sampled,
        peak,
    );
    drop(held);
    Ok(())
}
