//! Each client's uploads by URL in flight, bounded: a client (its tenant with API keys, else
//! its IP address) may have at most `sources.max_in_flight_per_client` sources still being
//! fetched or thumbnailed; past it, 429 `too_many_sources` with `Retry-After`. So one
//! client's slow sources cannot fill the workers' fetch slots and the queue ahead of
//! everyone else's.
//!
//! The count is this gateway's: an upload is counted from its 202 until its record is final
//! (the results path, or another gateway's notice through the store, wakes
//! [`crate::waiters::Waiters`], which lets it go here) or deleted. An entry older than
//! [`FORGET_AFTER`] is let go in any case, so a notice lost with a connection cannot hold a
//! client back for long.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::error::ApiError;

/// How long an upload is counted at most.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The counts. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SourceQuota(Arc<Mutex<Counts>>);

#[derive(Debug, Default)]
struct Counts {
    /// Per client, its uploads in flight and when each was accepted.
    clients: HashMap<String, Vec<(Uuid, Instant)>>,
    /// Whose each upload is.
    owners: HashMap<Uuid, String>,
}

impl SourceQuota {
    /// Refuses a new upload by URL from `client` when it has `max` in flight already.
    pub fn check(&self, client: &str, max: usize) -> Result<(), ApiError> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let in_flight = counts.clients.get_mut(client).map_or(0, |uploads| {
            uploads.retain(|(_, at)| at.elapsed() < FORGET_AFTER);
            uploads.len()
        });
        if in_flight >= max {
            return Err(ApiError::TooManySources { max });
        }
        Ok(())
    }

    /// Counts `media_id` as `client`'s, in flight.
    pub fn accepted(&self, client: &str, media_id: Uuid) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .clients
            .entry(client.to_owned())
            .or_default()
            .push((media_id, Instant::now()));
        counts.owners.insert(media_id, client.to_owned());
        // Forget the oldest owners along with their entries, so both maps stay bounded.
        if counts.owners.len() > 100_000 {
            counts.forget_old();
        }
    }

    /// Lets `media_id` go: it is final or deleted (no-op for an upload not counted here).
    pub fn finished(&self, media_id: Uuid) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(client) = counts.owners.remove(&media_id) else {
            return;
        };
        if let Some(uploads) = counts.clients.get_mut(&client) {
            uploads.retain(|(id, _)| *id != media_id);
            if uploads.is_empty() {
                counts.clients.remove(&client);
            }
        }
    }
}

impl Counts {
    fn forget_old(&mut self) {
        let owners = &mut self.owners;
        self.clients.retain(|_, uploads| {
            uploads.retain(|(id, at)| {
                let keep = at.elapsed() < FORGET_AFTER;
                if !keep {
                    owners.remove(id);
                }
                keep
            });
            !uploads.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_bounded_on_its_own_until_its_uploads_end() {
        let quota = SourceQuota::default();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        for id in &ids[..2] {
            quota.check("slow", 2).unwrap();
            quota.accepted("slow", *id);
        }
        assert!(matches!(
            quota.check("slow", 2),
            Err(ApiError::TooManySources { max: 2 })
        ));
        quota.check("other", 2).unwrap();
        quota.finished(ids[0]);
        quota.check("slow", 2).unwrap();
        quota.finished(ids[2]);
        quota.finished(ids[1]);
        assert!(quota.0.lock().unwrap().clients.is_empty());
    }
}
