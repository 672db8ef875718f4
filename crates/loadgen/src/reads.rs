//! `reads`: closed-loop load on one scenario (reads, or PublishArticle):
//! N loops over M HTTP/2 connections, warm-up first, then throughput and
//! latency percentiles.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::{
    GetArticleRequest, ListArticlesByTagRequest, PublishArticleRequest, get_article_request::Key,
};
use clap::ValueEnum;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::corpus::{WORDS, tag_name};

#[derive(Clone, Copy, ValueEnum, Debug)]
pub enum Scenario {
    GetByIdUniform,
    GetBySlugUniform,
    GetByIdZipf,
    ListFirstPage,
    ListDeep,
    /// PublishArticle of new articles (unique slugs, ~4 KB bodies).
    Publish,
}

pub struct Options {
    pub addr: String,
    pub scenario: Scenario,
    pub concurrency: usize,
    pub connections: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// How many keys to sample from the database (DATABASE_URL).
    pub keys: i64,
    /// For list-deep: which page.
    pub page: usize,
    /// For publish.
    pub token: String,
    /// When given, a Markdown table row with this label follows the summary.
    pub label: Option<String>,
}

enum Keys {
    Ids(Vec<String>),
    Slugs(Vec<String>),
    Tag(String, Option<String>),
    Publish(Publisher),
}

/// What every publish loop shares: the run's slug prefix, the credentials
/// and one ~4 KB body.
struct Publisher {
    run: u64,
    authorization: MetadataValue<tonic::metadata::Ascii>,
    body: String,
}

pub async fn reads(options: Options) -> anyhow::Result<()> {
    let scenario = options.scenario;
    let keys = Arc::new(keys(&options).await?);
    let mut channels = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        channels.push(
            Endpoint::from_shared(format!("http://{}", options.addr))?
                .connect()
                .await?,
        );
    }
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let errors_shown = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::with_capacity(options.concurrency);
    for worker in 0..options.concurrency {
        let client = ArticleServiceClient::new(channels[worker % options.connections].clone())
            .max_decoding_message_size(16 << 20);
        workers.push(tokio::spawn(run_loop(
            client,
            keys.clone(),
            scenario,
            worker as u64,
            measuring.clone(),
            stop.clone(),
            errors_shown.clone(),
        )));
    }
    tokio::time::sleep(options.warmup).await;
    measuring.store(true, Ordering::SeqCst);
    let started = Instant::now();
    tokio::time::sleep(options.duration).await;
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
    let rate = histogram.len() as f64 / elapsed.as_secs_f64();
    let (p50, p90, p99, max) = (
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.9)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.max()),
    );
    println!(
        "{scenario:?}: {rate:.0} calls/s over {:.1} s ({} calls, {errors} errors), concurrency {}, connections {}; latency ms p50 {p50:.2} p90 {p90:.2} p99 {p99:.2} max {max:.2}",
        elapsed.as_secs_f64(),
        histogram.len(),
        options.concurrency,
        options.connections,
    );
    if let Some(label) = &options.label {
        println!(
            "| {label} | {} / {} | {rate:.0} | {p50:.2} | {p90:.2} | {p99:.2} | {max:.1} | {errors} |",
            options.concurrency, options.connections
        );
    }
    Ok(())
}

/// The keys a scenario draws from: sampled from the database for reads
/// (a server that ignores them, like the ceiling, is measured the same way).
async fn keys(options: &Options) -> anyhow::Result<Keys> {
    if let Scenario::Publish = options.scenario {
        return Ok(Keys::Publish(Publisher {
            run: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs(),
            authorization: format!("Bearer {}", options.token).parse()?,
            body: body(4_000),
        }));
    }
    let database_url = std::env::var("DATABASE_URL")
        .map_err(|_| anyhow::anyhow!("DATABASE_URL: the database to sample keys from"))?;
    let pool = sqlx::PgPool::connect(&database_url).await?;
    let keys = match options.scenario {
        Scenario::GetByIdUniform | Scenario::GetByIdZipf => Keys::Ids(
            sqlx::query_scalar::<_, uuid::Uuid>(
                "SELECT id FROM articles ORDER BY feed_position LIMIT $1",
            )
            .bind(options.keys)
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
            .bind(options.keys)
            .fetch_all(&pool)
            .await?,
        ),
        Scenario::Publish => anyhow::bail!("publish takes no keys"),
        Scenario::ListFirstPage | Scenario::ListDeep => {
            let tag: String =
                sqlx::query_scalar("SELECT slug FROM tags ORDER BY article_count DESC LIMIT 1")
                    .fetch_one(&pool)
                    .await?;
            let token = if matches!(options.scenario, Scenario::ListDeep) {
                Some(page_token(&options.addr, &tag, options.page).await?)
            } else {
                None
            };
            Keys::Tag(tag, token)
        }
    };
    pool.close().await;
    anyhow::ensure!(
        !matches!(&keys, Keys::Ids(keys) | Keys::Slugs(keys) if keys.is_empty()),
        "no articles in the database to take keys from"
    );
    Ok(keys)
}

/// Prose of about `len` bytes from the corpus's words.
pub fn body(len: usize) -> String {
    let mut body = String::with_capacity(len + 16);
    let mut n = 0;
    while body.len() < len {
        if !body.is_empty() {
            body.push_str(if n % 10 == 9 { ".\n\n" } else { " " });
        }
        body.push_str(WORDS[(n * 7 + n / 3) % WORDS.len()]);
        n += 1;
    }
    body.push('.');
    body
}

async fn run_loop(
    mut client: ArticleServiceClient<Channel>,
    keys: Arc<Keys>,
    scenario: Scenario,
    seed: u64,
    measuring: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    errors_shown: Arc<AtomicU64>,
) -> (Histogram<u64>, u64) {
    let mut histogram = Histogram::<u64>::new(3).unwrap_or_else(|_| unreachable!());
    let mut errors = 0;
    let mut rng = StdRng::seed_from_u64(seed);
    let zipf = match &*keys {
        Keys::Ids(ids) => Zipf::new(ids.len().max(1) as f64, 1.0).ok(),
        _ => None,
    };
    let mut calls = 0u64;
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
                    ..Default::default()
                })
                .await
                .map(|_| ()),
            (Keys::Publish(publisher), _) => publish(&mut client, publisher, seed, calls).await,
        };
        calls += 1;
        if measuring.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
            match result {
                Ok(()) => {
                    let _ = histogram.record(started.elapsed().as_micros() as u64);
                }
                Err(status) => {
                    errors += 1;
                    if errors_shown.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("{scenario:?}: {status}");
                    }
                }
            }
        }
    }
    (histogram, errors)
}

async fn get(client: &mut ArticleServiceClient<Channel>, key: Key) -> Result<(), tonic::Status> {
    client
        .get_article(GetArticleRequest {
            key: Some(key),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

/// A new article: the slug is unique to the run, the loop and the call.
async fn publish(
    client: &mut ArticleServiceClient<Channel>,
    publisher: &Publisher,
    worker: u64,
    call: u64,
) -> Result<(), tonic::Status> {
    let run = publisher.run;
    let mut request = tonic::Request::new(PublishArticleRequest {
        slug: format!("bench-{run}-{worker}-{call}"),
        title: format!("Benchmark article {call} of loop {worker}, run {run}"),
        summary: format!("Published by loadgen run {run}."),
        body: publisher.body.clone(),
        byline: "Loadgen Desk".into(),
        tags: vec![tag_name(0), tag_name(1 + (call % 40) as usize)],
        published_at: None,
    });
    request
        .metadata_mut()
        .insert("authorization", publisher.authorization.clone());
    client.publish_article(request).await.map(|_| ())
}

/// The token of page `page` (1-based) of `tag`, by following the pages.
async fn page_token(addr: &str, tag: &str, page: usize) -> anyhow::Result<String> {
    let mut client = ArticleServiceClient::connect(format!("http://{addr}"))
        .await?
        .max_decoding_message_size(16 << 20);
    let mut token = String::new();
    for _ in 1..page {
        token = client
            .list_articles_by_tag(ListArticlesByTagRequest {
                tag: tag.to_owned(),
                page_size: 20,
                page_token: token,
                ..Default::default()
            })
            .await?
            .into_inner()
            .next_page_token;
        anyhow::ensure!(!token.is_empty(), "tag {tag} has fewer than {page} pages");
    }
    Ok(token)
}
