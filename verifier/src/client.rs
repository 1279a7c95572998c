//! The verifier: the service's metadata and keys, the feed followed in the
//! background, and the verification of a token against them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::checks::{check_times, VerifiedCache};
use crate::keys::{self, Keys};
use crate::revocations::{Revocations, Status};
use crate::token::{self, Claims, KeyLookup};
use crate::{bearer, feed, StartError, VerifyError};
/// Where the service is and who this client is.
#[derive(Debug, Clone)]
pub struct Config {
    /// The service's `public_url`.
    pub url: String,
    pub client_id: String,
    pub client_secret: String,
    /// Clock skew allowed on `exp` and `nbf`: set it to the service's
    /// `leeway` (0 by default, as there).
    pub leeway: Duration,
    /// How long the revocation set may go unconfirmed before every token is
    /// refused: the contract's bound, 1 second.
    pub max_staleness: Duration,
    /// The most revocations held; past it, every token is refused until a
    /// snapshot fits again (as the service's `revocation_cache_capacity`).
    pub capacity: usize,
}

impl Config {
    pub fn new(
        url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Config {
            url: url.into().trim_end_matches('/').to_owned(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            leeway: Duration::ZERO,
            max_staleness: Duration::from_secs(1),
            capacity: 2_000_000,
        }
    }

    /// From `JBL_URL`, `JBL_CLIENT_ID`, `JBL_CLIENT_SECRET` (and optionally
    /// `JBL_LEEWAY`, seconds).
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        let mut config = Config::new(var("JBL_URL")?, var("JBL_CLIENT_ID")?, var("JBL_CLIENT_SECRET")?);
        if let Ok(leeway) = std::env::var("JBL_LEEWAY") {
            config.leeway =
                Duration::from_secs(leeway.parse().map_err(|_| "JBL_LEEWAY is not a number of seconds")?);
        }
        Ok(config)
    }
}

/// The endpoints the service's metadata names.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub(crate) jwks: String,
    pub(crate) feed: String,
    pub(crate) stream: String,
}

#[derive(Deserialize)]
struct Metadata {
    issuer: String,
    jwks_uri: String,
    revocation_feed_endpoint: String,
    revocation_stream_endpoint: String,
}

/// What the follower task and the verifier share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) http: reqwest::Client,
    pub(crate) issuer: String,
    pub(crate) endpoints: Endpoints,
    pub(crate) keys: Keys,
    /// Held by each fetch of the key set: a token whose key is unknown
    /// waits for a fetch already on its way rather than failing beside it.
    pub(crate) fetching: Arc<tokio::sync::Mutex<()>>,
    pub(crate) verified: VerifiedCache<Claims>,
    pub(crate) revocations: Revocations,
}

/// Verifies the service's access tokens; see the crate's documentation.
/// Cheap to clone; the follower stops when the last clone is dropped.
#[derive(Clone)]
pub struct Verifier {
    shared: Arc<Shared>,
    _follower: Arc<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn get(http: &reqwest::Client, url: &str) -> Result<reqwest::Response, StartError> {
    // Bounded: a token whose key is unknown waits for this fetch.
    let request = http.get(url).timeout(Duration::from_secs(10));
    let response =
        request.send().await.map_err(|source| StartError::Fetch { url: url.to_owned(), source })?;
    match response.status().is_success() {
        true => Ok(response),
        false => Err(StartError::Status { url: url.to_owned(), status: response.status().as_u16() }),
    }
}

/// Fetches the key set at `url`: its keys and `max-age`.
async fn fetch_keys(
    http: &reqwest::Client,
    url: &str,
) -> Result<(std::collections::HashMap<String, token::PublicKey>, Option<Duration>), StartError> {
    let response = get(http, url).await?;
    let max_age = keys::max_age(response.headers().get("cache-control").and_then(|v| v.to_str().ok()));
    let body = response.bytes().await.map_err(|source| StartError::Fetch { url: url.to_owned(), source })?;
    Ok((keys::parse(&body).map_err(StartError::Invalid)?, max_age))
}

impl Verifier {
    /// Reads the metadata and the keys, then follows the feed in the
    /// background (on the current tokio runtime). Tokens are refused as
    /// [`VerifyError::NotCurrent`] until the first snapshot is in
    /// ([`wait_until_current`](Self::wait_until_current) waits for it).
    pub async fn start(config: Config) -> Result<Verifier, StartError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|source| StartError::Fetch { url: config.url.clone(), source })?;
        let metadata_url = format!("{}/.well-known/oauth-authorization-server", config.url);
        let metadata: Metadata = get(&http, &metadata_url)
            .await?
            .json()
            .await
            .map_err(|source| StartError::Fetch { url: metadata_url.clone(), source })?;
        let (keys, max_age) = fetch_keys(&http, &metadata.jwks_uri).await?;
        let shared = Arc::new(Shared {
            revocations: Revocations::new(config.capacity, config.max_staleness),
            config,
            http,
            issuer: metadata.issuer,
            endpoints: Endpoints {
                jwks: metadata.jwks_uri,
                feed: metadata.revocation_feed_endpoint,
                stream: metadata.revocation_stream_endpoint,
            },
            keys: Keys::new(keys, max_age, Instant::now()),
            fetching: Arc::default(),
            verified: VerifiedCache::default(),
        });
        let follower = tokio::spawn(feed::follow(shared.clone()));
        Ok(Verifier { shared, _follower: Arc::new(AbortOnDrop(follower)) })
    }

    /// Waits until the revocation set is current, up to `timeout`; whether
    /// it is.
    pub async fn wait_until_current(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.status().current {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// A counter that moves each time the revocation set changes (an
    /// event or a snapshot applied): wait on it to react to revocations,
    /// as the benchmark does to time them.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.revocations.changes()
    }

    /// How current the revocation set is.
    pub fn status(&self) -> Status {
        self.shared.revocations.status(Instant::now())
    }

    /// [`verify`](Self::verify) for an `Authorization` header value
    /// (`Bearer <token>`).
    pub async fn verify_header(&self, authorization: Option<&str>) -> Result<Claims, VerifyError> {
        self.verify(bearer(authorization)?).await
    }

    /// Verifies an access token, then checks it against the revocation set.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let claims = self.verify_signature(token).await?;
        let leeway = self.shared.config.leeway.as_secs() as i64;
        check_times(claims.expires_at, claims.not_before, chrono::Utc::now().timestamp_micros(), leeway)?;
        self.shared.revocations.check(claims.jti, claims.sid, &claims.kid, Instant::now())?;
        Ok(claims)
    }

    async fn verify_signature(&self, token: &str) -> Result<Claims, VerifyError> {
        let shared = &self.shared;
        self.refresh_keys();
        for attempt in 0..2 {
            let version = shared.keys.version();
            if let Some(claims) = shared.verified.get(token, version) {
                return Ok(claims);
            }
            let verified = {
                let set = shared.keys.set.read().map_err(|_| VerifyError::NotCurrent)?;
                token::verify_signed(token, &shared.issuer, |kid| match set.keys.get(kid) {
                    Some(key) => KeyLookup::Found(key),
                    None => KeyLookup::Unknown,
                })?
            };
            match verified {
                Some(claims) => {
                    shared.verified.insert(token, version, &claims);
                    return Ok(claims);
                }
                // A key we do not know: perhaps a new one. Wait for a fetch
                // on its way, or fetch (at most once a second), then look
                // again, once.
                None if attempt == 0 => {
                    let _fetching = shared.fetching.lock().await;
                    if shared.keys.version() == version && shared.keys.claim_fetch(Instant::now(), true) {
                        fetch_into(shared).await;
                    }
                }
                None => break,
            }
        }
        Err(VerifyError::invalid("Token key is not known"))
    }

    /// Fetches the key set in the background once its `max-age` has passed.
    fn refresh_keys(&self) {
        // On every request: a read of the expiry, nothing more, until due.
        if !self.shared.keys.is_expired(Instant::now()) {
            return;
        }
        // Held from the claim on, so a token that finds its key unknown
        // meanwhile waits for this fetch.
        let Ok(fetching) = self.shared.fetching.clone().try_lock_owned() else { return };
        if self.shared.keys.claim_fetch(Instant::now(), false) {
            let shared = self.shared.clone();
            tokio::spawn(async move {
                let _fetching = fetching;
                fetch_into(&shared).await;
            });
        }
    }
}

/// Fetches the key set into `shared` (the caller holds `fetching`).
async fn fetch_into(shared: &Shared) {
    match fetch_keys(&shared.http, &shared.endpoints.jwks).await {
        Ok((keys, max_age)) => shared.keys.replace(keys, max_age, Instant::now()),
        Err(error) => log::warn!("cannot fetch the service's keys: {error}"),
    }
}
