//! Password hashing with argon2id at OWASP's parameters (m = 19 MiB, t = 2,
//! p = 1). Hashing runs on [`Hashers`]: never on the async workers, on fewer
//! threads than there are cores, at a lower CPU priority, so a burst of
//! logins cannot starve the other routes.
//!
//! Memory: argon2's 19 MiB of working memory is allocated once per hashing
//! thread and reused, not allocated per hash. (Per hash, the allocator kept
//! the freed 19 MiB in whichever thread's arena ran it: measured, a login
//! storm left the process 370 MB larger.)
//!
//! Load shedding: every hash needs a [`HashTicket`], a place in the
//! [`HashQueue`] (`hash_queue` places, waiting or hashing, at most a share of
//! them per client). When none is free the next request gets 503 at once
//! rather than a place in an ever longer queue; a waiting one costs a few KiB.

use std::net::IpAddr;
use std::sync::Arc;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::hash_queue::{Full, HashQueue, Place};
use super::hashers::Hashers;
use crate::error::ApiError;
use crate::logging::warn_repeated;

/// OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;
/// Length of the hash output, bytes (the argon2 crate's default).
const OUTPUT_LEN: usize = 32;

#[derive(Clone)]
pub struct Passwords {
    /// A real hash of a random password, verified against when the user does
    /// not exist, so unknown users cost the same as wrong passwords.
    dummy_hash: Arc<str>,
    /// The hashing threads: fewer than the cores.
    hashers: Arc<Hashers>,
    /// Tickets: requests waiting for a hash or hashing (`hash_queue`).
    queue: Arc<HashQueue>,
}

/// A place in the hashing queue, held for the whole login, registration or
/// password change; the only way to hash or verify.
pub struct HashTicket {
    passwords: Passwords,
    _place: Place,
}

fn params() -> Params {
    Params::new(MEMORY_KIB, ITERATIONS, LANES, Some(OUTPUT_LEN)).expect("valid argon2 parameters")
}

fn internal(what: &'static str) -> impl Fn(argon2::password_hash::Error) -> ApiError {
    move |error| {
        log::error!("{what}: {error}");
        ApiError::Internal
    }
}

/// A new PHC string for `password`, computed in `memory`.
fn hash_with(password: &[u8], memory: &mut [Block]) -> Result<String, ApiError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(internal("cannot read a fresh salt"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
    let output = Output::init_with(OUTPUT_LEN, |out| {
        argon2.hash_password_into_with_memory(password, raw_salt, out, &mut *memory).map_err(Into::into)
    })
    .map_err(internal("cannot hash a password"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params()).map_err(internal("cannot encode argon2 parameters"))?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `stored`, computed in `memory`
/// when the stored parameters fit in it (they do for every hash this service
/// made). The comparison is constant-time (`Output`'s equality).
fn verify_with(password: &[u8], stored: &str, memory: &mut [Block]) -> Result<bool, ApiError> {
    let unreadable = internal("stored password hash is unreadable");
    let parsed = PasswordHash::new(stored).map_err(&unreadable)?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(&unreadable)?;
    let version = parsed.version.map(Version::try_from).transpose().map_err(|e| unreadable(e.into()))?;
    let version = version.unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(&unreadable)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(unreadable(argon2::password_hash::Error::PhcStringField));
    };
    let mut salt_bytes = [0u8; 64];
    let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(&unreadable)?;
    let mut larger = Vec::new();
    let memory = if params.block_count() <= memory.len() {
        memory
    } else {
        larger.resize(params.block_count(), Block::default());
        &mut larger[..]
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let output = Output::init_with(expected.len(), |out| {
        argon2.hash_password_into_with_memory(password, raw_salt, out, &mut *memory).map_err(Into::into)
    })
    .map_err(internal("cannot verify a password"))?;
    Ok(output == expected)
}

impl Passwords {
    /// Builds the hasher with room for `queue` tickets; computes the dummy
    /// hash once, off the async workers.
    pub async fn new(queue: usize) -> Result<Self, ApiError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let hashers =
            Hashers::start(cores.saturating_sub(1).max(1), params().block_count()).map_err(|e| {
                log::error!("cannot start the password hashing threads: {e}");
                ApiError::Internal
            })?;
        let mut random = [0u8; 32];
        OsRng.fill_bytes(&mut random);
        let queue = HashQueue::new(queue);
        let dummy = Passwords { dummy_hash: Arc::from(""), hashers: Arc::new(hashers), queue };
        let dummy_hash = dummy.on_hasher(move |memory| hash_with(&random, memory)).await?;
        Ok(Passwords { dummy_hash: Arc::from(dummy_hash), ..dummy })
    }

    /// A place in the hashing queue for `client`, or [`ApiError::Busy`] at
    /// once when the queue is full or the client holds its share of it.
    pub fn ticket(&self, client: Option<IpAddr>) -> Result<HashTicket, ApiError> {
        match self.queue.take(client) {
            Ok(place) => Ok(HashTicket { passwords: self.clone(), _place: place }),
            Err(Full::Queue) => {
                warn_repeated!("password hashing queue full: request shed");
                Err(ApiError::Busy)
            }
            Err(Full::ClientShare) => {
                warn_repeated!(
                    "a client holds its share of the password hashing queue ({}): request shed",
                    self.queue.per_client()
                );
                Err(ApiError::Busy)
            }
        }
    }

    /// Hashes waiting for a hashing thread right now.
    pub fn queued_hashes(&self) -> usize {
        self.hashers.queued()
    }

    /// Test hook: holds every hashing thread busy until the guard is
    /// dropped (see [`Hashers::hold`]).
    #[cfg(feature = "test-hooks")]
    pub async fn hold_hashing(&self) -> super::hashers::Held {
        self.hashers.hold().await
    }

    /// Runs `work` on a hashing thread with its workspace.
    async fn on_hasher<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut [Block]) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.hashers.run(work).await.unwrap_or_else(|| {
            log::error!("password hashing failed: the job panicked or the threads are gone");
            Err(ApiError::Internal)
        })
    }
}

impl HashTicket {
    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: impl Into<Vec<u8>>) -> Result<String, ApiError> {
        let password = password.into();
        self.passwords.on_hasher(move |memory| hash_with(&password, memory)).await
    }

    /// Checks `password` against `hash`, or against the dummy hash when there
    /// is no user (always false then), so both cases take the same time.
    pub async fn verify(&self, password: impl Into<Vec<u8>>, hash: Option<&str>) -> Result<bool, ApiError> {
        let password = password.into();
        let known = hash.is_some();
        let stored: Arc<str> = hash.map_or_else(|| self.passwords.dummy_hash.clone(), Arc::from);
        let matched = self.passwords.on_hasher(move |memory| verify_with(&password, &stored, memory)).await?;
        Ok(matched && known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_made_here_verifies_with_the_argon2_crate_and_back() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let mut memory = vec![Block::default(); params().block_count()];
        let ours = hash_with(b"correct horse", &mut memory).unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params());
        assert!(reference.verify_password(b"correct horse", &PasswordHash::new(&ours).unwrap()).is_ok());
        assert!(reference.verify_password(b"wrong horse", &PasswordHash::new(&ours).unwrap()).is_err());

        let salt = SaltString::generate(&mut OsRng);
        let theirs = reference.hash_password(b"correct horse", &salt).unwrap();
        assert!(verify_with(b"correct horse", &theirs.to_string(), &mut memory).unwrap());
        assert!(!verify_with(b"wrong horse", &theirs.to_string(), &mut memory).unwrap());
        // Parameters larger than the workspace (an older, costlier hash) still verify.
        let costlier = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(MEMORY_KIB * 2, 1, 1, None).unwrap(),
        );
        let old = costlier.hash_password(b"pw", &SaltString::generate(&mut OsRng)).unwrap().to_string();
        assert!(verify_with(b"pw", &old, &mut memory).unwrap());
    }
}
