//! The tarpit: a refused login (or password change) is answered after
//! [`TARPIT`] (1 s), at most [`TARPIT_CAPACITY`] of them held at once
//! (beyond that, at once). A connection that keeps guessing gets one answer
//! a second instead of tens of thousands, which would otherwise take the CPU
//! from everyone else (measured: 33k 429s a second on 2 cores raised
//! `/protected`'s p99 5.7-fold). Holding one costs a timer and the request,
//! a few KiB.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rocket::tokio::sync::Semaphore;

/// How long a refused login waits for its 429.
pub const TARPIT: Duration = Duration::from_secs(1);
/// The most refused logins waiting at once.
pub const TARPIT_CAPACITY: usize = 1_024;

pub struct Tarpit {
    /// Its length in milliseconds ([`TARPIT`]; tests may shorten it).
    length_ms: AtomicU64,
    places: Semaphore,
}

impl Default for Tarpit {
    fn default() -> Self {
        Tarpit {
            length_ms: AtomicU64::new(TARPIT.as_millis() as u64),
            places: Semaphore::new(TARPIT_CAPACITY),
        }
    }
}

impl Tarpit {
    /// Holds a refused request for [`TARPIT`], unless [`TARPIT_CAPACITY`]
    /// are held already.
    pub async fn hold(&self) {
        if let Ok(_place) = self.places.try_acquire() {
            let length = Duration::from_millis(self.length_ms.load(Ordering::Relaxed));
            rocket::tokio::time::sleep(length).await;
        }
    }

    /// Test hook: sets the tarpit's length.
    #[cfg(feature = "test-hooks")]
    pub fn set_length(&self, length: Duration) {
        self.length_ms.store(length.as_millis() as u64, Ordering::Relaxed);
    }
}
