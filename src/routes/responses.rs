//! The error answers each route names in its OpenAPI entry: one reusable
//! response per status, [`ErrorBody`](crate::error::ErrorBody) with `error` narrowed to the codes that
//! status can carry (computed from [`ApiError`] itself), and the groups many
//! routes share. A leaf: route files import it, and it imports none of them.

use std::collections::BTreeMap;

use utoipa::openapi::{self, ContentBuilder, HeaderBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, ToResponse};

use crate::error::{ApiError, ErrorCode};

/// Which of a status's codes a response carries: all of them, or one.
enum Codes {
    /// Every code `status` can carry but `invalid_client`, which only the
    /// client-authenticated routes answer.
    OfStatus,
    Only(ErrorCode),
}

/// An error answer: [`ErrorBody`](crate::error::ErrorBody) as JSON, with the headers it carries.
/// The schema is `ErrorBody` with `error` narrowed to the codes it can carry
/// ([`ApiError::codes_for`], from the error type itself).
fn error_response(
    status: u16,
    codes: Codes,
    description: &str,
    headers: &[(&str, &str)],
) -> RefOr<openapi::Response> {
    use openapi::schema::{AllOfBuilder, ObjectBuilder, Type};
    let codes = match codes {
        Codes::OfStatus => {
            ApiError::codes_for(status).into_iter().filter(|code| *code != ErrorCode::InvalidClient).collect()
        }
        Codes::Only(code) => vec![code],
    };
    let codes = codes.into_iter().map(|code| serde_json::to_value(code).ok());
    let narrowed = ObjectBuilder::new()
        .property("error", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(codes.flatten())));
    let schema = AllOfBuilder::new().item(Ref::from_schema_name("ErrorBody")).item(narrowed);
    let body = ContentBuilder::new().schema(Some(schema)).build();
    let mut response = ResponseBuilder::new().description(description).content("application/json", body);
    for (name, meaning) in headers {
        let header = HeaderBuilder::new()
            .schema(Some(openapi::schema::Object::with_type(openapi::schema::Type::String)))
            .description(Some(*meaning))
            .build();
        response = response.header(*name, header);
    }
    RefOr::T(response.build())
}

/// One reusable error response per status, named in each route's
/// `responses(...)`.
macro_rules! error_responses {
    ($($name:ident($status:literal $(, $only:ident)?): $description:expr $(, $header:literal = $meaning:expr)*;)*) => {$(
        pub struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<openapi::Response>) {
                #[allow(unused_mut, unused_assignments)]
                let mut codes = Codes::OfStatus;
                $(codes = Codes::Only(ErrorCode::$only);)?
                (stringify!($name), error_response($status, codes, $description, &[$(($header, $meaning)),*]))
            }
        }
    )*};
}

error_responses! {
    BadRequest(400): "`invalid_request`: malformed JSON, a body that is not an object, a missing field, \
        or the wrong content type";
    Unauthorized(401): "`missing_token`, `invalid_token`, `token_expired`, `token_revoked`; \
        `invalid_credentials` for a failed login",
        "WWW-Authenticate" = "RFC 6750: `Bearer realm=\"jwt-blocklist\"` for `missing_token`, with \
            `error=\"invalid_token\", error_description=\"…\"` for the others";
    ClientUnauthorized(401, InvalidClient): "`invalid_client`: no client credentials (HTTP Basic), an \
        unknown client or a wrong secret, answered alike",
        "WWW-Authenticate" = "`Basic realm=\"jwt-blocklist\"`";
    Forbidden(403): "`csrf_failed`: a cookie-authenticated unsafe request without a matching \
        `X-CSRF-Token`; `invalid_credentials` for a wrong current password";
    NotFound(404): "`not_found`: no such session of the caller's (nothing is said about other users')";
    Conflict(409): "`username_taken`";
    PayloadTooLarge(413): "`payload_too_large`: the body is over 16 KiB";
    InvalidInput(422): "`invalid_input`: a field of the wrong JSON type or a value that breaks the rules";
    TooManyRequests(429): "`too_many_requests`: too many failed password checks (logins, password \
        changes) for this address and username",
        "Retry-After" = "Seconds until the window has passed";
    Unavailable(503): "`service_unavailable`: the database cannot be reached (fail closed), or the \
        password hashing queue is full",
        "Retry-After" = "Seconds to wait; sent when the hashing queue is full";
}

/// Groups of the responses above that many routes share, by what they take.
macro_rules! response_groups {
    ($($(#[$doc:meta])* $name:ident = [$($status:literal: $response:ident),*];)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
                [$(($status.to_owned(), RefOr::Ref(Ref::from_response_name(stringify!($response))))),*].into()
            }
        }
    )*};
}

response_groups! {
    /// A route behind an access token, safe method: the token refused, or
    /// its revocation status unknown (fail closed).
    AccessErrors = ["401": Unauthorized, "503": Unavailable];
    /// The same with an unsafe method, which by cookie needs `X-CSRF-Token`.
    UnsafeAccessErrors = ["401": Unauthorized, "403": Forbidden, "503": Unavailable];
    /// A JSON body: unreadable or missing a field, too large, or breaking
    /// the rules.
    BodyErrors = ["400": BadRequest, "413": PayloadTooLarge, "422": InvalidInput];
}
