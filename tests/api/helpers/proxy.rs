//! A TCP proxy in front of Postgres, for outages of two kinds: a cut (every
//! open connection closed, new ones refused) and a freeze (sockets stay open,
//! nothing is forwarded either way: a stopped backend, a network that drops
//! packets, a frozen proxy), each undone by `restore` or `thaw`.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    pub port: u16,
    up: watch::Sender<bool>,
    flowing: watch::Sender<bool>,
}

impl TcpProxy {
    pub async fn start(upstream: String) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("address").port();
        let (up, up_watch) = watch::channel(true);
        let (flowing, flowing_watch) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut up_watch = up_watch.clone();
                if !*up_watch.borrow() {
                    continue; // dropping `inbound` refuses the connection
                }
                let (upstream, flowing) = (upstream.clone(), flowing_watch.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&upstream).await else { return };
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    tokio::select! {
                        _ = pump(in_read, out_write, flowing.clone()) => {}
                        _ = pump(out_read, in_write, flowing) => {}
                        _ = up_watch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        TcpProxy { port, up, flowing }
    }

    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }

    /// Stops forwarding without closing anything: no error reaches either end.
    pub fn freeze(&self) {
        self.flowing.send_replace(false);
    }

    pub fn thaw(&self) {
        self.flowing.send_replace(true);
    }
}

/// Copies `from` to `to`, holding every chunk while the proxy is frozen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut flowing: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if flowing.wait_for(|flowing| *flowing).await.is_err() {
            return;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if flowing.wait_for(|flowing| *flowing).await.is_err() || to.write_all(&buffer[..read]).await.is_err()
        {
            return;
        }
    }
}
