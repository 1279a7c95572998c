//! A logged-in caller: the API as a client holding a session speaks it, so
//! tests say `caller.logout_all()` rather than format headers by hand.

use rocket::http::{ContentType, Header};
use serde_json::json;

use super::{TestApp, TestResponse, Tokens};

/// The `Authorization` value that presents `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A client holding a session's tokens, talking to one instance.
pub struct Caller<'a> {
    app: &'a TestApp,
    pub tokens: Tokens,
}

impl TestApp {
    /// The caller holding `tokens`.
    pub fn caller(&self, tokens: &Tokens) -> Caller<'_> {
        Caller { app: self, tokens: tokens.clone() }
    }
}

impl Caller<'_> {
    fn authorization(&self) -> String {
        bearer(&self.tokens.access)
    }

    /// `GET /auth/me`.
    pub async fn me(&self) -> TestResponse {
        self.app.get_authorized("/auth/me", &self.authorization()).await
    }

    /// `POST /auth/logout` (scope `local`).
    pub async fn logout(&self) -> TestResponse {
        self.app.post_authorized("/auth/logout", &self.authorization()).await
    }

    /// `POST /auth/logout?scope=…`.
    pub async fn logout_scope(&self, scope: &str) -> TestResponse {
        self.app.post_authorized(&format!("/auth/logout?scope={scope}"), &self.authorization()).await
    }

    /// `POST /auth/logout-all`.
    pub async fn logout_all(&self) -> TestResponse {
        self.app.post_authorized("/auth/logout-all", &self.authorization()).await
    }

    /// `GET /auth/sessions`.
    pub async fn sessions(&self) -> TestResponse {
        self.app.get_authorized("/auth/sessions", &self.authorization()).await
    }

    /// `DELETE /auth/sessions/{id}`.
    pub async fn revoke_session(&self, id: &str) -> TestResponse {
        self.app.delete_authorized(&format!("/auth/sessions/{id}"), &self.authorization()).await
    }

    /// `POST /auth/password`, from the client address `remote` if given.
    pub async fn change_password(&self, current: &str, new: &str, remote: Option<&str>) -> TestResponse {
        let mut request = self
            .app
            .client
            .post("/auth/password")
            .header(ContentType::JSON)
            .header(Header::new("Authorization", self.authorization()))
            .body(json!({ "current_password": current, "new_password": new }).to_string());
        if let Some(remote) = remote {
            request = request.remote(remote.parse().expect("a socket address"));
        }
        self.app.send(request).await
    }
}
