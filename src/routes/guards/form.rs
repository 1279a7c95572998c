//! The form body data guard, for `POST /auth/revoke` (RFC 7009 speaks
//! `application/x-www-form-urlencoded`). Any other content type is 400
//! `invalid_request`, a body over the limit 413, a parameter the route reads
//! given twice 400 (RFC 6749 §3.1; others are ignored, as unknown ones are);
//! the fields are kept as decoded name/value pairs.

use rocket::data::{self, Data, FromData};
use rocket::http::{ContentType, RawStr};
use rocket::outcome::Outcome;
use rocket::request::Request;

use super::json;
use crate::error::{fail, ApiError};

/// A form body's fields.
pub struct FormBody(Vec<(String, String)>);

impl FormBody {
    /// The field's value; 400 `invalid_request` when it is missing, empty
    /// or given twice.
    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.optional(name)?
            .filter(|value| !value.is_empty())
            .ok_or_else(|| ApiError::InvalidRequest(format!("Missing field `{name}`")))
    }

    /// The field's value, if it was sent; 400 `invalid_request` when it was
    /// sent twice.
    pub fn optional(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.0.iter().filter(|(field, _)| field == name).map(|(_, value)| value.as_str());
        match (values.next(), values.next()) {
            (_, Some(_)) => Err(ApiError::InvalidRequest(format!("Field `{name}` is given more than once"))),
            (value, None) => Ok(value),
        }
    }
}

#[rocket::async_trait]
impl<'r> FromData<'r> for FormBody {
    type Error = ApiError;

    async fn from_data(request: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        match parse(request, data).await {
            Ok(fields) => Outcome::Success(FormBody(fields)),
            Err(error) => fail(request, error),
        }
    }
}

async fn parse(request: &Request<'_>, data: Data<'_>) -> Result<Vec<(String, String)>, ApiError> {
    if request.content_type() != Some(&ContentType::Form) {
        return Err(ApiError::InvalidRequest(
            "Content-Type must be application/x-www-form-urlencoded".into(),
        ));
    }
    let body = String::from_utf8(json::read(data).await?)
        .map_err(|_| ApiError::InvalidRequest("The request body is not UTF-8 text".into()))?;
    let mut fields: Vec<(String, String)> = Vec::new();
    for pair in body.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str| {
            RawStr::new(text)
                .url_decode()
                .map(|decoded| decoded.into_owned())
                .map_err(|_| ApiError::InvalidRequest("The form is not valid UTF-8 once decoded".into()))
        };
        fields.push((decode(name)?, decode(value)?));
    }
    Ok(fields)
}
