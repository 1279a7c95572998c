//! Ending tokens and sessions from the client's side: `POST /auth/logout`
//! (with `scope=local|others|global`), `POST /auth/logout-all`, and
//! `POST /auth/revoke` (RFC 7009, by possession of the token).

use rocket::http::CookieJar;
use rocket::serde::json::{json, Json, Value};
use rocket::{post, routes, Route, State};

use super::form::FormBody;
use crate::auth::guard::{AccessToken, Via};
use crate::auth::jwt::{Claims, TokenType};
use crate::auth::{cookies, Auth};
use crate::db::{Db, Presented, Reason, Revocation, SessionSweep};
use crate::error::ApiError;

pub fn routes() -> Vec<Route> {
    routes![logout, logout_all, revoke]
}

/// `local` (the default): this token and its session. `others`: every other
/// session of the user. `global`: every session, as logout-all. An unknown
/// scope is 422 and revokes nothing. When the caller's own session ends and
/// it came by cookie, the cookies are cleared.
#[post("/logout?<scope>")]
async fn logout(
    token: AccessToken,
    scope: Option<&str>,
    jar: &CookieJar<'_>,
    db: &Db,
    auth: &State<Auth>,
) -> Result<Json<Value>, ApiError> {
    let AccessToken(claims, via) = token;
    let answer = logout_scoped(scope.unwrap_or("local"), &claims, db).await?;
    if via == Via::Cookie && scope != Some("others") {
        cookies::clear(jar, &auth.config);
    }
    Ok(answer)
}

async fn logout_scoped(scope: &str, claims: &Claims, db: &Db) -> Result<Json<Value>, ApiError> {
    match scope {
        "local" => {
            let revocation = Revocation {
                jti: claims.jti,
                expires_at: claims.expires_at,
                user_id: Some(claims.user_id),
                reason: Reason::Logout,
            };
            db.revoke_token_and_session(&revocation, claims.sid, claims.expires_at).await?;
            Ok(Json(json!({ "message": "Successfully logged out" })))
        }
        "others" => {
            let revoked = sweep(db, claims, Some(claims.sid), Reason::LogoutOthers).await?;
            Ok(Json(json!({
                "message": "Successfully logged out of all other sessions",
                "revoked_sessions": revoked,
            })))
        }
        "global" => logout_everywhere(db, claims).await,
        _ => Err(ApiError::InvalidInput("scope must be local, others or global".into())),
    }
}

#[post("/logout-all")]
async fn logout_all(
    token: AccessToken,
    jar: &CookieJar<'_>,
    db: &Db,
    auth: &State<Auth>,
) -> Result<Json<Value>, ApiError> {
    let answer = logout_everywhere(db, &token.0).await?;
    if token.1 == Via::Cookie {
        cookies::clear(jar, &auth.config);
    }
    Ok(answer)
}

async fn logout_everywhere(db: &Db, claims: &Claims) -> Result<Json<Value>, ApiError> {
    let revoked = sweep(db, claims, None, Reason::LogoutAll).await?;
    Ok(Json(json!({
        "message": "Successfully logged out of all sessions",
        "revoked_sessions": revoked,
    })))
}

/// Ends every live session of the token's user but `keep`; returns how many.
async fn sweep(db: &Db, claims: &Claims, keep: Option<uuid::Uuid>, reason: Reason) -> Result<u64, ApiError> {
    let sweep = SessionSweep { user_id: claims.user_id, keep, reason, new_password_hash: None };
    Ok(db.sweep_sessions(&sweep).await?)
}

/// RFC 7009 token revocation. Whoever holds a token may revoke it: an access
/// token's `jti`, or a refresh token's whole session. A token that is not a
/// valid live one (malformed, badly signed, expired, already revoked or used
/// up) is answered 200 as well and changes nothing, as §2.2 asks, so the
/// answer tells nothing about the token. `token_type_hint` is only a hint
/// (§2.1): the token's own `type` claim decides, and an unknown hint is
/// ignored.
#[post("/revoke", data = "<form>")]
async fn revoke(form: FormBody, db: &Db, auth: &State<Auth>) -> Result<(), ApiError> {
    let token = form.required("token")?;
    let Ok(claims) = auth.jwt.verify_any(token) else {
        return Ok(());
    };
    let presented = match claims.token_type {
        TokenType::Access => Presented::Access {
            jti: claims.jti,
            sid: claims.sid,
            user_id: claims.user_id,
            expires_at: claims.expires_at,
        },
        TokenType::Refresh => {
            Presented::Refresh { jti: claims.jti, sid: claims.sid, user_id: claims.user_id }
        }
    };
    db.revoke_presented(&presented).await?;
    Ok(())
}
