//! Verify [jwt-blocklist](../../README.md) access tokens in another service,
//! and refuse revoked ones within a second, without a network call per
//! request.
//!
//! A [`Verifier`] reads the service's metadata and public keys (JWKS), takes
//! a snapshot of its revocations and follows its revocation stream as a
//! registered client. [`Verifier::verify`] then checks a token locally,
//! exactly as the service does: signature, `iss`, exact `exp`/`nbf` with
//! leeway, `typ`, and the revocation set (revoked keys included).
//!
//! **It fails closed.** When no heartbeat or event has confirmed the set
//! current for more than a second (the service is down, the connection is
//! frozen, the feed lags), every token is refused with
//! [`VerifyError::NotCurrent`] (a resource server answers 503), until the
//! verifier is current again, which it becomes by itself.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use jwt_blocklist_verifier::{Config, Verifier};
//!
//! let config = Config::new("https://auth.example.com", "billing", "the client secret");
//! let verifier = Verifier::start(config).await?;
//! match verifier.verify_header(Some("Bearer eyJ…")).await {
//!     Ok(claims) => println!("user {} ({})", claims.user_id, claims.username),
//!     // The service's own code, status and RFC 6750 challenge.
//!     Err(refused) => println!("{} {}", refused.status(), refused.body()),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! With the `rocket` feature, [`rocket::Authenticated`] is a request guard;
//! with `tower`, [`tower::VerifyLayer`] guards an axum or hyper service.

pub mod checks;
mod error;
#[cfg(feature = "client")]
mod feed;
#[cfg(feature = "client")]
mod keys;
#[cfg(feature = "client")]
mod revocations;
#[cfg(feature = "client")]
mod token;
#[cfg(feature = "client")]
mod wire;

/// The verifier itself: everything that talks to the service.
#[cfg(feature = "client")]
mod client;

#[cfg(feature = "rocket")]
pub mod rocket;
#[cfg(feature = "tower")]
pub mod tower;

pub use checks::CACHE_CAPACITY;
#[cfg(feature = "client")]
pub use client::{Config, Verifier};
#[cfg(feature = "client")]
pub use error::StartError;
pub use error::{bearer, ErrorBody, VerifyError, REALM};
#[cfg(feature = "client")]
pub use revocations::Status;
#[cfg(feature = "client")]
pub use token::Claims;
