//! CSRF protection for cookie sessions: double submit, bound to the token.
//!
//! At login a random CSRF token (256 bits) is returned in the body and in the
//! script-readable `jbl_csrf` cookie; both JWTs of the session carry its
//! binding, the SHA-256 of it (never the value), in the `csrf` claim. A
//! cookie-authenticated unsafe request must echo the value in `X-CSRF-Token`;
//! the guard hashes what it got and compares in constant time. Another site
//! can make the browser send the cookies, but cannot read `jbl_csrf`, and a
//! value planted in that cookie does not match the signed binding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The request header that carries the CSRF token.
pub const HEADER: &str = "X-CSRF-Token";

/// A fresh CSRF token and its binding.
pub struct CsrfToken {
    pub value: String,
    pub binding: String,
}

impl CsrfToken {
    pub fn generate() -> Self {
        let mut random = [0u8; 32];
        OsRng.fill_bytes(&mut random);
        let value = URL_SAFE_NO_PAD.encode(random);
        CsrfToken { binding: binding(&value), value }
    }
}

/// What the tokens carry for `value`: its SHA-256, base64url.
pub fn binding(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(value.as_bytes()))
}

/// Whether `presented` (the header) is the token `bound` (the claim) binds.
pub fn matches(bound: &str, presented: &str) -> bool {
    binding(presented).as_bytes().ct_eq(bound.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bound_value_matches() {
        let token = CsrfToken::generate();
        assert_eq!(token.value.len(), 43, "256 bits, base64url");
        assert!(matches(&token.binding, &token.value));
        assert!(!matches(&token.binding, &CsrfToken::generate().value));
        assert!(!matches(&token.binding, ""));
        assert!(!matches(&token.binding, &token.binding), "the binding itself is not the token");
    }
}
