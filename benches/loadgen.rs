//! Benchmark harness (not a test): a deterministic corpus generator and a
//! closed-loop gRPC load driver. See BENCHMARKS.md for how each figure was
//! made.
//!
//!   cargo bench --bench loadgen -- corpus --articles 100000 --out target/corpus.ndjson
//!   cargo bench --bench loadgen -- reads --addr 127.0.0.1:50051 --scenario get-by-id-uniform
//!
//! Keys for the read scenarios are sampled from the database (DATABASE_URL).

use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::{
    GetArticleRequest, ListArticlesByTagRequest, get_article_request::Key,
};
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use time::OffsetDateTime;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser)]
struct Cli {
    /// `cargo bench` passes --bench to every bench program; ignored.
    #[arg(long, hide = true, global = true)]
    bench: bool,
    /// None when `cargo test --all-targets` runs this program: nothing to do.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Writes a deterministic NDJSON corpus for `article-service import`.
    Corpus {
        #[arg(long, default_value_t = 100_000)]
        articles: usize,
        #[arg(long, default_value_t = 2_000)]
        tags: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Output file ("-" for standard output).
        #[arg(long, default_value = "-")]
        out: String,
    },
    /// Closed-loop load on one read scenario; prints throughput and latency.
    Reads {
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        #[arg(long, value_enum)]
        scenario: Scenario,
        /// Concurrent requests in flight (one loop each).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// HTTP/2 connections the loops share.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 2)]
        warmup_seconds: u64,
        /// Keys sampled from the database.
        #[arg(long, default_value_t = 100_000)]
        keys: i64,
        /// For list-deep: which page.
        #[arg(long, default_value_t = 500)]
        page: usize,
    },
    /// Stream fan-out: N subscribers over M connections, P publishes a
    /// second; publish-to-delivery latency across all subscribers.
    Fanout {
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        #[arg(long, default_value_t = 1_000)]
        subscribers: usize,
        #[arg(long, default_value_t = 20)]
        connections: usize,
        #[arg(long, default_value_t = 2.0)]
        publishes_per_second: f64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The server's PID, to read its peak RSS from /proc.
        #[arg(long)]
        server_pid: Option<u32>,
        #[arg(long, env = "PUBLISH_TOKEN", default_value = "dev-publish-token")]
        token: String,
    },
}

#[derive(Clone, Copy, ValueEnum, Debug)]
enum Scenario {
    GetByIdUniform,
    GetBySlugUniform,
    GetByIdZipf,
    ListFirstPage,
    ListDeep,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Some(command) = Cli::parse().command else {
        println!("loadgen: no command given, nothing to do (see BENCHMARKS.md)");
        return Ok(());
    };
    match command {
        Command::Corpus {
            articles,
            tags,
            seed,
            out,
        } => corpus(articles, tags, seed, &out),
        Command::Reads {
            addr,
            scenario,
            concurrency,
            connections,
            seconds,
            warmup_seconds,
            keys,
            page,
        } => {
            reads(
                &addr,
                scenario,
                concurrency,
                connections,
                Duration::from_secs(seconds),
                Duration::from_secs(warmup_seconds),
                keys,
                page,
            )
            .await
        }
        Command::Fanout {
            addr,
            subscribers,
            connections,
            publishes_per_second,
            seconds,
            server_pid,
            token,
        } => {
            fanout(
                &addr,
                subscribers,
                connections,
                publishes_per_second,
                Duration::from_secs(seconds),
                server_pid,
                &token,
            )
            .await
        }
    }
}

const WORDS: &[&str] = &[
    "government",
    "minister",
    "election",
    "market",
    "talks",
    "security",
    "economy",
    "climate",
    "energy",
    "border",
    "court",
    "report",
    "officials",
    "agreement",
    "summit",
    "prices",
    "growth",
    "crisis",
    "vote",
    "health",
    "science",
    "league",
    "final",
    "season",
    "company",
    "shares",
    "trade",
    "policy",
    "city",
    "river",
    "the",
    "of",
    "and",
    "to",
    "in",
    "a",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "after",
    "over",
];

/// Tag `rank` (0 = most popular) of the corpus.
fn tag_name(rank: usize) -> String {
    format!("Section {rank:04}")
}

fn corpus(articles: usize, tags: usize, seed: u64, out: &str) -> anyhow::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    let popularity = Zipf::new(tags as f64, 1.1)?;
    let start = OffsetDateTime::from_unix_timestamp(1_609_459_200)?; // 2021-01-01
    let span_seconds = 5 * 365 * 24 * 3600;
    let writer: Box<dyn Write> = if out == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(out)?)
    };
    let mut writer = BufWriter::with_capacity(1 << 20, writer);
    for n in 0..articles {
        let title_words = rng.random_range(5..12);
        let mut title: Vec<&str> = (0..title_words)
            .map(|_| WORDS[rng.random_range(0..WORDS.len())])
            .collect();
        let number = n.to_string();
        title.push(&number); // unique titles, so derived slugs are unique
        let title = title.join(" ");
        let mut title_chars = title.chars();
        let title: String = title_chars
            .next()
            .map(|first| first.to_uppercase().chain(title_chars).collect())
            .unwrap_or_default();
        let body_len = rng.random_range(2_000..6_000);
        let mut body = String::with_capacity(body_len + 16);
        while body.len() < body_len {
            if !body.is_empty() {
                body.push_str(if rng.random_bool(0.1) { ".\n\n" } else { " " });
            }
            body.push_str(WORDS[rng.random_range(0..WORDS.len())]);
        }
        body.push('.');
        let tag_count = rng.random_range(1..=5);
        let mut article_tags: Vec<String> = Vec::with_capacity(tag_count);
        while article_tags.len() < tag_count {
            let name = tag_name(popularity.sample(&mut rng) as usize - 1);
            if !article_tags.contains(&name) {
                article_tags.push(name);
            }
        }
        let published_at = start + time::Duration::seconds(rng.random_range(0..span_seconds));
        let record = serde_json::json!({
            "title": title,
            "summary": format!("Summary of article {n}."),
            "body": body,
            "byline": format!("Desk {}", n % 50),
            "tags": article_tags,
            "published_at": published_at.format(&time::format_description::well_known::Rfc3339)?,
        });
        serde_json::to_writer(&mut writer, &record)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;
    Ok(())
}

enum Keys {
    Ids(Vec<String>),
    Slugs(Vec<String>),
    Tag(String, Option<String>),
}

#[allow(clippy::too_many_arguments)]
async fn reads(
    addr: &str,
    scenario: Scenario,
    concurrency: usize,
    connections: usize,
    duration: Duration,
    warmup: Duration,
    key_count: i64,
    page: usize,
) -> anyhow::Result<()> {
    let database_url = std::env::var("DATABASE_URL")?;
    let pool = sqlx::PgPool::connect(&database_url).await?;
    let keys = match scenario {
        Scenario::GetByIdUniform | Scenario::GetByIdZipf => Keys::Ids(
            sqlx::query_scalar::<_, uuid::Uuid>(
                "SELECT id FROM articles ORDER BY feed_position LIMIT $1",
            )
            .bind(key_count)
            .fetch_all(&pool)
            .await?
            .into_iter()
            .map(|id| id.to_string())
            .collect(),
        ),
        Scenario::GetBySlugUniform => Keys::Slugs(
            sqlx::query_scalar::<_, String>(
                "SELECT slug FROM articles ORDER BY feed_position LIMIT $1",
            )
            .bind(key_count)
            .fetch_all(&pool)
            .await?,
        ),
        Scenario::ListFirstPage | Scenario::ListDeep => {
            let tag: String =
                sqlx::query_scalar("SELECT slug FROM tags ORDER BY article_count DESC LIMIT 1")
                    .fetch_one(&pool)
                    .await?;
            let token = if matches!(scenario, Scenario::ListDeep) {
                Some(page_token(addr, &tag, page).await?)
            } else {
                None
            };
            Keys::Tag(tag, token)
        }
    };
    let keys = Arc::new(keys);
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        channels.push(
            Endpoint::from_shared(format!("http://{addr}"))?
                .connect()
                .await?,
        );
    }
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let client = ArticleServiceClient::new(channels[worker % connections].clone());
        workers.push(tokio::spawn(run_loop(
            client,
            keys.clone(),
            scenario,
            worker as u64,
            measuring.clone(),
            stop.clone(),
        )));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::SeqCst);
    let elapsed = started.elapsed();
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut errors = 0u64;
    for worker in workers {
        let (local, local_errors) = worker.await?;
        histogram.add(local)?;
        errors += local_errors;
    }
    let ms = |micros: u64| micros as f64 / 1000.0;
    println!(
        "{scenario:?}: {:.0} calls/s over {:.1} s ({} calls, {errors} errors), concurrency {concurrency}, connections {connections}; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        histogram.len() as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        histogram.len(),
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.9)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max()),
    );
    Ok(())
}

async fn run_loop(
    mut client: ArticleServiceClient<Channel>,
    keys: Arc<Keys>,
    scenario: Scenario,
    seed: u64,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> (Histogram<u64>, u64) {
    let mut histogram = Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!());
    let mut errors = 0;
    let mut rng = StdRng::seed_from_u64(seed);
    let zipf = match &*keys {
        Keys::Ids(ids) => Zipf::new(ids.len().max(1) as f64, 1.0).ok(),
        _ => None,
    };
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let result = match (&*keys, scenario) {
            (Keys::Ids(ids), Scenario::GetByIdZipf) => {
                let rank = zipf.as_ref().map_or(1.0, |zipf| zipf.sample(&mut rng)) as usize - 1;
                get(&mut client, Key::Id(ids[rank.min(ids.len() - 1)].clone())).await
            }
            (Keys::Ids(ids), _) => {
                get(
                    &mut client,
                    Key::Id(ids[rng.random_range(0..ids.len())].clone()),
                )
                .await
            }
            (Keys::Slugs(slugs), _) => {
                get(
                    &mut client,
                    Key::Slug(slugs[rng.random_range(0..slugs.len())].clone()),
                )
                .await
            }
            (Keys::Tag(tag, token), _) => client
                .list_articles_by_tag(ListArticlesByTagRequest {
                    tag: tag.clone(),
                    page_size: 20,
                    page_token: token.clone().unwrap_or_default(),
                })
                .await
                .map(|_| ()),
        };
        if measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
            match result {
                Ok(()) => {
                    let _ = histogram.record(started.elapsed().as_micros() as u64);
                }
                Err(_) => errors += 1,
            }
        }
    }
    (histogram, errors)
}

async fn get(client: &mut ArticleServiceClient<Channel>, key: Key) -> Result<(), tonic::Status> {
    client
        .get_article(GetArticleRequest { key: Some(key) })
        .await
        .map(|_| ())
}

/// The token of page `page` (1-based) of `tag`, by following the pages.
async fn page_token(addr: &str, tag: &str, page: usize) -> anyhow::Result<String> {
    let mut client = ArticleServiceClient::connect(format!("http://{addr}")).await?;
    let mut token = String::new();
    for _ in 1..page {
        token = client
            .list_articles_by_tag(ListArticlesByTagRequest {
                tag: tag.to_owned(),
                page_size: 20,
                page_token: token,
            })
            .await?
            .into_inner()
            .next_page_token;
        anyhow::ensure!(!token.is_empty(), "tag {tag} has fewer than {page} pages");
    }
    Ok(token)
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}

/// Peak and current resident set size of a process, in MiB.
fn rss_mib(pid: u32) -> Option<(f64, f64)> {
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

async fn fanout(
    addr: &str,
    subscribers: usize,
    connections: usize,
    publishes_per_second: f64,
    duration: Duration,
    server_pid: Option<u32>,
    token: &str,
) -> anyhow::Result<()> {
    use article_service::proto::{PublishArticleRequest, StreamNewArticlesRequest};
    use std::sync::Mutex;

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
        let mut stream = client
            .stream_new_articles(StreamNewArticlesRequest::default())
            .await?
            .into_inner();
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
                    message = stream.message() => message,
                    () = &mut stop => break,
                };
                match message {
                    Ok(Some(message)) => {
                        if let Some(article) = message.article {
                            let sent: u64 = article.summary.parse().unwrap_or(0);
                            latencies.push(unix_micros().saturating_sub(sent));
                        }
                    }
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

    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut publisher = ArticleServiceClient::new(channel);
    let interval = Duration::from_secs_f64(1.0 / publishes_per_second);
    let started = Instant::now();
    let run = unix_micros();
    let mut published = 0u64;
    let mut ticker = tokio::time::interval(interval);
    while started.elapsed() < duration {
        ticker.tick().await;
        let mut request = tonic::Request::new(PublishArticleRequest {
            slug: format!("fanout-{run}-{published}"),
            title: format!("Fan-out article {published}"),
            summary: unix_micros().to_string(),
            body: "x".repeat(4_000),
            byline: "loadgen".into(),
            tags: vec!["Loadgen".into()],
            published_at: None,
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        publisher.publish_article(request).await?;
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
        "fan-out: {subscribers} subscribers over {connections} connections, {published} publishes in {:.0} s: \
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
