//! `GET /`: the demo page (`demo.html`, compiled into the binary), a person's
//! way to try the cookie transport after `cargo run`.
//!
//! The page is self-contained (no external script, style or font) and is
//! served with a Content-Security-Policy that admits exactly its own inline
//! script and style, by hash, and lets it talk to this origin only.

use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rocket::http::Header;
use rocket::response::content::RawHtml;
use rocket::{get, routes, Responder, Route};
use sha2::{Digest, Sha256};
use utoipa::OpenApi;

pub fn routes() -> Vec<Route> {
    routes![demo]
}

/// This module's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(demo))]
pub(crate) struct Doc;

const PAGE: &str = include_str!("demo.html");

/// CSP: the page's inline `<script>` and `<style>` by their SHA-256.
static POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; img-src 'self'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        inline_hash("script"),
        inline_hash("style")
    )
});

/// `sha256-…` of the text inside the page's one `<tag>…</tag>`.
fn inline_hash(tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = PAGE.find(&open).map_or(0, |at| at + open.len());
    let end = PAGE[start..].find(&close).map_or(start, |at| start + at);
    format!("sha256-{}", STANDARD.encode(Sha256::digest(&PAGE.as_bytes()[start..end])))
}

#[derive(Responder)]
pub struct Page {
    html: RawHtml<&'static str>,
    policy: Header<'static>,
    referrer: Header<'static>,
}

/// The demo page: register, log in by cookie, sessions, refresh, log out.
#[utoipa::path(
    summary = "The demo page",
    tag = "browser",
    responses((status = 200, description = "A self-contained HTML page", content_type = "text/html", body = String))
)]
#[get("/")]
fn demo() -> Page {
    Page {
        html: RawHtml(PAGE),
        policy: Header::new("Content-Security-Policy", POLICY.as_str()),
        referrer: Header::new("Referrer-Policy", "no-referrer"),
    }
}
