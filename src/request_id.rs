//! Request ids: an `X-Request-Id` that arrives is kept (if it is a sane
//! token: 1-128 characters of `A-Za-z0-9._-`, so nothing a client sends can
//! forge log structure), otherwise one is made (a UUID); every response
//! carries it, errors included, so a client can quote it to an operator.

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::Header;
use rocket::{Data, Request, Response};
use uuid::Uuid;

pub const HEADER: &str = "X-Request-Id";

/// The request's id, once the fairing has seen it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub struct RequestIds;

fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A new id: a random UUID, encoded straight into its string (no
/// formatting machinery on every request).
fn made() -> String {
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    Uuid::new_v4().hyphenated().encode_lower(&mut text).to_owned()
}

impl RequestId {
    /// The id of `request`: the one it brought, or one made for it.
    pub fn of<'r>(request: &'r Request<'_>) -> &'r RequestId {
        request.local_cache(|| {
            let brought = request.headers().get_one(HEADER).filter(|id| acceptable(id));
            RequestId(brought.map_or_else(made, str::to_owned))
        })
    }
}

#[rocket::async_trait]
impl Fairing for RequestIds {
    fn info(&self) -> Info {
        Info { name: "Request ids (X-Request-Id)", kind: Kind::Request | Kind::Response }
    }

    async fn on_request(&self, request: &mut Request<'_>, _: &mut Data<'_>) {
        RequestId::of(request);
    }

    async fn on_response<'r>(&self, request: &'r Request<'_>, response: &mut Response<'r>) {
        // Borrowed from the request, which outlives its response: no copy.
        response.set_header(Header::new(HEADER, RequestId::of(request).0.as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::acceptable;

    #[test]
    fn only_plain_tokens_are_kept() {
        assert!(acceptable("3f0c1e9a-5b7d-4c1e-9a3f-2b6d8e0f1a2c"));
        assert!(acceptable("req_42.a"));
        for bad in ["", "a b", "x\ny", "{\"json\":1}", &"a".repeat(129)] {
            assert!(!acceptable(bad), "{bad:?}");
        }
    }
}
