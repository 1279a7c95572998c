//! Test harness: a fresh database per test (a Postgres database with a random
//! name, or an SQLite file in its own folder), removed afterwards; the real
//! application on Rocket's local client; and small helpers that speak the API.

use std::path::PathBuf;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_blocklist::db::{Db, Store};
use rocket::figment::Figment;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalRequest};
use rocket_db_pools::Database;
use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use uuid::Uuid;

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

/// The Postgres server tests create their databases on. Never skipped: if it
/// cannot be reached, the Postgres half of the suite fails.
fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// `postgres://user@host:port/db` → (`postgres://user@`, `host:port`).
fn split_admin_url() -> (String, String) {
    let admin = admin_url();
    let without_db = admin.rsplit_once('/').map_or(admin.as_str(), |(base, _)| base).to_owned();
    let (prefix, host) = without_db.rsplit_once('@').expect("TEST_DATABASE_URL names user@host");
    (format!("{prefix}@"), host.to_owned())
}

/// One test's database, dropped (or deleted) when the last user lets go.
pub struct TestDb {
    pub backend: Backend,
    name: String,
    folder: PathBuf,
}

impl TestDb {
    pub async fn create(backend: Backend) -> Arc<TestDb> {
        let name = format!("jwtbl_test_{}", Uuid::new_v4().simple());
        let folder = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&folder).expect("temp folder");
        if backend == Backend::Postgres {
            let mut admin = sqlx::PgConnection::connect(&admin_url())
                .await
                .expect("Postgres must be running for the tests (see README)");
            admin
                .execute(format!("CREATE DATABASE \"{name}\"").as_str())
                .await
                .expect("create test database");
        }
        Arc::new(TestDb { backend, name, folder })
    }

    /// A per-test folder (the app's data_dir, the SQLite file).
    pub fn folder(&self) -> &PathBuf {
        &self.folder
    }

    pub fn url(&self) -> String {
        match self.backend {
            Backend::Postgres => {
                let (prefix, host) = split_admin_url();
                format!("{prefix}{host}/{}", self.name)
            }
            Backend::Sqlite => format!("sqlite://{}", self.folder.join("app.db").display()),
        }
    }

    /// The same Postgres database reached through another local port.
    pub fn url_through(&self, port: u16) -> String {
        let (prefix, _) = split_admin_url();
        format!("{prefix}127.0.0.1:{port}/{}", self.name)
    }

    /// Postgres host:port, for proxies.
    pub fn postgres_address() -> String {
        split_admin_url().1
    }

    /// Runs SQL as a DBA would, on a connection of its own.
    pub async fn execute(&self, sql: &str) {
        match self.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url()).await.expect("connect");
                conn.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url()).await.expect("connect");
                conn.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// Revokes `id` (a jti or a sid) the way the README tells a DBA to:
    /// a bare INSERT of the two columns without defaults. `expires_at` is
    /// SQL text, in whatever form a DBA would type it.
    pub async fn revoke_by_hand(&self, id: impl std::fmt::Display, expires_at: &str) {
        self.execute(&hand_revocation(id, expires_at)).await;
    }

    /// A single integer, e.g. `SELECT count(*) FROM users`.
    pub async fn count(&self, sql: &str) -> i64 {
        match self.backend {
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.url()).await.expect("connect");
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url()).await.expect("connect");
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
        if self.backend == Backend::Postgres {
            let name = self.name.clone();
            // Drop may run inside a runtime: do the async cleanup on a thread of its own.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                runtime.block_on(async {
                    let mut admin = sqlx::PgConnection::connect(&admin_url()).await.ok()?;
                    admin
                        .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

pub fn random_secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// The figment every test app starts from: this test's database and secret,
/// no purge timer, a data folder of its own.
pub fn test_figment(db: &TestDb, url: &str, secret: &str) -> Figment {
    jwt_blocklist::figment()
        .merge(("databases.main.url", url))
        .merge(("jwt_secret", secret))
        .merge(("purge_interval", 0))
        .merge(("data_dir", db.folder()))
        .merge(("log_level", "critical"))
}

/// A running instance of the application.
pub struct TestApp {
    pub client: Client,
    pub db: Arc<TestDb>,
    pub secret: String,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, |figment| figment).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(Figment) -> Figment) -> TestApp {
        let db = TestDb::create(backend).await;
        TestApp::start(db, random_secret(), tweak).await
    }

    /// Another instance on the same database and secret.
    pub async fn another_instance(&self) -> TestApp {
        TestApp::start(self.db.clone(), self.secret.clone(), |figment| figment).await
    }

    pub async fn start(db: Arc<TestDb>, secret: String, tweak: impl FnOnce(Figment) -> Figment) -> TestApp {
        let figment = tweak(test_figment(&db, &db.url(), &secret));
        let client = Client::tracked(jwt_blocklist::rocket(figment)).await.expect("the app starts");
        TestApp { client, db, secret }
    }

    pub fn store(&self) -> &Store {
        Db::fetch(self.client.rocket()).expect("database attached")
    }

    pub async fn send(&self, request: LocalRequest<'_>) -> TestResponse {
        let response = request.dispatch().await;
        let status = response.status();
        let www_authenticate = response.headers().get_one("WWW-Authenticate").map(str::to_owned);
        let cache_control = response.headers().get_one("Cache-Control").map(str::to_owned);
        let content_type = response.content_type().map(|ct| ct.to_string());
        let text = response.into_string().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        TestResponse { status, body, www_authenticate, cache_control, content_type }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> TestResponse {
        self.post_raw(path, ContentType::JSON, body.to_string()).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: ContentType,
        body: impl Into<Vec<u8>>,
    ) -> TestResponse {
        let body: Vec<u8> = body.into();
        self.send(self.client.post(path.to_owned()).header(content_type).body(body)).await
    }

    pub async fn get_authorized(&self, path: &str, authorization: &str) -> TestResponse {
        let request =
            self.client.get(path.to_owned()).header(Header::new("Authorization", authorization.to_owned()));
        self.send(request).await
    }

    pub async fn post_authorized(&self, path: &str, authorization: &str) -> TestResponse {
        let request =
            self.client.post(path.to_owned()).header(Header::new("Authorization", authorization.to_owned()));
        self.send(request).await
    }

    pub async fn protected(&self, access_token: &str) -> TestResponse {
        self.get_authorized("/protected", &format!("Bearer {access_token}")).await
    }

    pub async fn register(&self, username: &str, password: &str) -> TestResponse {
        self.post_json("/auth/register", &json!({ "username": username, "password": password })).await
    }

    pub async fn login(&self, username: &str, password: &str) -> TestResponse {
        self.post_json("/auth/login", &json!({ "username": username, "password": password })).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> TestResponse {
        self.post_json("/auth/refresh", &json!({ "refresh_token": refresh_token })).await
    }

    pub async fn logout(&self, access_token: &str) -> TestResponse {
        self.post_authorized("/auth/logout", &format!("Bearer {access_token}")).await
    }

    /// Registers `username` (password `PASSWORD`) and logs in.
    pub async fn signup(&self, username: &str) -> Tokens {
        let registered = self.register(username, PASSWORD).await;
        assert_eq!(registered.status, Status::Created, "{:?}", registered.body);
        self.login_ok(username).await
    }

    /// Logs in again as an existing user, starting a new session.
    pub async fn login_ok(&self, username: &str) -> Tokens {
        let response = self.login(username, PASSWORD).await;
        assert_eq!(response.status, Status::Ok, "{:?}", response.body);
        Tokens::from_body(&response.body)
    }
}

pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    pub fn from_body(body: &Value) -> Tokens {
        Tokens {
            access: body["access_token"].as_str().expect("access_token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh_token").to_owned(),
        }
    }
}

/// The decoded payload of a token (no verification: tests look inside).
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON claims")
}

pub fn claim(token: &str, name: &str) -> String {
    claims_of(token)[name].as_str().unwrap_or_else(|| panic!("claim {name}")).to_owned()
}

/// Signs arbitrary claims with `secret` and `algorithm`.
pub fn forge(claims: &Value, secret: &str, algorithm: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// Assembles a token from raw parts (for `alg: none` and other non-tokens).
pub fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: Status,
    pub body: Value,
    pub www_authenticate: Option<String>,
    pub cache_control: Option<String>,
    pub content_type: Option<String>,
}

impl TestResponse {
    /// Asserts the contract's error shape: status, code, a description, JSON.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.code, status, "body: {:?}", self.body);
        assert_eq!(self.body["error"], code, "body: {:?}", self.body);
        assert!(
            self.body["description"].as_str().is_some_and(|d| !d.is_empty()),
            "description missing: {:?}",
            self.body
        );
        assert!(
            self.content_type.as_deref().is_some_and(|ct| ct.starts_with("application/json")),
            "content type {:?}",
            self.content_type
        );
    }

    /// Asserts a 401 `invalid_token`-family error with its RFC 6750 challenge.
    #[track_caller]
    pub fn assert_token_error(&self, code: &str) {
        self.assert_error(401, code);
        let challenge = self.www_authenticate.as_deref().expect("WWW-Authenticate header");
        assert!(
            challenge
                .starts_with("Bearer realm=\"jwt-blocklist\", error=\"invalid_token\", error_description=\""),
            "challenge: {challenge}"
        );
    }
}

/// A TCP proxy in front of Postgres that a test can cut (closing every open
/// connection and refusing new ones) and restore: the database "goes away"
/// while the app keeps running.
pub struct TcpProxy {
    pub port: u16,
    up: watch::Sender<bool>,
}

impl TcpProxy {
    pub async fn start(upstream: String) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("address").port();
        let (up, watcher) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut watcher = watcher.clone();
                if !*watcher.borrow() {
                    continue; // dropping `inbound` refuses the connection
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = watcher.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        TcpProxy { port, up }
    }

    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

/// Builds the app from `figment`, asserts that it refuses to start, and
/// returns the names of the fairings that refused.
pub async fn refused_fairings(figment: Figment) -> Vec<String> {
    match Client::tracked(jwt_blocklist::rocket(figment)).await {
        Ok(_) => panic!("the app started, but it should have refused"),
        Err(error) => match error.kind() {
            rocket::error::ErrorKind::FailedFairings(failures) => {
                failures.iter().map(|info| info.name.to_owned()).collect()
            }
            other => panic!("refused for another reason: {other:?}"),
        },
    }
}

/// Waits until `token` is rejected as revoked, polling for at most `bound`
/// (revocations from elsewhere reach an instance's cache within milliseconds;
/// tests assert the behaviour with a generous bound, the benchmark measures
/// the delay). Returns how long it took.
pub async fn rejected_within(app: &TestApp, token: &str, bound: std::time::Duration) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let response = app.protected(token).await;
        if response.status == Status::Unauthorized {
            response.assert_token_error("token_revoked");
            return started.elapsed();
        }
        assert_eq!(response.status, Status::Ok, "{:?}", response.body);
        assert!(started.elapsed() < bound, "still accepted after {bound:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
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

impl TestDb {
    /// The Postgres database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs SQL on the server's admin database (Postgres only).
    pub async fn admin_execute(sql: &str) {
        let mut admin = sqlx::PgConnection::connect(&admin_url()).await.expect("connect admin");
        admin.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// The bound used when waiting for a revocation made elsewhere.
pub const PROPAGATION_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// The README's hand revocation statement.
pub fn hand_revocation(id: impl std::fmt::Display, expires_at: &str) -> String {
    format!("INSERT INTO revoked_tokens (jti, expires_at) VALUES ('{id}', '{expires_at}')")
}
