//! The [`ClientDevice`] request guard: where a request comes from, as a
//! session records it at login and login throttling counts it.

use std::convert::Infallible;

use rocket::request::{FromRequest, Outcome, Request};

use crate::db::{Device, USER_AGENT_MAX_CHARS};

/// The client address (the TCP peer, or `ip_header` if an operator set it)
/// and the `User-Agent` header cut to [`USER_AGENT_MAX_CHARS`] characters.
pub struct ClientDevice(pub Device);

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientDevice {
    type Error = Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Infallible> {
        let user_agent = request
            .headers()
            .get_one("User-Agent")
            .map(|agent| agent.trim().chars().take(USER_AGENT_MAX_CHARS).collect::<String>())
            .filter(|agent| !agent.is_empty());
        Outcome::Success(ClientDevice(Device { user_agent, ip: request.client_ip() }))
    }
}
