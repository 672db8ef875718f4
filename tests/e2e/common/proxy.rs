//! TCP proxies in front of PostgreSQL that make a database outage without
//! stopping the PostgreSQL that other tests share: [`DbProxy`] can be cut
//! (every open connection drops and new ones are refused until it is
//! restored), [`BlackHoleProxy`] can be frozen (connections stay open and
//! silent, a network partition).

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct DbProxy {
    pub addr: SocketAddr,
    up: watch::Sender<bool>,
    _task: tokio::task::JoinHandle<()>,
}

impl DbProxy {
    /// Proxies 127.0.0.1:<random> to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (up, _) = watch::channel(true);
        let up_rx = Arc::new(up.subscribe());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mut state = (*up_rx).clone();
                if !*state.borrow() {
                    drop(client); // refused while down
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut client_read, &mut server_write) => {}
                        _ = tokio::io::copy(&mut server_read, &mut client_write) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            _task: task,
        }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        url_via(self.addr, url)
    }
}

/// A TCP proxy that can turn into a black hole: while frozen it accepts
/// connections but never answers, and stops forwarding on open ones (a
/// network partition rather than a refused connection). On thaw the stuck
/// connections are dropped and new ones are forwarded again.
pub struct BlackHoleProxy {
    pub addr: SocketAddr,
    frozen: watch::Sender<bool>,
    _task: tokio::task::JoinHandle<()>,
}

impl BlackHoleProxy {
    /// Proxies 127.0.0.1:<random> to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (frozen, watch) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let mut state = watch.clone();
                tokio::spawn(async move {
                    if *state.borrow() {
                        // Hold the connection, silent, until the thaw.
                        let _ = state.wait_for(|frozen| !*frozen).await;
                        drop(client);
                        return;
                    }
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut client_read, &mut server_write) => return,
                        _ = tokio::io::copy(&mut server_read, &mut client_write) => return,
                        _ = state.wait_for(|frozen| *frozen) => {}
                    }
                    // Frozen: keep every socket open and silent until the thaw.
                    let _ = state.wait_for(|frozen| !*frozen).await;
                    drop((client_read, client_write, server_read, server_write));
                });
            }
        });
        Self {
            addr,
            frozen,
            _task: task,
        }
    }

    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    /// `url` with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        url_via(self.addr, url)
    }
}

/// `url` with its host and port replaced by `proxy`'s.
fn url_via(proxy: SocketAddr, url: &str) -> String {
    let mut url = url::Url::parse(url).expect("a URL");
    url.set_host(Some("127.0.0.1")).expect("host");
    url.set_port(Some(proxy.port())).expect("port");
    url.to_string()
}

/// The host:port a PostgreSQL URL points at.
pub fn target_of(url: &str) -> SocketAddr {
    let url = url::Url::parse(url).expect("a URL");
    let host = url.host_str().expect("a host");
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    format!("{host}:{}", url.port().unwrap_or(5432))
        .parse()
        .expect("host:port")
}
