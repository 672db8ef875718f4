//! `soak`: mixed load for a long time: read loops, a steady publisher and N
//! streams that resume from their last token whenever the server ends them
//! (MAX_CONNECTION_AGE does, every few minutes). Prints the server's RSS over
//! time, every error by status code, and the feed's loss: each stream must
//! receive every article acknowledged during the run exactly once.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::{
    GetArticleRequest, ListArticlesByTagRequest, ListTagsRequest, PublishArticleRequest,
    StreamNewArticlesRequest, get_article_request::Key,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

pub struct Options {
    pub addr: String,
    pub streams: usize,
    pub stream_connections: usize,
    pub read_loops: usize,
    pub publishes_per_second: f64,
    pub duration: Duration,
    pub report_every: Duration,
    pub server_pid: Option<u32>,
    pub token: String,
}

/// Errors by where and which status code.
type ErrorCounts = Arc<Mutex<BTreeMap<String, u64>>>;

fn count_error(errors: &ErrorCounts, what: &str, status: &tonic::Status) {
    if let Ok(mut errors) = errors.lock() {
        *errors
            .entry(format!("{what} {:?}", status.code()))
            .or_default() += 1;
    }
}

/// What one stream received of this run's articles.
#[derive(Default)]
struct Received {
    slugs: HashSet<String>,
    duplicates: u64,
    resumes: u64,
}

pub async fn soak(options: Options) -> anyhow::Result<()> {
    let channel = |_: usize| {
        Endpoint::from_shared(format!("http://{}", options.addr)).map(|endpoint| {
            endpoint
                .initial_connection_window_size(64 << 20)
                .initial_stream_window_size(1 << 20)
                .connect_lazy()
        })
    };
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let prefix = format!("soak-{run}-");
    let stop = CancellationToken::new();
    let errors: ErrorCounts = Arc::default();

    // Streams first, so that each is open before the first publish.
    let mut stream_tasks = Vec::with_capacity(options.streams);
    let stream_channels: Vec<Channel> = (0..options.stream_connections.max(1))
        .map(channel)
        .collect::<Result<_, _>>()?;
    let (opened_tx, mut opened_rx) = tokio::sync::mpsc::channel::<()>(options.streams.max(1));
    for n in 0..options.streams {
        let client = ArticleServiceClient::new(stream_channels[n % stream_channels.len()].clone())
            .max_decoding_message_size(8 << 20);
        stream_tasks.push(tokio::spawn(follow(
            client,
            prefix.clone(),
            stop.clone(),
            errors.clone(),
            opened_tx.clone(),
        )));
    }
    drop(opened_tx);
    for _ in 0..options.streams {
        opened_rx.recv().await;
    }
    println!("soak: {} streams open", options.streams);

    let read_channel = channel(0)?;
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut load_tasks = Vec::new();
    load_tasks.push(tokio::spawn(publish(
        ArticleServiceClient::new(read_channel.clone()),
        options.publishes_per_second,
        prefix.clone(),
        options.token.clone(),
        acknowledged.clone(),
        stop.clone(),
        errors.clone(),
    )));
    let reads_done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    for n in 0..options.read_loops {
        load_tasks.push(tokio::spawn(read(
            ArticleServiceClient::new(read_channel.clone()),
            n as u64,
            acknowledged.clone(),
            reads_done.clone(),
            stop.clone(),
            errors.clone(),
        )));
    }

    let started = Instant::now();
    println!("| minute | server RSS MiB | acknowledged publishes | reads | errors |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    while started.elapsed() < options.duration {
        tokio::time::sleep(
            options
                .report_every
                .min(options.duration - started.elapsed()),
        )
        .await;
        let rss = options
            .server_pid
            .and_then(crate::fanout::rss_mib)
            .map_or_else(|| "-".to_owned(), |(_, now)| format!("{now:.0}"));
        let published = acknowledged.lock().map_or(0, |slugs| slugs.len());
        let error_count: u64 = errors.lock().map_or(0, |errors| errors.values().sum());
        println!(
            "| {:.1} | {rss} | {published} | {} | {error_count} |",
            started.elapsed().as_secs_f64() / 60.0,
            reads_done.load(std::sync::atomic::Ordering::Relaxed),
        );
    }

    // Stop the load, then give the streams time to receive the last articles.
    for task in load_tasks {
        task.abort();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.cancel();
    let acknowledged: HashSet<String> = acknowledged
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
        .cloned()
        .collect();
    let (mut missing, mut duplicates, mut resumes, mut unacknowledged) = (0u64, 0u64, 0u64, 0u64);
    for task in stream_tasks {
        let received = task.await?;
        missing += acknowledged.difference(&received.slugs).count() as u64;
        unacknowledged += received.slugs.difference(&acknowledged).count() as u64;
        duplicates += received.duplicates;
        resumes += received.resumes;
    }
    let expected = acknowledged.len() as u64 * options.streams as u64;
    println!(
        "soak: {:.0} s, {} acknowledged publishes, {} reads; feed: {expected} deliveries expected, \
         {missing} missing, {duplicates} duplicates, {unacknowledged} of unacknowledged publishes, \
         {resumes} stream resumes",
        started.elapsed().as_secs_f64(),
        acknowledged.len(),
        reads_done.load(std::sync::atomic::Ordering::Relaxed),
    );
    let errors = errors.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    if errors.is_empty() {
        println!("errors: none");
    }
    for (what, count) in errors.iter() {
        println!("errors: {what}: {count}");
    }
    if let Some((peak, now)) = options.server_pid.and_then(crate::fanout::rss_mib) {
        println!("server RSS: peak {peak:.0} MiB, now {now:.0} MiB");
    }
    Ok(())
}

/// One consumer: follows the feed, resuming from its last token whenever the
/// stream ends, until `stop`.
async fn follow(
    mut client: ArticleServiceClient<Channel>,
    prefix: String,
    stop: CancellationToken,
    errors: ErrorCounts,
    opened: tokio::sync::mpsc::Sender<()>,
) -> Received {
    let mut received = Received::default();
    let mut resume_token = String::new();
    let mut first = true;
    while !stop.is_cancelled() {
        let request = StreamNewArticlesRequest {
            tags: Vec::new(),
            resume_token: resume_token.clone(),
            ..Default::default()
        };
        let mut stream = match client.stream_new_articles(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                count_error(&errors, "StreamNewArticles open", &status);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        if std::mem::take(&mut first) {
            let _ = opened.send(()).await;
        }
        loop {
            let message = tokio::select! {
                () = stop.cancelled() => return received,
                message = stream.message() => message,
            };
            match message {
                Ok(Some(message)) => {
                    resume_token = message.resume_token;
                    if let Some(article) = message.article
                        && article.slug.starts_with(&prefix)
                        && !received.slugs.insert(article.slug)
                    {
                        received.duplicates += 1;
                    }
                }
                Ok(None) => break,
                Err(status) => {
                    // UNAVAILABLE at the connection's age is the expected end.
                    if status.code() != tonic::Code::Unavailable {
                        count_error(&errors, "StreamNewArticles", &status);
                    }
                    break;
                }
            }
        }
        received.resumes += 1;
    }
    received
}

async fn publish(
    mut client: ArticleServiceClient<Channel>,
    per_second: f64,
    prefix: String,
    token: String,
    acknowledged: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
    errors: ErrorCounts,
) {
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
    let body = "Soak paragraph of a realistic length. ".repeat(100);
    for n in 0u64.. {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let slug = format!("{prefix}{n}");
        let mut request = tonic::Request::new(PublishArticleRequest {
            slug: slug.clone(),
            title: format!("Soak article {n}"),
            summary: String::new(),
            body: body.clone(),
            byline: "soak".into(),
            tags: vec!["Soak".into(), format!("Soak {}", n % 10)],
            published_at: None,
        });
        if let Ok(value) = format!("Bearer {token}").parse() {
            request.metadata_mut().insert("authorization", value);
        }
        match client.publish_article(request).await {
            Ok(_) => {
                if let Ok(mut acknowledged) = acknowledged.lock() {
                    acknowledged.push(slug);
                }
            }
            Err(status) => count_error(&errors, "PublishArticle", &status),
        }
    }
}

/// Reads what the run published: by slug, the tag's first page, the tags.
async fn read(
    mut client: ArticleServiceClient<Channel>,
    seed: u64,
    acknowledged: Arc<Mutex<Vec<String>>>,
    done: Arc<std::sync::atomic::AtomicU64>,
    stop: CancellationToken,
    errors: ErrorCounts,
) {
    for n in seed.. {
        if stop.is_cancelled() {
            return;
        }
        let slug = acknowledged.lock().ok().and_then(|slugs| {
            (!slugs.is_empty()).then(|| slugs[(n * 7919) as usize % slugs.len()].clone())
        });
        let result = match (n % 10, slug) {
            (0, _) => client
                .list_tags(ListTagsRequest::default())
                .await
                .map(|_| ())
                .map_err(|status| ("ListTags", status)),
            (1..=3, _) | (_, None) => client
                .list_articles_by_tag(ListArticlesByTagRequest {
                    tag: "Soak".into(),
                    page_size: 20,
                    page_token: String::new(),
                    ..Default::default()
                })
                .await
                .map(|_| ())
                .map_err(|status| ("ListArticlesByTag", status)),
            (_, Some(slug)) => client
                .get_article(GetArticleRequest {
                    key: Some(Key::Slug(slug)),
                    ..Default::default()
                })
                .await
                .map(|_| ())
                .map_err(|status| ("GetArticle", status)),
        };
        match result {
            Ok(()) => {
                done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Err((what, status)) => count_error(&errors, what, &status),
        }
    }
}
