//! `changes`: a consumer rebuilding its copy with StreamArticleChanges
//! `from_beginning`: events a second, and the server's memory meanwhile.
//!
//! `fanout --event ...` (fanout.rs) measures how fast one change reaches
//! thousands of open streams; this measures one stream reading the whole log.

use std::time::{Duration, Instant};

use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::{ArticleView, StreamArticleChangesRequest};
use tonic::transport::Endpoint;

use crate::fanout::rss_mib;

pub async fn rebuild(
    addr: &str,
    events: u64,
    basic: bool,
    server_pid: Option<u32>,
) -> anyhow::Result<()> {
    // A consumer built for throughput: large windows, so that HTTP/2 does
    // not cut messages into small frames.
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .initial_connection_window_size(16 << 20)
        .initial_stream_window_size(16 << 20)
        .connect()
        .await?;
    let mut client = ArticleServiceClient::new(channel).max_decoding_message_size(8 << 20);
    let view = if basic {
        ArticleView::Basic
    } else {
        ArticleView::Full
    };
    let started = Instant::now();
    let mut stream = client
        .stream_article_changes(StreamArticleChangesRequest {
            from_beginning: true,
            view: view as i32,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut received = 0u64;
    let mut bytes = 0u64;
    let mut last_revision: std::collections::HashMap<String, i64> =
        std::collections::HashMap::new();
    let mut out_of_order = 0u64;
    let mut rss_samples: Vec<f64> = Vec::new();
    let mut next_sample = Instant::now();
    while received < events {
        let Some(message) = stream.message().await? else {
            anyhow::bail!("the stream ended with OK after {received} events");
        };
        if let Some(change) = message.change {
            received += 1;
            if let Some(article) = change.article {
                bytes += (article.body.len() + article.title.len()) as u64;
                let previous = last_revision.insert(article.id, article.revision);
                if previous.is_some_and(|previous| previous >= article.revision) {
                    out_of_order += 1;
                }
            }
        }
        if Instant::now() >= next_sample {
            next_sample += Duration::from_secs(1);
            if let Some((_, now)) = server_pid.and_then(rss_mib) {
                rss_samples.push(now);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let (min, max) = rss_samples
        .iter()
        .fold((f64::MAX, 0.0f64), |(min, max), rss| {
            (min.min(*rss), max.max(*rss))
        });
    println!(
        "rebuild ({view:?}): {received} changes of {} articles in {elapsed:.1} s = {:.0} changes/s \
         ({:.1} MB/s of title+body), revisions out of order: {out_of_order}",
        last_revision.len(),
        received as f64 / elapsed,
        bytes as f64 / elapsed / 1e6,
    );
    if !rss_samples.is_empty() {
        println!(
            "server RSS while it streamed, sampled each second: min {min:.0} MiB, max {max:.0} MiB \
             ({} samples)",
            rss_samples.len()
        );
    }
    Ok(())
}
