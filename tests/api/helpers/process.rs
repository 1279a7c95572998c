//! The built binary as a process of its own (for its log, its exit, or a
//! kill -9), and plain HTTP/1.1 requests to it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::TestDb;

/// The service's log buffer: lines that may wait for its writer thread.
pub const LOG_BUFFERED_LINES: usize = jwt_blocklist::logging::BUFFERED_LINES;

/// Starts the binary and returns it with its port, read from its own log.
/// An empty `level` configures none; `settings` (environment variables)
/// may override any other, `DATABASE_URL` included.
pub fn serve_binary(
    db: &TestDb,
    secret: &str,
    level: &str,
    settings: &[(&str, &str)],
) -> (Child, u16, std::sync::mpsc::Receiver<String>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jwt-blocklist"));
    match level {
        "" => command.env_remove("ROCKET_LOG_LEVEL"),
        level => command.env("ROCKET_LOG_LEVEL", level),
    };
    let mut child = command
        .env("DATABASE_URL", db.url())
        .env("ROCKET_JWT_SECRET", secret)
        .env("ROCKET_DATA_DIR", db.folder())
        .env("ROCKET_PORT", "0")
        .env("ROCKET_LOG_FORMAT", "json")
        .env("ROCKET_PURGE_INTERVAL", "0")
        .envs(settings.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let (lines, received) = std::sync::mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
    }
    let mut seen = Vec::new();
    let port = loop {
        let line =
            received.recv_timeout(std::time::Duration::from_secs(30)).expect("the service logs its launch");
        seen.push(line.clone());
        if let Some(at) = line.find("Rocket has launched from http://127.0.0.1:") {
            let rest = &line[at + "Rocket has launched from http://127.0.0.1:".len()..];
            break rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().expect("a port");
        }
    };
    let (relay, out) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in seen.into_iter().chain(received.iter()) {
            let _ = relay.send(line);
        }
    });
    (child, port, out)
}

/// One HTTP/1.1 request with a body of `content_type` (if any); returns the
/// status, the head and the body's text.
pub async fn http_text(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> (u16, String, String) {
    let (content_type, body) = body.unwrap_or(("", ""));
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !content_type.is_empty() {
        request.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connects");
    stream.write_all(request.as_bytes()).await.expect("sends");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.expect("reads");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// One HTTP/1.1 request with a JSON body (if any); returns the status, the
/// headers and the body as JSON.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, String, Value) {
    let body = body.map(Value::to_string);
    let (status, head, text) =
        http_text(port, method, path, headers, body.as_deref().map(|body| ("application/json", body))).await;
    (status, head, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Stops the process as an operator would (SIGTERM): Rocket shuts down
/// gracefully and the log's writer thread writes out what it holds, so
/// every line of the run is read. (`Child::kill` is kill -9: the last lines
/// may still be in that thread.)
pub fn stop(child: &mut Child) {
    let sent = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(sent.success(), "SIGTERM was sent");
    child.wait().expect("the process ends");
}
