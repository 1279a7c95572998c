//! The cookie transport: the three cookies of a cookie session, with exactly
//! the contract's names and attributes. `Secure` is set explicitly (Rocket
//! adds it only when it terminates TLS itself), and removal uses each
//! cookie's own path, which is what makes a browser drop it.

use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::time::Duration;

use crate::config::AppConfig;

/// The access token; sent with every request to this origin.
pub const ACCESS: &str = "jbl_access";
/// The refresh token; sent only to `/auth/*`.
pub const REFRESH: &str = "jbl_refresh";
/// The CSRF token; the one cookie scripts may read.
pub const CSRF: &str = "jbl_csrf";

/// What a cookie session's answer sets.
pub struct SessionCookies<'a> {
    pub access: &'a str,
    pub refresh: &'a str,
    pub csrf: &'a str,
    pub expires_in: u64,
    pub refresh_expires_in: u64,
}

/// A cookie's name, path and whether it is HttpOnly.
type Kind = (&'static str, &'static str, bool);
const ACCESS_COOKIE: Kind = (ACCESS, "/", true);
const REFRESH_COOKIE: Kind = (REFRESH, "/auth", true);
const CSRF_COOKIE: Kind = (CSRF, "/", false);

fn cookie(config: &AppConfig, (name, path, http_only): Kind, value: &str, max_age: u64) -> Cookie<'static> {
    Cookie::build((name, value.to_owned()))
        .path(path)
        .http_only(http_only)
        .same_site(SameSite::Strict)
        .secure(config.cookie_secure)
        .max_age(Duration::seconds(i64::try_from(max_age).unwrap_or(i64::MAX)))
        .build()
}

/// Sets the three cookies of a cookie session.
pub fn set(jar: &CookieJar<'_>, config: &AppConfig, session: &SessionCookies<'_>) {
    jar.add(cookie(config, ACCESS_COOKIE, session.access, session.expires_in));
    jar.add(cookie(config, REFRESH_COOKIE, session.refresh, session.refresh_expires_in));
    jar.add(cookie(config, CSRF_COOKIE, session.csrf, session.refresh_expires_in));
}

/// Clears the three cookies (`Max-Age=0`, each on its own path).
pub fn clear(jar: &CookieJar<'_>, config: &AppConfig) {
    for kind in [ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE] {
        jar.remove(cookie(config, kind, "", 0));
    }
}
