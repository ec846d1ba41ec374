//! What a worker process may do at once, in two separate pools, so that waiting on the
//! network never holds up the CPU:
//!
//! - **decode slots**, `worker.concurrency` of them: decoding, resizing and encoding an
//!   image, or FFmpeg taking a video's poster frame and the image pipeline after it;
//! - **fetch slots**, `sources.max_fetches` of them, at most `sources.max_fetches_per_host`
//!   to one host: fetching a source given by URL.
//!
//! A job that fetches takes its fetch slot as it is taken from the queue, and lets it go
//! before it asks for a decode slot. When no slot is free, for the pool or for the host, the
//! job is not held: it goes to the back of the queue ([`crate::runner`]). So the jobs a
//! worker holds are never more than it has slots for ([`Slots::intake`]), a source that
//! answers slowly, or never, costs a fetch slot for at most `sources.timeout_secs`, and a
//! job that only decodes always finds room beside any number of slow sources.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::config::Config;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots of one worker process. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Slots {
    decode: Arc<Semaphore>,
    fetch: Arc<Semaphore>,
    per_host: usize,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

/// A fetch slot: one of the pool's and one of its host's, both let go when dropped.
#[derive(Debug)]
pub struct FetchSlot {
    _pool: OwnedSemaphorePermit,
    _host: OwnedSemaphorePermit,
}

impl Slots {
    /// The slots `config` allows.
    pub fn new(config: &Config) -> Self {
        Self {
            decode: Arc::new(Semaphore::new(config.worker.effective_concurrency())),
            fetch: Arc::new(Semaphore::new(config.sources.max_fetches)),
            per_host: config.sources.max_fetches_per_host,
            hosts: Arc::default(),
        }
    }

    /// How many jobs the worker holds at once: one for each slot of either pool.
    pub fn intake(config: &Config) -> usize {
        config.worker.effective_concurrency() + config.sources.max_fetches
    }

    /// Waits for a decode slot.
    pub async fn decode(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.decode)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// A fetch slot for `host`, if both the pool and the host have one free.
    pub fn try_fetch(&self, host: &str) -> Option<FetchSlot> {
        let host_slots = {
            let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
            // Hosts no fetch holds are forgotten, so the map stays small.
            hosts.retain(|_, slots| Arc::strong_count(slots) > 1);
            Arc::clone(
                hosts
                    .entry(host.to_ascii_lowercase())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_host))),
            )
        };
        let host = host_slots.try_acquire_owned().ok()?;
        let pool = Arc::clone(&self.fetch).try_acquire_owned().ok()?;
        Some(FetchSlot {
            _pool: pool,
            _host: host,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn slots(concurrency: usize, fetches: usize, per_host: usize) -> Slots {
        let mut config = Config::default();
        config.worker.concurrency = concurrency;
        config.sources.max_fetches = fetches;
        config.sources.max_fetches_per_host = per_host;
        Slots::new(&config)
    }

    async fn waits<T>(future: impl Future<Output = T>) -> bool {
        tokio::time::timeout(Duration::from_millis(50), future)
            .await
            .is_err()
    }

    #[tokio::test]
    async fn fetches_never_take_decode_slots() {
        let slots = slots(1, 4, 4);
        let _fetching = hold(&slots, &["a", "b", "c", "d"]);
        assert!(!waits(slots.decode()).await, "a decode slot is free");
        assert!(slots.try_fetch("e").is_none(), "the fetch pool is full");
    }

    #[test]
    fn one_host_is_bounded_on_its_own() {
        let slots = slots(1, 4, 2);
        let _slow = hold(&slots, &["slow", "SLOW"]);
        assert!(
            slots.try_fetch("slow").is_none(),
            "the host's slots are taken"
        );
        assert!(slots.try_fetch("other").is_some(), "another host goes on");
    }

    #[test]
    fn a_slot_let_go_is_free_again_and_its_host_forgotten() {
        let slots = slots(1, 1, 1);
        drop(slots.try_fetch("gone").unwrap());
        let _other = slots.try_fetch("other").unwrap();
        assert_eq!(slots.hosts.lock().unwrap().len(), 1);
    }

    fn hold(slots: &Slots, hosts: &[&str]) -> Vec<FetchSlot> {
        hosts
            .iter()
            .map(|host| slots.try_fetch(host).expect("a free slot"))
            .collect()
    }
}
