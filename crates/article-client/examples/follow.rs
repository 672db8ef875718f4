//! `follow`: prints the slug of every new article, one per line, resuming
//! from a token file; the interface the interop tests run for every client.
//!
//! ```text
//! follow --addr http://127.0.0.1:50051 --token-file PATH [--tag TAG]... [--max-backoff-ms 1000]
//! ```
//!
//! Each article: its slug and a newline on stdout (flushed), then its token is
//! stored in PATH. Reconnects forever on retryable statuses (logged to
//! stderr); exits 0 on SIGTERM or SIGINT, 1 on a status that is not retried
//! (an invalid token, say) or a failing token file.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use article_client::{ArticleClient, Error, FileTokenStore, Reconnect};
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(about = "Print the slug of every new article, resuming from a token file")]
struct Args {
    /// The service, e.g. http://127.0.0.1:50051.
    #[arg(long)]
    addr: String,
    /// Where the resume token is kept (created when missing).
    #[arg(long)]
    token_file: std::path::PathBuf,
    /// Only articles with one of these tags (slug or name); repeatable.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// The longest wait between reconnects.
    #[arg(long, default_value_t = 1000)]
    max_backoff_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let args = Args::parse();
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("follow: cannot install signal handlers");
        return ExitCode::FAILURE;
    };
    tokio::select! {
        result = follow(&args) => {
            // `follow` only returns with an error.
            let error = match result { Err(error) => error, Ok(never) => match never {} };
            eprintln!("follow: {error}");
            ExitCode::FAILURE
        }
        _ = terminate.recv() => ExitCode::SUCCESS,
        _ = interrupt.recv() => ExitCode::SUCCESS,
    }
}

async fn follow(args: &Args) -> Result<std::convert::Infallible, Error> {
    let client = ArticleClient::connect_lazy(args.addr.clone())?;
    let tags: Vec<&str> = args.tags.iter().map(String::as_str).collect();
    let reconnect = Reconnect {
        max: Duration::from_millis(args.max_backoff_ms),
        ..Reconnect::default()
    };
    client
        .follow_new(&tags, FileTokenStore::new(&args.token_file))
        .reconnect(reconnect)
        .run(|article| async move {
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{}", article.slug)?;
            stdout.flush()
        })
        .await
}
