//! The real application on Rocket's local client, and small helpers that
//! speak the API.

use std::sync::Arc;

use jwt_blocklist::db::Store;
use rocket::figment::Figment;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalRequest};
use serde_json::{json, Value};
use uuid::Uuid;

use super::{Backend, TestDb};

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

/// For the tests that forge tokens with the secret: sign with HS256, as
/// before signing keys (the default is ES256, keys in the database).
pub fn hs256(figment: Figment) -> Figment {
    figment.merge(("jwt_algorithm", "HS256"))
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
        self.client.rocket().state::<Store>().expect("the store is managed")
    }

    pub async fn send(&self, request: LocalRequest<'_>) -> TestResponse {
        TestResponse::read(request.dispatch().await).await
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

    pub async fn delete_authorized(&self, path: &str, authorization: &str) -> TestResponse {
        let request = self
            .client
            .delete(path.to_owned())
            .header(Header::new("Authorization", authorization.to_owned()));
        self.send(request).await
    }

    /// Logs in from the client address `remote` ("192.0.2.1:4000"), with a
    /// `User-Agent` header if given.
    pub async fn login_from(
        &self,
        remote: &str,
        user_agent: Option<&str>,
        username: &str,
        password: &str,
    ) -> TestResponse {
        let mut request = self
            .client
            .post("/auth/login")
            .remote(remote.parse().expect("a socket address"))
            .header(ContentType::JSON)
            .body(json!({ "username": username, "password": password }).to_string());
        if let Some(agent) = user_agent {
            request = request.header(Header::new("User-Agent", agent.to_owned()));
        }
        self.send(request).await
    }

    /// `POST /auth/revoke` (RFC 7009) with a form body.
    pub async fn revoke_form(&self, form: &str) -> TestResponse {
        self.post_raw("/auth/revoke", ContentType::Form, form.to_owned()).await
    }

    /// The application's authentication state (throttle, hashing queue).
    pub fn auth(&self) -> &jwt_blocklist::auth::Auth {
        self.client.rocket().state::<jwt_blocklist::auth::Auth>().expect("auth state")
    }

    pub async fn protected(&self, access_token: &str) -> TestResponse {
        self.get_authorized("/protected", &super::bearer(access_token)).await
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
        self.post_authorized("/auth/logout", &super::bearer(access_token)).await
    }

    /// Asserts that the session of `tokens` is over: its access token and
    /// its refresh token are both refused as revoked.
    pub async fn assert_session_ended(&self, tokens: &Tokens) {
        self.protected(&tokens.access).await.assert_token_error("token_revoked");
        self.refresh(&tokens.refresh).await.assert_token_error("token_revoked");
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

#[derive(Debug)]
pub struct TestResponse {
    pub status: Status,
    pub body: Value,
    pub www_authenticate: Option<String>,
    pub cache_control: Option<String>,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    /// Every header, in order (`Set-Cookie` may repeat).
    pub headers: Vec<(String, String)>,
}

impl TestResponse {
    /// Reads a local client's response whole.
    pub async fn read(response: rocket::local::asynchronous::LocalResponse<'_>) -> TestResponse {
        let status = response.status();
        let www_authenticate = response.headers().get_one("WWW-Authenticate").map(str::to_owned);
        let cache_control = response.headers().get_one("Cache-Control").map(str::to_owned);
        let retry_after = response.headers().get_one("Retry-After").map(str::to_owned);
        let headers =
            response.headers().iter().map(|h| (h.name().to_string(), h.value().to_owned())).collect();
        let content_type = response.content_type().map(|ct| ct.to_string());
        let text = response.into_string().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        TestResponse { status, body, www_authenticate, cache_control, content_type, retry_after, headers }
    }

    /// The first header named `name` (case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `Set-Cookie` header for cookie `name`, split into its value and
    /// its attributes (lowercased names, `Name=value` kept as given).
    pub fn set_cookie(&self, name: &str) -> Option<(String, Vec<String>)> {
        let prefix = format!("{name}=");
        let line = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Set-Cookie"))
            .map(|(_, v)| v)
            .find(|v| v.starts_with(&prefix))?;
        let mut parts = line.split(';').map(str::trim);
        let value = parts.next()?.trim_start_matches(&prefix).to_owned();
        Some((value, parts.map(str::to_owned).collect()))
    }

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
