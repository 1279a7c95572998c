//! The benchmark's revocation-feed tool (`cargo run --release --example
//! bench-feed -- MODE …`), used by bench/feed.sh against a running
//! instance with a registered client:
//!
//!   propagation URL ID SECRET FOLLOWERS TOKENS N
//!       FOLLOWERS in-process verifiers (each with its own connection to the
//!       feed, as separate resource servers would have) follow URL; each of
//!       the first N tokens of the file TOKENS is logged out at URL and
//!       timed until every follower refuses it (the verifier's change
//!       counter wakes the check; nothing polls). Prints p50, p99, max.
//!   streams URL ID SECRET COUNT SECONDS
//!       COUNT open stream connections from this process, read and
//!       discarded, for SECONDS. Prints the events received.
//!   snapshot URL ID SECRET
//!       One verifier: the time to take the snapshot and be current, and
//!       this process's resident memory before and after.

use std::time::{Duration, Instant};

use futures::StreamExt;
use jwt_blocklist_verifier::{Config, Verifier, VerifyError};

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn start(url: &str, id: &str, secret: &str) -> Verifier {
    let verifier = Verifier::start(Config::new(url, id, secret)).await.expect("the verifier starts");
    assert!(verifier.wait_until_current(Duration::from_secs(60)).await, "current");
    verifier
}

async fn propagation(url: &str, id: &str, secret: &str, followers: usize, tokens: &str, n: usize) {
    let tokens: Vec<String> =
        std::fs::read_to_string(tokens).expect("tokens").lines().take(n).map(str::to_owned).collect();
    let mut verifiers = Vec::new();
    for _ in 0..followers {
        verifiers.push(start(url, id, secret).await);
    }
    for verifier in &verifiers {
        for token in &tokens {
            verifier.verify(token).await.expect("accepted before its logout");
        }
    }
    let http = reqwest::Client::new();
    let mut samples = Vec::with_capacity(tokens.len() * followers);
    for token in &tokens {
        let waits: Vec<_> = verifiers
            .iter()
            .map(|verifier| {
                let (verifier, token) = (verifier.clone(), token.clone());
                let mut changes = verifier.changes();
                tokio::spawn(async move {
                    loop {
                        if verifier.verify(&token).await == Err(VerifyError::TokenRevoked) {
                            return Instant::now();
                        }
                        tokio::time::timeout(Duration::from_secs(5), changes.changed())
                            .await
                            .expect("refused within 5 s")
                            .expect("the verifier lives");
                    }
                })
            })
            .collect();
        let sent = Instant::now();
        let answer = http.post(format!("{url}/auth/logout")).bearer_auth(token).send().await.expect("logout");
        assert!(answer.status().is_success(), "logout: {}", answer.status());
        for wait in waits {
            let refused = wait.await.expect("a follower");
            samples.push(refused.saturating_duration_since(sent).as_secs_f64() * 1000.0);
        }
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "followers={followers} revocations={} samples={} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        tokens.len(),
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or(0.0)
    );
}

async fn streams(url: &str, id: &str, secret: &str, count: usize, seconds: u64) {
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("a client");
    let mut open = Vec::new();
    for _ in 0..count {
        let response = http
            .get(format!("{url}/revocations/stream"))
            .basic_auth(id, Some(secret))
            .send()
            .await
            .expect("a stream");
        assert!(response.status().is_success(), "{}", response.status());
        open.push(tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut events = 0u64;
            while let Some(Ok(chunk)) = body.next().await {
                events += chunk.windows(2).filter(|pair| pair == b"\n\n").count() as u64;
            }
            events
        }));
    }
    println!("streams open: {count}");
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let mut events = 0;
    for stream in open {
        stream.abort();
        events += stream.await.unwrap_or(0);
    }
    println!("streams closed: {count}, events read while aborting: {events}");
}

async fn snapshot(url: &str, id: &str, secret: &str) {
    let before = rss_mb();
    let started = Instant::now();
    let verifier = start(url, id, secret).await;
    let took = started.elapsed();
    let after = rss_mb();
    println!(
        "snapshot: {} entries, current after {} ms, resident memory {before:.1} MB before, {after:.1} MB after (+{:.1} MB)",
        verifier.status().entries,
        took.as_millis(),
        after - before
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_else(|| panic!("argument {i} missing"));
    let number = |i: usize| arg(i).parse::<usize>().expect("a number");
    match arg(0) {
        "propagation" => propagation(arg(1), arg(2), arg(3), number(4), arg(5), number(6)).await,
        "streams" => streams(arg(1), arg(2), arg(3), number(4), number(5) as u64).await,
        "snapshot" => snapshot(arg(1), arg(2), arg(3)).await,
        other => panic!("unknown mode {other}"),
    }
}
