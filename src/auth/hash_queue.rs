//! The places in the password hashing queue (`hash_queue`): a login,
//! registration or password change holds one while it waits for a hash or
//! hashes, and when none is free the next is shed at once (503).
//!
//! One client (an IPv4 address, or an IPv6 /64, as the throttle counts) may
//! hold at most a [`CLIENT_SHARE`]th of the places. Without that, a single
//! address rotating through usernames (each pair has its own throttling
//! budget) could hold the whole queue, and every other client would be shed
//! for as long as it kept sending. Behind a proxy, set `ip_header`, or every
//! client is one address and shares one share.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use rocket::tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::client::client_block;

/// One client holds at most `places / CLIENT_SHARE` places (at least one).
pub const CLIENT_SHARE: usize = 4;

pub struct HashQueue {
    places: Arc<Semaphore>,
    per_client: usize,
    /// Places held per client; a client holding none has no entry, so the
    /// map never holds more entries than there are places.
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// A place in the queue; given back when dropped.
pub struct Place {
    queue: Arc<HashQueue>,
    client: IpAddr,
    _place: OwnedSemaphorePermit,
}

/// Why no place was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every place is taken.
    Queue,
    /// This client holds its whole share.
    ClientShare,
}

impl HashQueue {
    pub fn new(places: usize) -> Arc<HashQueue> {
        Arc::new(HashQueue {
            places: Arc::new(Semaphore::new(places)),
            per_client: (places / CLIENT_SHARE).max(1),
            held: Mutex::default(),
        })
    }

    /// A place for `client`, at once or not at all ([`Full::Queue`] when
    /// every place is taken, whoever holds them).
    pub fn take(self: &Arc<Self>, client: Option<IpAddr>) -> Result<Place, Full> {
        let place = self.places.clone().try_acquire_owned().map_err(|_| Full::Queue)?;
        let client = client_block(client);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let holding = held.entry(client).or_insert(0);
        if *holding >= self.per_client {
            return Err(Full::ClientShare);
        }
        *holding += 1;
        Ok(Place { queue: self.clone(), client, _place: place })
    }

    /// Places one client may hold.
    pub fn per_client(&self) -> usize {
        self.per_client
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut held = self.queue.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(holding) = held.get_mut(&self.client) {
            *holding -= 1;
            if *holding == 0 {
                held.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(address: &str) -> Option<IpAddr> {
        Some(address.parse().unwrap())
    }

    #[test]
    fn one_client_holds_at_most_its_share_and_others_still_get_places() {
        let queue = HashQueue::new(8);
        let flood = client("192.0.2.1");
        let taken: Vec<Place> = (0..2).map(|_| queue.take(flood).expect("within its share")).collect();
        assert_eq!(queue.take(flood).err(), Some(Full::ClientShare));
        let others: Vec<Place> =
            (0..6).map(|n| queue.take(client(&format!("198.51.100.{n}"))).expect("a place")).collect();
        assert_eq!(queue.take(client("203.0.113.1")).err(), Some(Full::Queue), "all eight are taken");
        drop(taken);
        assert!(queue.take(flood).is_ok(), "places given back");
        drop(others);
        assert!(queue.held.lock().unwrap().len() <= 1, "clients holding nothing leave the map");
    }
}
