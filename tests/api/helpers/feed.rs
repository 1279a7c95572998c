//! The revocation feed as a client sees it: the snapshot, and a server-sent
//! event reader over Rocket's local client (its response body is read as it
//! comes).

use std::time::Duration;

use rocket::http::{Header, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};

use super::{TestApp, TestResponse};

/// `GET /revocations` as `basic`.
pub async fn snapshot(app: &TestApp, basic: &str) -> TestResponse {
    app.send(app.client.get("/revocations").header(Header::new("Authorization", basic.to_owned()))).await
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

/// An open `GET /revocations/stream`.
pub struct EventReader<'c> {
    lines: Lines<BufReader<LocalResponse<'c>>>,
}

impl<'c> EventReader<'c> {
    /// Opens the stream as `basic`, from `cursor` (sent as `Last-Event-ID`)
    /// if given; asserts a 200.
    pub async fn open(app: &'c TestApp, basic: &str, cursor: Option<&str>) -> EventReader<'c> {
        let mut request =
            app.client.get("/revocations/stream").header(Header::new("Authorization", basic.to_owned()));
        if let Some(cursor) = cursor {
            request = request.header(Header::new("Last-Event-ID", cursor.to_owned()));
        }
        let response = request.dispatch().await;
        assert_eq!(response.status(), Status::Ok);
        assert_eq!(response.content_type().map(|t| t.to_string()).as_deref(), Some("text/event-stream"));
        EventReader { lines: BufReader::new(response).lines() }
    }

    /// The next event, if one comes within `within` (`None`: none came, or
    /// the stream ended).
    pub async fn next_within(&mut self, within: Duration) -> Option<SseEvent> {
        tokio::time::timeout(within, self.next()).await.ok().flatten()
    }

    async fn next(&mut self) -> Option<SseEvent> {
        let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
        loop {
            let line = self.lines.next_line().await.ok()??;
            if line.is_empty() {
                if data.is_empty() {
                    continue;
                }
                let data = serde_json::from_str(&data).expect("JSON data");
                return Some(SseEvent { event, id, data });
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
            match field {
                "event" => event = value,
                "id" => id = Some(value),
                "data" => data.push_str(&value),
                _ => {}
            }
        }
    }

    /// The events until one named `name` comes (inclusive), within `within`.
    pub async fn until(&mut self, name: &str, within: Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self.next_within(left).await;
            let event = event.unwrap_or_else(|| panic!("no {name} event within {within:?}; saw {seen:#?}"));
            let done = event.event == name;
            seen.push(event);
            if done {
                return seen;
            }
        }
    }

    /// The events that are not heartbeats, for `duration`.
    pub async fn changes_for(&mut self, duration: Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + duration;
        let mut seen = Vec::new();
        while let Some(event) =
            self.next_within(deadline.saturating_duration_since(tokio::time::Instant::now())).await
        {
            if event.event != "heartbeat" {
                seen.push(event);
            }
        }
        seen
    }
}
