//! Accounts: `POST /auth/register` (shed when the hashing queue is full)
//! and `GET /auth/me`.

use chrono::{SubsecRound, Utc};
use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, post, routes, Route, State};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use super::bodies::{is_valid_username, rfc3339, validate_password};
use super::guards::device::ClientDevice;
use super::guards::json::{JsonBody, RequestBody};
use super::responses::{AccessErrors, BodyErrors, Conflict, Unavailable};
use crate::auth::guard::AccessToken;
use crate::auth::Auth;
use crate::db::{Store, User, UserId};
use crate::error::ApiError;

pub fn routes() -> Vec<Route> {
    routes![register, me]
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(register, me))]
pub(crate) struct Doc;

#[derive(Deserialize, ToSchema)]
struct Credentials {
    /// Unique case-insensitively.
    #[schema(min_length = 3, max_length = 32, pattern = "^[A-Za-z0-9_.-]{3,32}$", example = "alice")]
    username: String,
    /// 8 to 1024 bytes of UTF-8.
    #[schema(min_length = 8, max_length = 1024, example = "correct horse battery staple")]
    password: String,
}

impl RequestBody for Credentials {
    const FIELDS: &'static [&'static str] = &["username", "password"];
}

#[derive(Serialize, ToSchema)]
struct UserView {
    id: Uuid,
    username: String,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView { id: user.id.0, username: user.username.clone(), created_at: rfc3339(user.created_at) }
    }
}

fn validate_registration(username: &str, password: &str) -> Result<(), ApiError> {
    if !is_valid_username(username) {
        return Err(ApiError::InvalidInput(
            "username must be 3-32 characters of letters, digits, '_', '.' or '-'".into(),
        ));
    }
    validate_password(password, "password")
}

#[utoipa::path(
    summary = "Register a user",
    context_path = "/auth",
    tag = "tokens",
    request_body = Credentials,
    responses(
        (status = 201, description = "Registered", body = UserView),
        BodyErrors,
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
#[post("/register", data = "<body>")]
async fn register(
    body: JsonBody<Credentials>,
    device: ClientDevice,
    store: &State<Store>,
    auth: &State<Auth>,
) -> Result<(Status, Json<UserView>), ApiError> {
    let Credentials { username, password } = body.0;
    validate_registration(&username, &password)?;
    let ticket = auth.passwords.ticket(device.0.ip)?;
    // Cheap early answer; the unique index still decides races.
    if store.user_by_username(&username).await?.is_some() {
        return Err(ApiError::UsernameTaken);
    }
    let user = User {
        id: UserId::new_v4(),
        username,
        password_hash: ticket.hash(password).await?,
        created_at: Utc::now().trunc_subsecs(6),
        session_generation: 0,
    };
    drop(ticket);
    store.insert_user(&user).await?;
    Ok((Status::Created, Json(UserView::from(&user))))
}

#[utoipa::path(
    summary = "Who am I",
    context_path = "/auth",
    tag = "tokens",
    security(("bearer" = []), ("cookie" = [])),
    responses(
        (status = 200, description = "The caller", body = UserView),
        AccessErrors,
    )
)]
#[get("/me")]
async fn me(token: AccessToken, store: &State<Store>) -> Result<Json<UserView>, ApiError> {
    let user = store
        .user_by_id(token.0.user_id)
        .await?
        .ok_or_else(|| ApiError::invalid_token("The token's user no longer exists"))?;
    Ok(Json(UserView::from(&user)))
}
