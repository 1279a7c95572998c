//! Request guards for Bearer access tokens. They compose:
//! [`VerifiedAccessToken`] checks the header, signature and claims;
//! [`AccessToken`] builds on it and adds the revocation check, failing closed
//! (503) when the database cannot answer.

use rocket::outcome::{try_outcome, Outcome};
use rocket::request::{FromRequest, Request};
use rocket_db_pools::Database;

use super::jwt::{Claims, TokenType};
use super::Auth;
use crate::db::{Db, Store};
use crate::error::{fail, ApiError, GuardOutcome};

/// An access token with a valid signature and claims; revocation NOT checked.
/// A building block: routes take [`AccessToken`].
pub struct VerifiedAccessToken(pub Claims);

/// A valid access token whose `jti` and `sid` are not revoked.
pub struct AccessToken(pub Claims);

/// The token of `Authorization: Bearer <token>`; the scheme name is matched
/// case-insensitively. An empty token or another scheme counts as none.
fn bearer<'r>(request: &'r Request<'_>) -> Option<&'r str> {
    let (scheme, token) = request.headers().get_one("Authorization")?.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for VerifiedAccessToken {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> GuardOutcome<Self> {
        let Some(auth) = request.rocket().state::<Auth>() else {
            return fail(request, ApiError::Internal);
        };
        let Some(token) = bearer(request) else {
            return fail(request, ApiError::MissingToken);
        };
        match auth.jwt.verify(token, TokenType::Access) {
            Ok(claims) => Outcome::Success(VerifiedAccessToken(claims)),
            Err(error) => fail(request, error),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AccessToken {
    type Error = ApiError;

    async fn from_request(request: &'r Request<'_>) -> GuardOutcome<Self> {
        let VerifiedAccessToken(claims) = try_outcome!(request.guard::<VerifiedAccessToken>().await);
        let Some(db) = Db::fetch(request.rocket()) else {
            return fail(request, ApiError::Internal);
        };
        match ensure_not_revoked(db, &claims).await {
            Ok(()) => Outcome::Success(AccessToken(claims)),
            Err(error) => fail(request, error),
        }
    }
}

/// The revocation step: neither the token nor its session may be listed.
/// Any database failure is an error, never a pass.
pub async fn ensure_not_revoked(store: &Store, claims: &Claims) -> Result<(), ApiError> {
    if store.is_revoked(claims.jti, claims.sid).await? {
        Err(ApiError::TokenRevoked)
    } else {
        Ok(())
    }
}
