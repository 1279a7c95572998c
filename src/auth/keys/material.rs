//! A signing key's material: generating one (aws-lc-rs), its public JWK and
//! RFC 7638 thumbprint (the `kid`), and sealing the private key (PKCS#8)
//! with AES-256-GCM under a key HKDF-SHA256 derives from `jwt_secret`, so
//! the table never holds a usable private key. Sealed form: a version byte,
//! the 96-bit random nonce, then the ciphertext and tag; the `kid` is the
//! associated data, so a sealed key moved to another row does not open.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::hkdf::{Salt, HKDF_SHA256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::config::{JwtAlgorithm, Secret};

/// The first byte of every sealed key: the format above.
const SEALED_V1: u8 = 1;

/// A freshly made key: its id, public JWK (JSON text) and private PKCS#8.
pub struct Generated {
    pub kid: String,
    pub public_jwk: String,
    pub pkcs8: Vec<u8>,
}

/// Why a key could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeyMaterialError {
    #[error("cannot generate a key")]
    Generate,
    #[error("jwt_algorithm {0} has no key pairs")]
    Symmetric(&'static str),
    #[error("the sealed private key of {0} does not open with this jwt_secret")]
    Unseal(String),
    #[error("the stored public key of {0} is malformed")]
    PublicKey(String),
}

/// Makes a key pair for `algorithm` (ES256 or EdDSA).
pub fn generate(algorithm: JwtAlgorithm) -> Result<Generated, KeyMaterialError> {
    let rng = SystemRandom::new();
    let (pkcs8, jwk) = match algorithm {
        JwtAlgorithm::ES256 => {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| KeyMaterialError::Generate)?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
                .map_err(|_| KeyMaterialError::Generate)?;
            // The uncompressed point: 0x04, then x and y, 32 bytes each.
            let point = pair.public_key().as_ref();
            let (x, y) = point[1..].split_at(32);
            (pkcs8.as_ref().to_vec(), ec_jwk(x, y))
        }
        JwtAlgorithm::EdDSA => {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyMaterialError::Generate)?;
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| KeyMaterialError::Generate)?;
            (pkcs8.as_ref().to_vec(), okp_jwk(pair.public_key().as_ref()))
        }
        JwtAlgorithm::HS256 => return Err(KeyMaterialError::Symmetric("HS256")),
    };
    let kid = thumbprint(&jwk);
    let mut public = jwk;
    public["kid"] = json!(kid);
    public["alg"] = json!(algorithm.as_str());
    public["use"] = json!("sig");
    Ok(Generated { kid, public_jwk: public.to_string(), pkcs8 })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The required members of a P-256 key, as RFC 7638 orders them.
fn ec_jwk(x: &[u8], y: &[u8]) -> Value {
    json!({ "crv": "P-256", "kty": "EC", "x": b64(x), "y": b64(y) })
}

/// The required members of an Ed25519 key.
fn okp_jwk(x: &[u8]) -> Value {
    json!({ "crv": "Ed25519", "kty": "OKP", "x": b64(x) })
}

/// RFC 7638: SHA-256 of the required members, lexicographically ordered,
/// no white space, base64url.
pub fn thumbprint(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str() {
        Some("EC") => &["crv", "kty", "x", "y"],
        _ => &["crv", "kty", "x"],
    };
    let mut canonical = String::from("{");
    for (n, member) in members.iter().enumerate() {
        if n > 0 {
            canonical.push(',');
        }
        canonical.push_str(&format!(
            "{}:{}",
            json!(member),
            json!(jwk[*member].as_str().unwrap_or_default())
        ));
    }
    canonical.push('}');
    b64(digest(&SHA256, canonical.as_bytes()).as_ref())
}

/// The sealing key: HKDF-SHA256 of `jwt_secret`, for this purpose alone.
#[derive(Clone)]
pub struct SealingKey(std::sync::Arc<LessSafeKey>);

impl SealingKey {
    pub fn derive(secret: &Secret) -> SealingKey {
        let prk = Salt::new(HKDF_SHA256, b"jwt-blocklist").extract(secret.expose());
        let okm = prk
            .expand(&[b"signing keys, AES-256-GCM, v1"], &AES_256_GCM)
            .expect("HKDF can fill one AES-256 key");
        SealingKey(std::sync::Arc::new(LessSafeKey::new(UnboundKey::from(okm))))
    }

    /// `pkcs8`, sealed for the row of `kid`.
    pub fn seal(&self, kid: &str, pkcs8: &[u8]) -> Result<Vec<u8>, KeyMaterialError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| KeyMaterialError::Generate)?;
        let mut sealed = pkcs8.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kid.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| KeyMaterialError::Generate)?;
        Ok([&[SEALED_V1][..], &nonce, &sealed].concat())
    }

    /// The private key sealed for `kid`, or an error if this `jwt_secret`
    /// cannot open it.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, KeyMaterialError> {
        let unseal = || KeyMaterialError::Unseal(kid.to_owned());
        let (&version, rest) = sealed.split_first().ok_or_else(unseal)?;
        if version != SEALED_V1 || rest.len() < NONCE_LEN {
            return Err(unseal());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| unseal())?;
        let mut opened = ciphertext.to_vec();
        let plain =
            self.0.open_in_place(nonce, Aad::from(kid.as_bytes()), &mut opened).map_err(|_| unseal())?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Secret {
        serde_json::from_value(json!(text)).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_with_its_secret_and_kid_only() {
        let key = generate(JwtAlgorithm::ES256).unwrap();
        let sealing = SealingKey::derive(&secret("a secret of thirty-two bytes or more"));
        let sealed = sealing.seal(&key.kid, &key.pkcs8).unwrap();

        assert_eq!(sealing.open(&key.kid, &sealed).unwrap(), key.pkcs8);
        assert!(!sealed.windows(16).any(|window| key.pkcs8.windows(16).any(|w| w == window)), "sealed");
        let other = SealingKey::derive(&secret("another secret of thirty-two bytes"));
        assert!(other.open(&key.kid, &sealed).is_err(), "another secret");
        assert!(sealing.open("another-kid", &sealed).is_err(), "another row");
    }

    /// RFC 8037 appendix A.3: the thumbprint of its Ed25519 example key.
    #[test]
    fn the_thumbprint_is_rfc_8037s_for_its_example_key() {
        let jwk =
            json!({ "crv": "Ed25519", "kty": "OKP", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" });
        assert_eq!(thumbprint(&jwk), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    /// Made keys: the kid is the RFC 7638 thumbprint of the public members
    /// in order, no white space; no private member is published.
    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint_of_the_public_key() {
        let key = generate(JwtAlgorithm::ES256).unwrap();
        let jwk: Value = serde_json::from_str(&key.public_jwk).unwrap();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        assert_eq!(key.kid, b64(digest(&SHA256, canonical.as_bytes()).as_ref()));
        assert_eq!(
            (jwk["kty"].as_str(), jwk["alg"].as_str(), jwk["use"].as_str()),
            (Some("EC"), Some("ES256"), Some("sig"))
        );
        assert!(jwk.get("d").is_none(), "no private member");
        let ed = generate(JwtAlgorithm::EdDSA).unwrap();
        let jwk: Value = serde_json::from_str(&ed.public_jwk).unwrap();
        assert_eq!((jwk["kty"].as_str(), jwk["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
        assert_eq!(ed.kid, thumbprint(&jwk));
    }
}
