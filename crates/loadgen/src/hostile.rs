//! `hostile`: the misbehaving clients at full size, beside a good
//! client calling GetArticle every 100-200 ms on a connection of its own.
//!
//! - `headers`: one connection sends `rate` HEADERS frames a second for
//!   unary GetArticle calls and never their message.
//! - `watch`: `count` health Watch streams over `connections` connections,
//!   held open.
//! - `silent`: `count` TCP connections that never send the HTTP/2 preface.
//!
//! Prints one JSON object: what the misbehaving side got, the good client's
//! latency and failures, and the server's RSS and CPU over the run.

use std::time::{Duration, Instant};

use article_service::proto::article_service_client::ArticleServiceClient;
use article_service::proto::{GetArticleRequest, get_article_request::Key};
use hdrhistogram::Histogram;
use tokio::io::AsyncReadExt;
use tonic::transport::Endpoint;

use crate::fanout::rss_mib;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Attack {
    Headers,
    Watch,
    Silent,
}

pub struct Options {
    pub addr: String,
    pub attack: Attack,
    pub count: usize,
    pub connections: usize,
    pub rate: f64,
    pub duration: Duration,
    pub server_pid: Option<u32>,
    pub slug: String,
}

fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
            let ticks: f64 =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

pub async fn hostile(options: Options) -> anyhow::Result<()> {
    let started = Instant::now();
    let cpu_before = options.server_pid.map_or(0.0, cpu_seconds);
    let good = tokio::spawn(good_client(
        options.addr.clone(),
        options.slug.clone(),
        options.duration,
    ));
    let (attacked, outcome) = match options.attack {
        Attack::Headers => headers(&options).await?,
        Attack::Watch => watch(&options).await?,
        Attack::Silent => silent(&options).await?,
    };
    let (good_calls, good_errors, histogram) = good.await??;
    let cpu = options.server_pid.map_or(0.0, cpu_seconds) - cpu_before;
    let (peak, rss) = options.server_pid.and_then(rss_mib).unwrap_or((0.0, 0.0));
    println!(
        "{{\"attack\":\"{:?}\",\"attacked\":{attacked},\"outcome\":{outcome},\"good_calls\":{good_calls},\"good_errors\":{good_errors},\"good_p50_ms\":{:.1},\"good_p99_ms\":{:.1},\"good_max_ms\":{:.1},\"server_cpu_share\":{:.2},\"rss_mib\":{rss:.1},\"peak_rss_mib\":{peak:.1}}}",
        options.attack,
        histogram.value_at_quantile(0.5) as f64 / 1000.0,
        histogram.value_at_quantile(0.99) as f64 / 1000.0,
        histogram.max() as f64 / 1000.0,
        cpu / started.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// GetArticle every 100-200 ms for `duration`: calls, failures, latency (us).
async fn good_client(
    addr: String,
    slug: String,
    duration: Duration,
) -> anyhow::Result<(u64, u64, Histogram<u64>)> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = ArticleServiceClient::new(channel).max_decoding_message_size(8 << 20);
    let mut histogram = Histogram::<u64>::new(3)?;
    let (mut calls, mut errors) = (0, 0);
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let sent = Instant::now();
        let mut request = tonic::Request::new(GetArticleRequest {
            key: Some(Key::Slug(slug.clone())),
            ..Default::default()
        });
        request.set_timeout(Duration::from_secs(5));
        if client.get_article(request).await.is_err() {
            errors += 1;
        }
        calls += 1;
        histogram.record(sent.elapsed().as_micros().max(1) as u64)?;
        let pause = 100 + rand::random::<u64>() % 100;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    Ok((calls, errors, histogram))
}

/// HEADERS without messages on one connection; the codes they end with.
async fn headers(options: &Options) -> anyhow::Result<(u64, String)> {
    let tcp = tokio::net::TcpStream::connect(&options.addr).await?;
    let (mut send, connection) = h2::client::handshake(tcp).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate.max(1.0)));
    let end = Instant::now() + options.duration;
    let mut codes = std::collections::BTreeMap::<String, u64>::new();
    let mut pending = Vec::new();
    let mut sent = 0;
    while Instant::now() < end {
        ticker.tick().await;
        let request = http::Request::builder()
            .method("POST")
            .uri(format!(
                "http://{}/newsroom.content.v1.ArticleService/GetArticle",
                options.addr
            ))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())?;
        match send.clone().ready().await {
            Ok(mut ready) => match ready.send_request(request, false) {
                Ok((response, stream)) => {
                    sent += 1;
                    pending.push(tokio::spawn(async move {
                        let _stream = stream; // never a message
                        match response.await {
                            Ok(response) => {
                                let code = response
                                    .headers()
                                    .get("grpc-status")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned);
                                match code {
                                    Some(code) => code,
                                    None => {
                                        let mut body = response.into_body();
                                        while body.data().await.is_some() {}
                                        body.trailers()
                                            .await
                                            .ok()
                                            .flatten()
                                            .and_then(|t| {
                                                t.get("grpc-status")
                                                    .and_then(|v| v.to_str().ok())
                                                    .map(str::to_owned)
                                            })
                                            .unwrap_or_else(|| "none".into())
                                    }
                                }
                            }
                            Err(error) => format!("reset: {error}"),
                        }
                    }));
                }
                Err(error) => *codes.entry(format!("refused: {error}")).or_default() += 1,
            },
            Err(error) => {
                *codes.entry(format!("connection: {error}")).or_default() += 1;
                break;
            }
        }
        send = send.clone();
    }
    for call in pending {
        if let Ok(Ok(code)) = tokio::time::timeout(Duration::from_secs(10), call).await {
            *codes.entry(code).or_default() += 1;
        }
    }
    Ok((sent, serde_json::to_string(&codes)?))
}

/// Health Watch streams held open; how many opened and how the rest ended.
async fn watch(options: &Options) -> anyhow::Result<(u64, String)> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let endpoint = Endpoint::from_shared(format!("http://{}", options.addr))?;
    let mut channels = Vec::new();
    for _ in 0..options.connections.max(1) {
        channels.push(endpoint.connect().await?);
    }
    let mut held = Vec::new();
    let mut codes = std::collections::BTreeMap::<String, u64>::new();
    for n in 0..options.count {
        let mut client = HealthClient::new(channels[n % channels.len()].clone());
        match client
            .watch(HealthCheckRequest {
                service: String::new(),
            })
            .await
        {
            Ok(stream) => {
                *codes.entry("opened".into()).or_default() += 1;
                held.push(stream.into_inner());
            }
            Err(status) => *codes.entry(format!("{:?}", status.code())).or_default() += 1,
        }
    }
    tokio::time::sleep(options.duration).await;
    Ok((options.count as u64, serde_json::to_string(&codes)?))
}

/// TCP connections that never send the preface; how many the server closed
/// by the end.
async fn silent(options: &Options) -> anyhow::Result<(u64, String)> {
    let mut sockets = Vec::new();
    let mut refused = 0u64;
    for _ in 0..options.count {
        match tokio::net::TcpStream::connect(&options.addr).await {
            Ok(socket) => sockets.push(socket),
            Err(_) => refused += 1,
        }
    }
    tokio::time::sleep(options.duration).await;
    let mut closed = 0u64;
    for socket in &mut sockets {
        // What the server sent (its SETTINGS), then the end it gave, if any.
        let mut buf = [0u8; 256];
        loop {
            match tokio::time::timeout(Duration::from_millis(5), socket.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    closed += 1;
                    break;
                }
                Ok(Ok(_)) => continue,
                Err(_) => break,
            }
        }
    }
    Ok((
        options.count as u64,
        format!(
            "{{\"connected\":{},\"refused\":{refused},\"closed_by_server\":{closed}}}",
            sockets.len()
        ),
    ))
}
