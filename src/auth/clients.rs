//! Resource-server clients: their secrets, generated here (256 random bits,
//! base64url: 43 characters), shown once, and stored only as
//! HMAC-SHA256(key, secret), the key derived from `jwt_secret` by HKDF.
//!
//! Why a keyed hash rather than a password hash: the secrets are random and
//! long, so no dictionary or brute force applies, and a slow hash would make
//! every introspection pay tens of milliseconds; the key means a copy of the
//! table alone cannot even test a guess. A check always computes the HMAC
//! and compares in constant time, known client or not, so an unknown
//! client and a wrong secret are answered alike, in about the same time.

use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::db::ClientRow;

/// `client_id`: 1-64 of `[A-Za-z0-9_.-]`.
pub fn is_valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

#[derive(Clone)]
pub struct ClientSecrets {
    key: hmac::Key,
}

impl ClientSecrets {
    pub fn derive(secret: &Secret) -> ClientSecrets {
        let prk = Salt::new(HKDF_SHA256, b"jwt-blocklist").extract(secret.expose());
        let okm = prk.expand(&[b"client secrets, HMAC-SHA256, v1"], hmac::HMAC_SHA256).expect("one HMAC key");
        ClientSecrets { key: hmac::Key::from(okm) }
    }

    /// A new client secret.
    pub fn generate() -> String {
        let mut random = [0u8; 32];
        SystemRandom::new().fill(&mut random).expect("the system's random numbers");
        URL_SAFE_NO_PAD.encode(random)
    }

    /// What the table stores for `client_secret`.
    pub fn hash(&self, client_secret: &str) -> Vec<u8> {
        hmac::sign(&self.key, client_secret.as_bytes()).as_ref().to_vec()
    }

    /// The client of `clients` named `name` whose secret is
    /// `client_secret`, if there is one, found in the same steps whether or
    /// not there is.
    pub fn check<'c>(
        &self,
        clients: &'c [ClientRow],
        name: &str,
        client_secret: &str,
    ) -> Option<&'c ClientRow> {
        let presented = self.hash(client_secret);
        let stored = clients.iter().find(|client| client.name == name);
        let against = stored.map_or(&presented[..0], |client| &client.secret_hash[..]);
        let matches: bool = presented.ct_eq(against).into();
        stored.filter(|_| matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_registered_secret_of_the_registered_name_checks_out() {
        let secret: Secret =
            serde_json::from_value(serde_json::json!("a secret of thirty-two bytes or more")).unwrap();
        let secrets = ClientSecrets::derive(&secret);
        let issued = ClientSecrets::generate();
        assert_eq!(issued.len(), 43, "256 bits, base64url");
        let clients = vec![ClientRow {
            name: "api".into(),
            secret_hash: secrets.hash(&issued),
            created_at: chrono::Utc::now(),
        }];

        assert_eq!(secrets.check(&clients, "api", &issued).map(|c| c.name.as_str()), Some("api"));
        assert!(secrets.check(&clients, "api", "a wrong secret").is_none());
        assert!(secrets.check(&clients, "other", &issued).is_none());
        assert!(secrets.check(&[], "api", &issued).is_none());
        assert!(is_valid_name("billing-api.v2") && !is_valid_name("") && !is_valid_name("a b"));
    }
}
