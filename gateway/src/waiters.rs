//! Waiters: requests that hold `GET /images/{id}?wait=N` open until the record is final.
//!
//! A waiter is a future parked on a [`Notify`] per record id, not a thread and not a store
//! transaction: it reads the record, parks, and reads again when woken. The results path
//! wakes the waiters of a record as soon as it makes the record final
//! ([`Waiters::notify`]). With PostgreSQL another gateway may apply the result: every
//! gateway listens on the channel [`CHANNEL`], on which the results path of each announces
//! the records it made final ([`crate::store::Store::announce_final`]). A waiter also reads
//! again every [`RECHECK`], so that a notification lost with a connection costs at most
//! that long.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::record::Record;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::source_quota::SourceQuota;
use crate::store::{Store, StoreError};

/// The PostgreSQL notification channel of records made final.
pub const CHANNEL: &str = "thumbnailify_final";

/// How often a waiter reads the record again without being woken.
pub const RECHECK: Duration = Duration::from_secs(2);

/// The records being waited for. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Waiters {
    parked: Arc<Mutex<HashMap<Uuid, Arc<Notify>>>>,
    /// Told of every record made final too: uploads by URL are counted until then.
    sources: SourceQuota,
}

/// One waiter's place; leaving it takes the record's entry away when it was the last.
struct Place<'a> {
    waiters: &'a Waiters,
    media_id: Uuid,
    notify: Arc<Notify>,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut parked = self.waiters.lock();
        // The map's reference and this one: no other waiter holds it.
        if Arc::strong_count(&self.notify) == 2 {
            parked.remove(&self.media_id);
        }
    }
}

impl Waiters {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<Notify>>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waiters that also let a source upload go from `sources` when it is final.
    pub fn new(sources: SourceQuota) -> Self {
        Self {
            parked: Arc::default(),
            sources,
        }
    }

    /// Wakes whoever waits for `media_id`, now final.
    pub fn notify(&self, media_id: Uuid) {
        self.sources.finished(media_id);
        if let Some(notify) = self.lock().get(&media_id) {
            notify.notify_waiters();
        }
    }

    /// How many records are being waited for.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no record is being waited for.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The record of `media_id` as soon as it is final, or as it is when `timeout` has
    /// passed; `None` if there is no such record (or it was deleted meanwhile).
    pub async fn wait(
        &self,
        store: &Store,
        media_id: Uuid,
        timeout: Duration,
    ) -> Result<Option<Record>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let notify = Arc::clone(self.lock().entry(media_id).or_default());
        let place = Place {
            waiters: self,
            media_id,
            notify,
        };
        loop {
            // Registered before the read, so that a result applied between the read and the
            // park still wakes it.
            let notified = place.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let record = store.get(media_id).await?;
            let done = match &record {
                None => true,
                Some(record) => record.is_final(),
            };
            if done || tokio::time::Instant::now() >= deadline {
                return Ok(record);
            }
            let recheck = (tokio::time::Instant::now() + RECHECK).min(deadline);
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(recheck) => {}
            }
        }
    }
}
