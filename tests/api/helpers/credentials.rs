//! The configuration, signing keys and registered clients of a test's
//! application, as an operator would change them (`keys rotate`, `keys
//! revoke`, `clients add`), without the command line's process.

use jwt_blocklist::auth::keys::lifecycle;
use jwt_blocklist::config::AppConfig;
use jwt_blocklist::db::{Revoked, Rotated};

use super::TestApp;

/// A registered client's credentials.
pub struct ClientCredentials {
    pub secret: String,
    /// `Authorization: Basic …` with them.
    pub basic: String,
}

/// The `Authorization: Basic` value of `id` and `secret`.
pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

impl TestApp {
    /// The configuration the application runs with.
    pub fn config(&self) -> AppConfig {
        self.client.rocket().state::<AppConfig>().expect("managed").clone()
    }

    /// Registers a resource-server client `name`, as `clients add` does.
    pub async fn add_client(&self, name: &str) -> ClientCredentials {
        let secret = jwt_blocklist::auth::clients::ClientSecrets::generate();
        self.store().add_client(name, &self.auth().clients.hash(&secret)).await.expect("a client");
        ClientCredentials { basic: basic(name, &secret), secret }
    }

    /// `keys rotate`.
    pub async fn rotate_key(&self) -> Rotated {
        let sealing = self.auth().jwt.keys().expect("asymmetric keys").sealing();
        lifecycle::rotate(self.store(), sealing, &self.config()).await.expect("rotated")
    }

    /// `keys revoke KID`.
    pub async fn revoke_key(&self, kid: &str) -> Revoked {
        let sealing = self.auth().jwt.keys().expect("asymmetric keys").sealing();
        lifecycle::revoke(self.store(), sealing, &self.config(), kid).await.expect("revoked")
    }
}
