//! Request guards for access tokens. They compose, each adding one check:
//!
//! - [`VerifiedAccessToken`]: the token from `Authorization: Bearer` or,
//!   failing that, the `jbl_access` cookie (the header wins when both are
//!   there); signature and claims checked.
//! - [`AccessToken`]: builds on it; a cookie-authenticated POST, PUT, PATCH
//!   or DELETE must carry the session's CSRF token (403 otherwise), then the
//!   revocation check, failing closed (503) when the database cannot answer.
//!
//! Routes take [`AccessToken`], so none can skip CSRF or revocation.
//!
//! - [`Client`]: a resource server's credentials (`client_secret_basic`:
//!   HTTP Basic), checked against the clients this instance holds; any
//!   failure is 401 `invalid_client` with a Basic challenge.

use rocket::http::Method;
use rocket::outcome::{try_outcome, Outcome};
use rocket::request::{FromRequest, Request};

use super::jwt::{Claims, TokenType};
use super::{cookies, csrf, Auth};
use crate::db::{ClientRow, Store};
use crate::error::{fail, ApiError, GuardOutcome};

/// How a token came with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Bearer,
    Cookie,
}

/// An access token with a valid signature and claims; revocation NOT checked.
/// A building block: routes take [`AccessToken`].
pub struct VerifiedAccessToken(pub Claims, pub Via);

/// A valid access token whose `jti` and `sid` are not revoked (and, for a
/// cookie-authenticated unsafe request, whose CSRF token was presented).
pub struct AccessToken(pub Claims, pub Via);

/// The token of `Authorization: Bearer <token>`; the scheme name is matched
/// case-insensitively. An empty token or another scheme counts as none.
fn bearer<'r>(request: &'r Request<'_>) -> Option<&'r str> {
    let (scheme, token) = request.headers().get_one("Authorization")?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The token the request presents, and how.
fn presented<'r>(request: &'r Request<'_>) -> Option<(&'r str, Via)> {
    if let Some(token) = bearer(request) {
        return Some((token, Via::Bearer));
    }
    let cookie = request.cookies().get(cookies::ACCESS)?;
    (!cookie.value().is_empty()).then(|| (cookie.value(), Via::Cookie))
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for VerifiedAccessToken {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> GuardOutcome<Self> {
        let Some(auth) = request.rocket().state::<Auth>() else {
            return fail(request, ApiError::Internal);
        };
        let Some((token, via)) = presented(request) else {
            return fail(request, ApiError::MissingToken);
        };
        match auth.jwt.verify(token, TokenType::Access) {
            Ok(claims) => Outcome::Success(VerifiedAccessToken(claims, via)),
            Err(error) => fail(request, error),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AccessToken {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> GuardOutcome<Self> {
        let VerifiedAccessToken(claims, via) = try_outcome!(request.guard::<VerifiedAccessToken>().await);
        if via == Via::Cookie && is_unsafe(request.method()) {
            if let Err(error) = ensure_csrf(request, &claims) {
                return fail(request, error);
            }
        }
        let Some(store) = request.rocket().state::<Store>() else {
            return fail(request, ApiError::Internal);
        };
        match ensure_not_revoked(store, &claims).await {
            Ok(()) => {
                crate::request_log::note_user(request, claims.user_id.0);
                Outcome::Success(AccessToken(claims, via))
            }
            Err(error) => fail(request, error),
        }
    }
}

/// POST, PUT, PATCH and DELETE change things; GET, HEAD and OPTIONS must not.
pub fn is_unsafe(method: Method) -> bool {
    matches!(method, Method::Post | Method::Put | Method::Patch | Method::Delete)
}

/// The request's `X-CSRF-Token` must be the one the token's claim binds.
fn ensure_csrf(request: &Request<'_>, claims: &Claims) -> Result<(), ApiError> {
    check_csrf(claims, request.headers().get_one(csrf::HEADER))
}

/// `presented` (the `X-CSRF-Token` header) must be what the claim binds; a
/// token without the claim (a Bearer session's) matches nothing.
pub fn check_csrf(claims: &Claims, presented: Option<&str>) -> Result<(), ApiError> {
    match (claims.csrf.as_deref(), presented) {
        (Some(bound), Some(presented)) if csrf::matches(bound, presented) => Ok(()),
        _ => Err(ApiError::CsrfFailed),
    }
}

/// The `X-CSRF-Token` header, for routes that authenticate by a cookie other
/// than the access cookie (refresh).
pub struct CsrfHeader<'r>(pub Option<&'r str>);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for CsrfHeader<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> rocket::request::Outcome<Self, Self::Error> {
        Outcome::Success(CsrfHeader(request.headers().get_one(csrf::HEADER)))
    }
}

/// The revocation step: neither the token nor its session may be listed.
/// Any database failure is an error, never a pass.
pub async fn ensure_not_revoked(store: &Store, claims: &Claims) -> Result<(), ApiError> {
    if store.is_revoked(claims.sid, claims.jti, claims.kid.as_deref()).await? {
        Err(ApiError::TokenRevoked)
    } else {
        Ok(())
    }
}

/// A registered resource server, authenticated by HTTP Basic (RFC 6749
/// §2.3.1: `client_id:client_secret`, each form-urlencoded, in base64).
pub struct Client(pub ClientRow);

/// The client id and secret of `Authorization: Basic …`.
fn basic_credentials(request: &Request<'_>) -> Option<(String, String)> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let (scheme, encoded) = request.headers().get_one("Authorization")?.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let form_decoded =
        |text: &str| rocket::http::RawStr::new(text).url_decode().ok().map(|text| text.into_owned());
    Some((form_decoded(id)?, form_decoded(secret)?))
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Client {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> GuardOutcome<Self> {
        let (Some(auth), Some(store)) = (request.rocket().state::<Auth>(), request.rocket().state::<Store>())
        else {
            return fail(request, ApiError::Internal);
        };
        let credentials = store.credentials();
        let client = basic_credentials(request)
            .and_then(|(id, secret)| auth.clients.check(&credentials.clients, &id, &secret).cloned());
        match client {
            Some(client) => Outcome::Success(Client(client)),
            None => fail(request, ApiError::InvalidClient),
        }
    }
}
