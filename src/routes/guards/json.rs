//! The JSON body data guard. It draws the contract's lines that Rocket's
//! `Json<T>` and serde draw differently: wrong content type, malformed JSON, a
//! body that is not an object, or a missing field is 400 `invalid_request`; a
//! field of the wrong JSON type is 422 `invalid_input`; a body over
//! [`BODY_LIMIT`] is 413, before anything is parsed or hashed.

use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::outcome::Outcome;
use rocket::request::Request;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{fail, ApiError};

/// Room for the longest legal password (1024 bytes) even fully \u-escaped,
/// and far below anything that could hurt.
pub const BODY_LIMIT_KIB: u64 = 16;

/// A request body: its type, and the fields that must be present.
pub trait RequestBody: DeserializeOwned {
    const FIELDS: &'static [&'static str];
}

/// A JSON object body parsed into `T` under the contract's error rules.
pub struct JsonBody<T>(pub T);

/// A JSON body that may be left out: an empty body (whatever its content
/// type) is `None`; any other follows [`JsonBody`]'s rules.
pub struct OptionalJsonBody<T>(pub Option<T>);

#[rocket::async_trait]
impl<'r, T: RequestBody> FromData<'r> for JsonBody<T> {
    type Error = ApiError;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        match parse(request, data).await {
            Ok(body) => Outcome::Success(JsonBody(body)),
            Err(error) => fail(request, error),
        }
    }
}

#[rocket::async_trait]
impl<'r, T: RequestBody> FromData<'r> for OptionalJsonBody<T> {
    type Error = ApiError;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let body = match read(data).await {
            Ok(bytes) if bytes.is_empty() => Ok(None),
            Ok(bytes) => ensure_json(request).and_then(|()| decode(&bytes)).map(Some),
            Err(error) => Err(error),
        };
        match body {
            Ok(body) => Outcome::Success(OptionalJsonBody(body)),
            Err(error) => fail(request, error),
        }
    }
}

async fn parse<T: RequestBody>(request: &Request<'_>, data: Data<'_>) -> Result<T, ApiError> {
    ensure_json(request)?;
    decode(&read(data).await?)
}

fn ensure_json(request: &Request<'_>) -> Result<(), ApiError> {
    if request.content_type().is_some_and(|ct| ct.is_json()) {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest("Content-Type must be application/json".into()))
    }
}

/// The body, up to the limit (413 beyond it); the form guard reads with it
/// too.
pub(super) async fn read(data: Data<'_>) -> Result<Vec<u8>, ApiError> {
    let bytes = data
        .open(BODY_LIMIT_KIB.kibibytes())
        .into_bytes()
        .await
        .map_err(|_| ApiError::InvalidRequest("The request body could not be read".into()))?;
    if !bytes.is_complete() {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(bytes.into_inner())
}

fn decode<T: RequestBody>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::InvalidRequest(format!("Malformed JSON: {e}")))?;
    let Value::Object(fields) = &value else {
        return Err(ApiError::InvalidRequest("The body must be a JSON object".into()));
    };
    if let Some(missing) = T::FIELDS.iter().find(|name| !fields.contains_key(**name)) {
        return Err(ApiError::InvalidRequest(format!("Missing field `{missing}`")));
    }
    serde_path_to_error::deserialize(value).map_err(|error| ApiError::InvalidInput(invalid_field(&error)))
}

/// What is wrong with a field, naming the field and what it should be, never
/// what was sent: serde's message quotes the value ("invalid type: integer
/// `12345678`, expected a string"), and a password sent as a number must not
/// reach the answer or the log. The part after "expected" comes from the
/// body's own type (a type name, or its variants' names).
fn invalid_field(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let field = error.path().to_string();
    let message = error.inner().to_string();
    match message.rsplit_once("expected ") {
        Some((_, expected)) => format!("Invalid field `{field}`: expected {expected}"),
        None => format!("Invalid field `{field}`"),
    }
}
