//! A stable address in front of whichever replica currently serves, like a
//! Kubernetes Service: each new connection goes to the current target; a
//! connection ends when either side closes it (a stopped replica's clients
//! see their connection fail and reconnect to the next one).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct ServiceProxy {
    pub addr: SocketAddr,
    target: watch::Sender<SocketAddr>,
    _task: tokio::task::JoinHandle<()>,
}

impl ServiceProxy {
    /// Proxies 127.0.0.1:<random> to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (sender, receiver) = watch::channel(target);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let target = *receiver.borrow();
                tokio::spawn(async move {
                    // A replica that is down: the connection is refused, as
                    // by a Service without endpoints.
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Self {
            addr,
            target: sender,
            _task: task,
        }
    }

    /// New connections go to `target` from now on.
    pub fn switch_to(&self, target: SocketAddr) {
        self.target.send_replace(target);
    }
}
