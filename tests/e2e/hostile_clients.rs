//! End to end: clients that misbehave on purpose (one test per attack, its
//! doc comment's "Row" naming it as BENCHMARKS.md's full-size runs do), each
//! with a raw HTTP/2 or gRPC client doing exactly that to the real binary,
//! while a good client on another connection keeps calling. Each test
//! asserts the server's RSS stays under its budget plus a stated margin,
//! the good client is served within a stated latency, and the server does
//! not spin a core. Attacks and budgets are scaled down by configuration to
//! stay under 30 s; BENCHMARKS.md has the full-size runs.

mod bytes_budgets;
mod connections;
mod limits;
mod raw;
mod requests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::{GetArticleRequest, get_article_request::Key};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub const GET_ARTICLE: &str = "/newsroom.content.v1.ArticleService/GetArticle";

/// A good client on a connection of its own: GetArticle of one slug every
/// 100 ms, each answer timed.
pub struct GoodClient {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Vec<Result<Duration, tonic::Status>>>,
}

impl GoodClient {
    pub async fn start(server: &TestServer, slug: &str) -> Self {
        let client = server.client().await;
        Self::start_with(client, slug)
    }

    pub fn start_with(mut client: ArticleServiceClient<Channel>, slug: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let slug = slug.to_owned();
        let task = tokio::spawn(async move {
            let mut answers = Vec::new();
            while !stopped.load(Ordering::Acquire) {
                let started = Instant::now();
                let request = GetArticleRequest {
                    key: Some(Key::Slug(slug.clone())),
                    ..Default::default()
                };
                let answer = client.get_article(request).await;
                answers.push(answer.map(|_| started.elapsed()));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            answers
        });
        Self { stop, task }
    }

    /// Stops it; asserts at least `min_calls` calls, every one answered OK
    /// within `bound`.
    pub async fn finish(self, min_calls: usize, bound: Duration) {
        self.stop.store(true, Ordering::Release);
        let answers = self.task.await.expect("the good client");
        assert!(
            answers.len() >= min_calls,
            "only {} good calls",
            answers.len()
        );
        for answer in &answers {
            match answer {
                Ok(latency) => assert!(*latency < bound, "a good call took {latency:?}"),
                Err(status) => panic!("a good call failed: {status:?}"),
            }
        }
    }
}

/// The server's CPU use over a window, in cores.
pub struct CpuWindow {
    pid: u32,
    cpu: Duration,
    wall: Instant,
}

impl CpuWindow {
    pub fn start(server: &TestServer) -> Self {
        Self {
            pid: server.pid(),
            cpu: raw::cpu_time(server.pid()),
            wall: Instant::now(),
        }
    }

    /// Asserts the server used less than `cores` of CPU on average since
    /// the start: a loop that retries at once uses a whole one.
    pub fn assert_below(&self, cores: f64) {
        let used = raw::cpu_time(self.pid).saturating_sub(self.cpu);
        let share = used.as_secs_f64() / self.wall.elapsed().as_secs_f64();
        assert!(
            share < cores,
            "the server used {share:.2} cores ({used:?} over {:?})",
            self.wall.elapsed()
        );
    }
}

/// Samples the server's RSS every 100 ms until stopped; returns the peak,
/// in KiB.
pub struct RssPeak {
    stop: Arc<AtomicBool>,
    task: JoinHandle<u64>,
}

impl RssPeak {
    pub fn start(server: &TestServer) -> Self {
        let pid = server.pid();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            while !stopped.load(Ordering::Acquire) {
                peak = peak.max(rss_kib_of(pid));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak.max(rss_kib_of(pid))
        });
        Self { stop, task }
    }

    /// Asserts the peak stayed under `before_kib` + `budget_mib` +
    /// `margin_mib`.
    pub async fn assert_within(self, before_kib: u64, budget_mib: u64, margin_mib: u64) {
        self.stop.store(true, Ordering::Release);
        let peak = self.task.await.expect("the RSS sampler");
        let bound = before_kib + (budget_mib + margin_mib) * 1024;
        assert!(
            peak < bound,
            "RSS peaked at {} MiB: over {} MiB before + {budget_mib} MiB budget + {margin_mib} MiB margin",
            peak / 1024,
            before_kib / 1024
        );
    }
}

fn rss_kib_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Publishes an article and reads it until it is in the cache.
pub async fn cached_article(server: &TestServer, title: &str, body_bytes: usize) -> String {
    let mut client = server.client().await;
    let mut request = article(title, &["Hostile"]);
    if body_bytes > 0 {
        request.body = "word ".repeat(body_bytes / 5);
    }
    let slug = publish(&mut client, request)
        .await
        .article
        .expect("the article")
        .slug;
    // A read fills the cache unless a change was heard meanwhile (the
    // publish's own notification, when the listener hears it late on a
    // busy machine): read until a read is a hit, so that the attacks below
    // meet a cached article, not a crowd of reads of the database.
    let hits = "article_cache_lookups_total{kind=\"article\",result=\"hit\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = server.metric(hits).await.unwrap_or(0.0);
        get_by_slug(&mut client, &slug).await.expect("read it");
        if server.metric(hits).await.unwrap_or(0.0) > before {
            return slug;
        }
        assert!(Instant::now() < deadline, "{slug} not cached within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
