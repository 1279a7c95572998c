//! Password hashing with argon2id at OWASP's parameters (m = 19 MiB, t = 2,
//! p = 1). Hashing runs on the blocking pool, never on the async workers, and
//! a semaphore keeps it to fewer threads than there are cores so a burst of
//! logins cannot starve the other routes.
//!
//! Load shedding: every hash needs a [`HashTicket`], and at most `hash_queue`
//! tickets are out at once (waiting or hashing). When they are all taken the
//! next request gets 503 at once rather than a place in an ever longer queue;
//! that also bounds the memory a login storm can take (19 MiB per running
//! hash, a few KiB per waiting one).

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rocket::tokio::sync::{OwnedSemaphorePermit, Semaphore};
use rocket::tokio::task;

use crate::error::ApiError;

/// OWASP Password Storage Cheat Sheet: argon2id, 19 MiB, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

#[derive(Clone)]
pub struct Passwords {
    /// A real hash of a random password, verified against when the user does
    /// not exist, so unknown users cost the same as wrong passwords.
    dummy_hash: Arc<str>,
    /// Hashes running at once: fewer than the cores.
    permits: Arc<Semaphore>,
    /// Tickets: requests waiting for a hash or hashing (`hash_queue`).
    queue: Arc<Semaphore>,
}

/// A place in the hashing queue, held for the whole login, registration or
/// password change; the only way to hash or verify.
pub struct HashTicket {
    passwords: Passwords,
    _place: OwnedSemaphorePermit,
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl Passwords {
    /// Builds the hasher with room for `queue` tickets; computes the dummy
    /// hash once, off the async workers.
    pub async fn new(queue: usize) -> Result<Self, ApiError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let permits = Arc::new(Semaphore::new(cores.saturating_sub(1).max(1)));
        let mut random = [0u8; 32];
        argon2::password_hash::rand_core::RngCore::fill_bytes(&mut OsRng, &mut random);
        let queue = Arc::new(Semaphore::new(queue));
        let dummy = Passwords { dummy_hash: Arc::from(""), permits, queue };
        let dummy_hash = dummy.hash(random.to_vec()).await?;
        Ok(Passwords { dummy_hash: Arc::from(dummy_hash), ..dummy })
    }

    /// A place in the hashing queue, or [`ApiError::Busy`] at once when it
    /// is full.
    pub fn ticket(&self) -> Result<HashTicket, ApiError> {
        match self.queue.clone().try_acquire_owned() {
            Ok(place) => Ok(HashTicket { passwords: self.clone(), _place: place }),
            Err(_) => {
                log::warn!("password hashing queue full: request shed");
                Err(ApiError::Busy)
            }
        }
    }

    async fn hash(&self, password: impl Into<Vec<u8>>) -> Result<String, ApiError> {
        let password = password.into();
        self.blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2().hash_password(&password, &salt).map(|hash| hash.to_string()).map_err(|e| {
                log::error!("cannot hash a password: {e}");
                ApiError::Internal
            })
        })
        .await
    }

    async fn verify(&self, password: impl Into<Vec<u8>>, hash: Option<&str>) -> Result<bool, ApiError> {
        let password = password.into();
        let known = hash.is_some();
        let hash: Arc<str> = hash.map_or_else(|| self.dummy_hash.clone(), Arc::from);
        self.blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(|e| {
                log::error!("stored password hash is unreadable: {e}");
                ApiError::Internal
            })?;
            Ok(argon2().verify_password(&password, &parsed).is_ok() && known)
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let _permit = self.permits.acquire().await.map_err(|_| ApiError::Internal)?;
        task::spawn_blocking(work).await.map_err(|e| {
            log::error!("password hashing task failed: {e}");
            ApiError::Internal
        })?
    }
}

impl HashTicket {
    /// Hashes a password into a PHC string.
    pub async fn hash(&self, password: impl Into<Vec<u8>>) -> Result<String, ApiError> {
        self.passwords.hash(password).await
    }

    /// Checks `password` against `hash`, or against the dummy hash when there
    /// is no user (always false then), so both cases take the same time.
    pub async fn verify(&self, password: impl Into<Vec<u8>>, hash: Option<&str>) -> Result<bool, ApiError> {
        self.passwords.verify(password, hash).await
    }
}
