//! The consumers' interoperability test: each example client
//! (Rust, Go, Python, TypeScript; built by scripts/interop-clients.sh and
//! `cargo build -p article-client --examples`) follows StreamNewArticles
//! through one stable address (a proxy, like a Kubernetes Service) while
//! articles are published and the replica behind it is stopped with SIGTERM,
//! restarted, SIGKILLed, and replaced by another. Each must print every
//! article exactly once, in publish order, and exit 0 on SIGTERM.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use article_service::proto::StreamNewArticlesResponse;
use article_service::proto::article_service_client::ArticleServiceClient;
use tonic::transport::Channel;

use crate::common::service_proxy::ServiceProxy;
use crate::common::{
    Read as StreamRead, ServerOptions, TestServer, WAIT, article, eventually, fresh_database,
    open_stream, publish, read_one,
};

/// Articles published per run, in five groups around the four disruptions.
const GROUPS: [usize; 5] = [8, 6, 6, 5, 5];
/// How long a client may take to print what was published, through a
/// restart and its backoff (at most MAX_BACKOFF_MS between attempts).
const DELIVERED_WITHIN: Duration = Duration::from_secs(30);
const MAX_BACKOFF_MS: &str = "500";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_prints_every_article_once_in_order() {
    let bin = target_dir().join("debug/examples/follow");
    if !bin.exists() && std::env::var_os("CI").is_none() {
        eprintln!(
            "SKIPPED interop::rust: {} is absent (cargo build -p article-client --examples builds it); \
             in CI (CI set) this fails instead",
            bin.display()
        );
        return;
    }
    assert!(
        bin.exists(),
        "{} is missing: cargo build -p article-client --examples",
        bin.display()
    );
    follow_through_restarts("rust", bin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_go_client_prints_every_article_once_in_order() {
    follow_through_restarts("go", interop_client("follow-go")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_prints_every_article_once_in_order() {
    follow_through_restarts("python", interop_client("follow-python")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_client_prints_every_article_once_in_order() {
    follow_through_restarts("typescript", interop_client("follow-typescript")).await;
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    )
}

/// A client that scripts/interop-clients.sh built (`make test` runs it).
fn interop_client(name: &str) -> PathBuf {
    let bin = target_dir().join("interop/bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run scripts/interop-clients.sh (make test does)",
        bin.display()
    );
    bin
}

async fn follow_through_restarts(name: &str, bin: PathBuf) {
    let database = fresh_database().await;
    // Publishes go to a replica of their own, so that articles are also
    // published while the client's replica is down.
    let publisher = TestServer::start_with(ServerOptions::new(&database)).await;
    let mut publishing = publisher.client().await;
    let mut replica = TestServer::start_with(ServerOptions::new(&database)).await;
    let proxy = ServiceProxy::start(replica.addr).await;

    // The client starts from a stored token, so that it misses nothing
    // whenever its first connection is made.
    let dir = std::env::temp_dir().join(format!("interop-{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a directory for the token file");
    let token_file = dir.join("feed.token");
    let start_token = token_after_a_first_article(&mut publishing).await;
    std::fs::write(&token_file, &start_token).expect("write the token file");

    let mut client = FollowProcess::start(&bin, &format!("http://{}", proxy.addr), &token_file);
    let mut expected = Vec::new();
    let mut groups = GROUPS.iter();
    let mut next_group = async |expected: &mut Vec<String>| {
        let count = *groups.next().expect("a group left");
        for _ in 0..count {
            let title = format!("Interop {name} {:02}", expected.len() + 1);
            let stored = publish(&mut publishing, article(&title, &["Interop"])).await;
            expected.push(stored.article.expect("the stored article").slug);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    next_group(&mut expected).await;
    client.wait_for(expected.len()).await;

    // SIGTERM: the stream ends with UNAVAILABLE; articles go on meanwhile.
    assert!(
        replica.terminate(Duration::from_secs(20)).is_some(),
        "replica A exits on SIGTERM"
    );
    next_group(&mut expected).await;
    replica = TestServer::start_with(ServerOptions::new(&database)).await;
    proxy.switch_to(replica.addr);
    next_group(&mut expected).await;
    client.wait_for(expected.len()).await;

    // SIGKILL: the connection just breaks.
    replica.kill();
    next_group(&mut expected).await;
    let replica_b = TestServer::start_with(ServerOptions::new(&database)).await;
    proxy.switch_to(replica_b.addr);
    next_group(&mut expected).await;
    client.wait_for(expected.len()).await;

    let (status, printed, log) = client.terminate();
    assert_eq!(
        printed, expected,
        "{name}: every article once, in publish order; its stderr:\n{log}"
    );
    assert_eq!(
        status,
        Some(0),
        "{name}: exits 0 on SIGTERM; its stderr:\n{log}"
    );
    let stored = std::fs::read_to_string(&token_file).expect("the token file is there");
    assert_ne!(stored.trim(), start_token, "{name}: the token moved on");
    assert!(!stored.trim().is_empty(), "{name}: a token is stored");
    // Resuming from the stored token: nothing is left to print.
    let mut resumed = open_stream(&mut replica_b.client().await, &[], stored.trim())
        .await
        .expect("the stored token resumes");
    if let StreamRead::Message(message) = read_one(&mut resumed, Duration::from_secs(1)).await {
        assert_eq!(
            message.article, None,
            "{name}: nothing after the last token"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The resume token of a first article's message, read by a consumer that
/// subscribed before it was published.
async fn token_after_a_first_article(client: &mut ArticleServiceClient<Channel>) -> String {
    let mut stream = open_stream(client, &[], "").await.expect("subscribe");
    let first = publish(client, article("Before the interop run", &[])).await;
    let slug = first.article.expect("the stored article").slug;
    let deadline = Instant::now() + WAIT;
    loop {
        match read_one(&mut stream, WAIT).await {
            StreamRead::Message(message) => {
                let StreamNewArticlesResponse {
                    article,
                    resume_token,
                } = *message;
                if article.is_some_and(|article| article.slug == slug) {
                    return resume_token;
                }
            }
            other => panic!("the first article's message: {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the first article within {WAIT:?}"
        );
    }
}

/// A client process of the common CLI, its stdout and stderr collected.
struct FollowProcess {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl FollowProcess {
    fn start(bin: &PathBuf, addr: &str, token_file: &std::path::Path) -> Self {
        let mut child = Command::new(bin)
            .arg("--addr")
            .arg(addr)
            .arg("--token-file")
            .arg(token_file)
            .args(["--max-backoff-ms", MAX_BACKOFF_MS])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", bin.display()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let lines = stdout.clone();
        let text = stderr.clone();
        let readers = vec![
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            }),
            std::thread::spawn(move || {
                let mut err = err;
                let mut buffer = [0u8; 4096];
                while let Ok(n @ 1..) = err.read(&mut buffer) {
                    text.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            }),
        ];
        Self {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// Waits until the client has printed `count` lines.
    async fn wait_for(&mut self, count: usize) {
        let printed = self.stdout.clone();
        let what = format!("{count} articles printed");
        let stderr = self.stderr.clone();
        let exited = self.child.try_wait().ok().flatten();
        assert_eq!(
            exited,
            None,
            "the client exited early: {}",
            stderr.lock().unwrap()
        );
        eventually(&what, DELIVERED_WITHIN, || {
            let n = printed.lock().unwrap().len();
            async move { n >= count }
        })
        .await;
    }

    /// SIGTERM, then the exit code, every line printed and the stderr.
    fn terminate(mut self) -> (Option<i32>, Vec<String>, String) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("a pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        let printed = self.stdout.lock().unwrap().clone();
        let log = self.stderr.lock().unwrap().clone();
        (status.and_then(|status| status.code()), printed, log)
    }
}

impl Drop for FollowProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
