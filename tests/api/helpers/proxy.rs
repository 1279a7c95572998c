//! A TCP proxy in front of Postgres (or of the service itself, for the
//! resource servers that follow its feed), for outages of two kinds: a cut (every
//! open connection closed, new ones refused) and a freeze (sockets stay open,
//! nothing is forwarded either way: a stopped backend, a network that drops
//! packets, a frozen proxy), each undone by `restore` or `thaw`. It also
//! counts the statements the service's request connections send.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    pub port: u16,
    up: watch::Sender<bool>,
    flowing: watch::Sender<bool>,
    statements: Arc<AtomicU64>,
}

impl TcpProxy {
    pub async fn start(upstream: String) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("address").port();
        let (up, up_watch) = watch::channel(true);
        let (flowing, flowing_watch) = watch::channel(true);
        let statements = Arc::new(AtomicU64::new(0));
        let counter = statements.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut up_watch = up_watch.clone();
                if !*up_watch.borrow() {
                    continue; // dropping `inbound` refuses the connection
                }
                let (upstream, flowing) = (upstream.clone(), flowing_watch.clone());
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&upstream).await else { return };
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    let statements = Statements {
                        counter,
                        request_connection: false,
                        in_prelude: true,
                        buffer: Vec::new(),
                    };
                    tokio::select! {
                        _ = pump(in_read, out_write, flowing.clone(), Some(statements)) => {}
                        _ = pump(out_read, in_write, flowing, None) => {}
                        _ = up_watch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        TcpProxy { port, up, flowing, statements }
    }

    /// Statements sent so far on the service's request connections (those
    /// whose startup names `application_name` `jwt-blocklist`).
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::SeqCst)
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

/// Parses what a client sends: the untyped prelude (an optional SSL request,
/// then the startup message, which names the connection), then typed
/// messages, counting `Execute` and simple `Query` ones (a statement each)
/// on request connections.
struct Statements {
    counter: Arc<AtomicU64>,
    request_connection: bool,
    in_prelude: bool,
    buffer: Vec<u8>,
}

impl Statements {
    fn watch(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        loop {
            let (header, length_at) = if self.in_prelude { (4, 0) } else { (5, 1) };
            if self.buffer.len() < header {
                return;
            }
            let length =
                u32::from_be_bytes(self.buffer[length_at..length_at + 4].try_into().expect("4 bytes"));
            let total = length_at + length as usize;
            if self.buffer.len() < total {
                return;
            }
            if self.in_prelude {
                // The SSL request is 8 bytes with code 80877103; the startup
                // message carries the parameters, application_name among them.
                let code = u32::from_be_bytes(self.buffer[4..8].try_into().expect("4 bytes"));
                if code != 80_877_103 {
                    let name = b"application_name\0jwt-blocklist\0";
                    self.request_connection = self.buffer[..total].windows(name.len()).any(|w| w == name);
                    self.in_prelude = false;
                }
            } else if matches!(self.buffer[0], b'E' | b'Q') && self.request_connection {
                self.counter.fetch_add(1, Ordering::SeqCst);
            }
            self.buffer.drain(..total);
        }
    }
}

/// Copies `from` to `to`, holding every chunk while the proxy is frozen.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut flowing: watch::Receiver<bool>,
    mut statements: Option<Statements>,
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
        if let Some(statements) = statements.as_mut() {
            statements.watch(&buffer[..read]);
        }
        if flowing.wait_for(|flowing| *flowing).await.is_err() || to.write_all(&buffer[..read]).await.is_err()
        {
            return;
        }
    }
}
