//! gRPC-Web (`GRPC_WEB`, `GRPC_WEB_ALLOWED_ORIGINS`), spoken by a real
//! gRPC-Web client from npm (connect-es over HTTP/1.1, tests/grpc-web, built
//! by scripts/interop-clients.sh): a unary call, the live feed, CORS
//! preflights, and the server's layers treating such calls as gRPC calls.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

const ALLOWED_ORIGIN: &str = "https://live.example.com";

fn web_client() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    let bin = target.join("interop/bin/grpc-web-client");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/interop-clients.sh (make test does)",
        bin.display()
    );
    bin
}

/// One call of the gRPC-Web client; its stdout, trimmed.
fn web_call(server: &TestServer, args: &[&str]) -> String {
    let output = Command::new(web_client())
        .args(args)
        .args(["--addr", &server.endpoint()])
        .output()
        .expect("run the gRPC-Web client");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

async fn web_server(database: &str) -> TestServer {
    TestServer::start_with(
        ServerOptions::new(database)
            .env("GRPC_WEB", "true")
            .env("GRPC_WEB_ALLOWED_ORIGINS", ALLOWED_ORIGIN)
            // One unary call at a time: an open stream must not take it.
            .env("MAX_INFLIGHT_CALLS", "1"),
    )
    .await
}

#[tokio::test]
async fn a_grpc_web_client_reads_articles_with_the_contracts_codes() {
    let server = web_server(&fresh_database_with_sample().await).await;
    assert_eq!(
        web_call(&server, &["get", "--slug", SAMPLE_SLUG]),
        format!("{SAMPLE_SLUG} 1 {SAMPLE_TITLE}")
    );
    assert_eq!(
        web_call(&server, &["get", "--slug", "no-such-article"]),
        "error NotFound no such article"
    );
    // The call log sees the gRPC calls they became.
    let codes: Vec<Value> = server
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["rpc.method"] == "/newsroom.content.v1.ArticleService/GetArticle")
        .map(|line| line["grpc.code"].clone())
        .collect();
    assert_eq!(codes, [Value::from(0), Value::from(5)]);
}

#[tokio::test]
async fn a_grpc_web_client_follows_the_feed() {
    let server = web_server(&fresh_database_with_sample().await).await;
    let mut follower = Command::new(web_client())
        .args(["stream", "--count", "2", "--addr", &server.endpoint()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the gRPC-Web client");
    // "headers" once the subscription is in place.
    let stderr = follower.stderr.take().expect("piped stderr");
    let (headers_tx, headers_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = headers_tx.send(line);
        }
    });
    let first = headers_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the stream's headers");
    assert_eq!(first, "headers");

    // The open stream holds no unary permit: a call still gets through.
    assert_eq!(
        web_call(&server, &["get", "--slug", SAMPLE_SLUG]),
        format!("{SAMPLE_SLUG} 1 {SAMPLE_TITLE}")
    );
    let mut client = server.client().await;
    let mut slugs = Vec::new();
    for title in ["Live blog opens", "Live blog update"] {
        let stored = publish(&mut client, article(title, &["Live"])).await;
        slugs.push(stored.article.expect("the stored article").slug);
    }

    let output = tokio::task::spawn_blocking(move || follower.wait_with_output())
        .await
        .expect("join")
        .expect("the client's output");
    assert!(output.status.success());
    let printed: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(printed, slugs);
}

/// The response head of a CORS preflight for GetArticle from `origin`.
async fn preflight(server: &TestServer, origin: &str) -> String {
    let mut connection = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let request = format!(
        "OPTIONS /newsroom.content.v1.ArticleService/GetArticle HTTP/1.1\r\n\
         Host: {}\r\n\
         Origin: {origin}\r\n\
         Access-Control-Request-Method: POST\r\n\
         Access-Control-Request-Headers: content-type,x-grpc-web,x-user-agent\r\n\
         Connection: close\r\n\r\n",
        server.addr
    );
    connection
        .write_all(request.as_bytes())
        .await
        .expect("send the preflight");
    let mut response = String::new();
    tokio::time::timeout(WAIT, connection.read_to_string(&mut response))
        .await
        .expect("an answer in time")
        .expect("read the answer");
    response.to_ascii_lowercase()
}

#[tokio::test]
async fn cors_lets_only_the_allowed_origins_call() {
    let server = web_server(&fresh_database().await).await;

    let allowed = preflight(&server, ALLOWED_ORIGIN).await;
    assert!(allowed.starts_with("http/1.1 200"), "{allowed}");
    assert!(
        allowed.contains(&format!(
            "\r\naccess-control-allow-origin: {ALLOWED_ORIGIN}\r\n"
        )),
        "{allowed}"
    );
    assert!(
        allowed.contains("\r\naccess-control-allow-headers: content-type,x-grpc-web,x-user-agent,"),
        "{allowed}"
    );

    let other = preflight(&server, "https://elsewhere.example.org").await;
    assert!(other.starts_with("http/1.1 200"), "{other}");
    assert!(!other.contains("access-control-allow-origin"), "{other}");
}

#[tokio::test]
async fn grpc_web_is_off_by_default() {
    let server =
        TestServer::start_with(ServerOptions::new(&fresh_database_with_sample().await)).await;
    let answer = web_call(&server, &["get", "--slug", SAMPLE_SLUG]);
    assert!(answer.starts_with("error "), "{answer}");
    // Origins without GRPC_WEB: a mistake, refused at start.
    let output = Command::new(BIN)
        .arg("serve")
        .env("DATABASE_URL", &server.database_url)
        .env("GRPC_ADDR", "127.0.0.1:0")
        .env("METRICS_ADDR", "127.0.0.1:0")
        .env("GRPC_WEB_ALLOWED_ORIGINS", ALLOWED_ORIGIN)
        .env_remove("GRPC_WEB")
        .output()
        .expect("run article-service");
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains("GRPC_WEB_ALLOWED_ORIGINS is set but GRPC_WEB is off"),
        "{text}"
    );
}
