//! Test harness: a fresh database per test ([`db`]), the real application on
//! Rocket's local client ([`app`]), a logged-in caller ([`caller`]), tokens
//! looked into and forged
//! ([`tokens`]), a proxy that cuts or freezes the database ([`proxy`]), the
//! application on a real port for outside clients ([`server`]), the
//! revocation feed as a client reads it ([`feed`]), the built binary as a
//! process of its own ([`process`]), and the waits tests share.

pub mod app;
pub mod caller;
pub mod credentials;
pub mod db;
pub mod feed;
pub mod process;
pub mod proxy;
pub mod server;
pub mod tokens;

pub use app::*;
pub use caller::*;
pub use credentials::*;
pub use db::*;
pub use process::*;
pub use proxy::*;
pub use server::*;
pub use tokens::*;

use rocket::http::Status;

/// Runs each named `async fn(Backend)` once against Postgres and once against
/// SQLite, as `<module>::postgres::<name>` and `<module>::sqlite::<name>`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// The contract's bound: a revocation made anywhere is in force on every
/// running instance within 1 second at worst.
pub const PROPAGATION_BOUND: std::time::Duration = std::time::Duration::from_secs(1);

/// Sends requests with `token` until one is refused, and asserts the
/// contract's bound: no request that began `bound` or more after the call
/// (made right after the revocation committed) was accepted. `refusals` are
/// the codes that count as refused (`token_revoked`, and `service_unavailable`
/// where the database is out of reach). Returns when the first refusal began.
pub async fn refused_within(
    app: &TestApp,
    token: &str,
    bound: std::time::Duration,
    refusals: &[&str],
) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let sent = started.elapsed();
        let response = app.protected(token).await;
        if response.status != Status::Ok {
            let code = response.body["error"].as_str().unwrap_or_default();
            assert!(refusals.contains(&code), "refused with {:?}", response.body);
            return sent;
        }
        assert!(sent < bound, "a request begun {sent:?} after the revocation was accepted");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// [`refused_within`] where the answer must be `token_revoked`.
pub async fn rejected_within(app: &TestApp, token: &str, bound: std::time::Duration) -> std::time::Duration {
    refused_within(app, token, bound, &["token_revoked"]).await
}

/// Polls `condition` every 20 ms until it holds, for at most `bound`.
pub async fn wait_until<F, Fut>(what: &str, bound: std::time::Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !condition().await {
        assert!(started.elapsed() < bound, "timed out waiting until {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Waits until the instance answers the access check from memory.
pub async fn wait_until_trusted(app: &TestApp) {
    wait_until("the revocation memory is live", std::time::Duration::from_secs(15), || async {
        app.store().revocation_cache().trusted
    })
    .await;
}
