//! What a test sees of a running server from outside: whether the process is
//! alive, its resident memory, and its Prometheus series.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::TestServer;

impl TestServer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Resident memory in KiB (VmRSS of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status of the server");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// Resident memory in KiB after asking the server's allocator to give
    /// every free page back (glibc's `malloc_trim(0)`, called through gdb):
    /// what the process still uses, rather than what glibc keeps for reuse.
    /// None where gdb is missing or may not attach (a minimal CI machine, or
    /// ptrace restricted).
    pub fn rss_kib_trimmed(&self) -> Option<u64> {
        let output = std::process::Command::new("gdb")
            .args(["--batch", "--nx", "-p", &self.pid().to_string()])
            .args(["-ex", "call (int) malloc_trim(0)"])
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        let said = String::from_utf8_lossy(&output.stdout);
        // "$1 = 1": memory was released; "$1 = 0": there was none to release.
        let called = said.lines().any(|line| line.starts_with("$1 = "));
        called.then(|| self.rss_kib())
    }

    /// Waits until a log line contains `needle`; fails the test after
    /// `timeout`.
    pub async fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.logs().iter().any(|line| line.contains(needle)) {
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?} within {timeout:?}: {:?}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The address of /metrics, from the server's log.
    pub fn metrics_addr(&self) -> String {
        self.logs()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|line| line["message"] == "metrics listening")
            .and_then(|line| line["metrics_addr"].as_str().map(str::to_owned))
            .expect("the server logs its metrics address")
    }

    /// The Prometheus text of /metrics now.
    pub async fn scrape(&self) -> String {
        let (status_line, body) = http_get(&self.metrics_addr(), "/metrics").await;
        assert!(status_line.starts_with("HTTP/1.1 200"), "{status_line}");
        body
    }

    /// The value of one series (name and labels exactly as rendered), now.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        metric_value(&self.scrape().await, series)
    }

    /// Scrapes until `series` has `value`; fails the test after `timeout`.
    /// Returns how long it took.
    pub async fn wait_for_metric(&self, series: &str, value: f64, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let now = self.metric(series).await;
            if now == Some(value) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "{series} is {now:?}, not {value}, after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A plain HTTP/1.1 GET; returns the status line and the body.
pub async fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to metrics");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// The value of the series whose line starts with `series` in Prometheus text
/// (name and labels exactly as rendered).
pub fn metric_value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}
