//! The benchmark harness's load generator: a deterministic corpus generator,
//! a closed-loop gRPC load driver, the stream fan-out driver and the gRPC
//! ceiling reference server. See BENCHMARKS.md for how each figure was made;
//! `scripts/bench.sh all` (`make bench`) runs all of it.
//!
//!   cargo run -p loadgen --release -- corpus --articles 100000 --out target/corpus.ndjson
//!   cargo run -p loadgen --release -- reads --addr 127.0.0.1:50051 --scenario get-by-id-uniform
//!   cargo run -p loadgen --release -- ceiling --addr 127.0.0.1:50092
//!
//! Keys for the read scenarios are sampled from the database (DATABASE_URL).

mod ceiling;
mod changes;
mod corpus;
mod fanout;
mod hostile;
mod reads;
mod soak;
mod stalled;

use std::time::Duration;

use clap::{Parser, Subcommand};

use reads::Scenario;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Closed-loop load on one scenario; prints throughput and latency.
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
        /// For publish.
        #[arg(long, env = "PUBLISH_TOKEN", default_value = "dev-publish-token")]
        token: String,
        /// Also print the result as a Markdown table row with this label.
        #[arg(long)]
        row: Option<String>,
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
        /// What reaches the streams: a new article on StreamNewArticles, or
        /// on StreamArticleChanges a new article, an embargo's release, or a
        /// withdrawal.
        #[arg(long, value_enum, default_value = "new")]
        event: fanout::Event,
        /// Body size of each published article.
        #[arg(long, default_value_t = 4_000)]
        article_bytes: usize,
    },
    /// One consumer rebuilding its copy: StreamArticleChanges from the
    /// beginning until `events` changes arrived; changes a second and the
    /// server's RSS meanwhile.
    Rebuild {
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        /// Changes to read (the log's length: SELECT count(*) FROM article_changes).
        #[arg(long)]
        events: u64,
        /// ARTICLE_VIEW_BASIC (no bodies).
        #[arg(long)]
        basic: bool,
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Mixed load for a long time (reads, publishes, N resuming streams):
    /// server RSS over time, errors by code, and feed loss.
    Soak {
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        #[arg(long, default_value_t = 1_000)]
        streams: usize,
        #[arg(long, default_value_t = 10)]
        stream_connections: usize,
        /// Closed-loop read loops (GetArticle, ListArticlesByTag, ListTags).
        #[arg(long, default_value_t = 4)]
        read_loops: usize,
        #[arg(long, default_value_t = 5.0)]
        publishes_per_second: f64,
        #[arg(long, default_value_t = 600)]
        seconds: u64,
        #[arg(long, default_value_t = 60)]
        report_seconds: u64,
        /// The server's PID, to read its RSS from /proc.
        #[arg(long)]
        server_pid: Option<u32>,
        #[arg(long, env = "PUBLISH_TOKEN", default_value = "dev-publish-token")]
        token: String,
    },
    /// Streams that never read (their HTTP/2 windows shut) while large
    /// articles are published; the server's RSS and a good subscriber's
    /// delivery latency.
    Stalled {
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        #[arg(long, default_value_t = 1_000)]
        streams: usize,
        #[arg(long, default_value_t = 10)]
        connections: usize,
        #[arg(long, default_value_t = 10.0)]
        publishes_per_second: f64,
        #[arg(long, default_value_t = 1024 * 1024)]
        article_bytes: usize,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        #[arg(long)]
        server_pid: Option<u32>,
        #[arg(long, env = "PUBLISH_TOKEN", default_value = "dev-publish-token")]
        token: String,
        /// Articles (of --article-bytes) published before the stalled
        /// streams open, which resume from a token before them.
        #[arg(long, default_value_t = 0)]
        behind: usize,
    },
    /// A misbehaving client at full size (headers without messages, health
    /// Watch streams, connections without the HTTP/2 preface) beside a good
    /// client calling GetArticle; what each got and the server's RSS and CPU.
    Hostile {
        #[arg(long, default_value = "127.0.0.1:50051")]
        addr: String,
        #[arg(long, value_enum)]
        attack: hostile::Attack,
        /// Streams (watch) or connections (silent).
        #[arg(long, default_value_t = 1_000)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// HEADERS frames a second (headers).
        #[arg(long, default_value_t = 1_000.0)]
        rate: f64,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long)]
        server_pid: Option<u32>,
        /// The article the good client reads.
        #[arg(long)]
        slug: String,
    },
    /// The gRPC ceiling: a bare tonic ArticleService answering GetArticle
    /// and ListArticlesByTag from memory, until interrupted.
    Ceiling {
        #[arg(long, default_value = "127.0.0.1:50092")]
        addr: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Corpus {
            articles,
            tags,
            seed,
            out,
        } => corpus::corpus(articles, tags, seed, &out),
        Command::Reads {
            addr,
            scenario,
            concurrency,
            connections,
            seconds,
            warmup_seconds,
            keys,
            page,
            token,
            row,
        } => {
            reads::reads(reads::Options {
                addr,
                scenario,
                concurrency,
                connections,
                duration: Duration::from_secs(seconds),
                warmup: Duration::from_secs(warmup_seconds),
                keys,
                page,
                token,
                label: row,
            })
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
            event,
            article_bytes,
        } => {
            fanout::fanout(
                &addr,
                subscribers,
                connections,
                publishes_per_second,
                Duration::from_secs(seconds),
                server_pid,
                &token,
                event,
                article_bytes,
            )
            .await
        }
        Command::Rebuild {
            addr,
            events,
            basic,
            server_pid,
        } => changes::rebuild(&addr, events, basic, server_pid).await,
        Command::Soak {
            addr,
            streams,
            stream_connections,
            read_loops,
            publishes_per_second,
            seconds,
            report_seconds,
            server_pid,
            token,
        } => {
            soak::soak(soak::Options {
                addr,
                streams,
                stream_connections,
                read_loops,
                publishes_per_second,
                duration: Duration::from_secs(seconds),
                report_every: Duration::from_secs(report_seconds.max(1)),
                server_pid,
                token,
            })
            .await
        }
        Command::Stalled {
            addr,
            streams,
            connections,
            publishes_per_second,
            article_bytes,
            seconds,
            server_pid,
            token,
            behind,
        } => {
            stalled::stalled(stalled::Options {
                addr,
                streams,
                connections,
                publishes_per_second,
                article_bytes,
                duration: Duration::from_secs(seconds),
                server_pid,
                token,
                behind,
            })
            .await
        }
        Command::Hostile {
            addr,
            attack,
            count,
            connections,
            rate,
            seconds,
            server_pid,
            slug,
        } => {
            hostile::hostile(hostile::Options {
                addr,
                attack,
                count,
                connections,
                rate,
                duration: Duration::from_secs(seconds),
                server_pid,
                slug,
            })
            .await
        }
        Command::Ceiling { addr } => ceiling::ceiling(&addr).await,
    }
}
