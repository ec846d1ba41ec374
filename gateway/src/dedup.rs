//! Identical uploads processed once.
//!
//! With `dedup: true`, an upload's original is stored under its content id
//! ([`common::record::content_id`], from the bytes' SHA-256): every upload of the same bytes
//! shares one object, `raw/<content id>`, and the record keeps its own media id and names
//! the object in `original`. Under the content id's lock ([`Store::lock_content`]: in the
//! process for SQLite, a PostgreSQL advisory lock across gateways), an upload looks at the
//! records of the same original ([`canonical`]):
//!
//! - one that asked for the same variants and is `Completed`: the new record completes at
//!   once from it, its thumbnails copied to the new record's keys, with no job;
//! - one with the same variants still in flight with a job of its own: the new record waits
//!   for it (`duplicate_of`, no job), and is completed from it when it becomes final
//!   ([`crate::results`]); if that one is deleted first, or its thumbnails are gone before
//!   they are copied, the waiting record gets a job of its own ([`requeue_waiters`]); if
//!   nothing happens (a crash in between), the recovery and the sweeper give it one, like
//!   any record left processing;
//! - otherwise it gets a job, as without deduplication.
//!
//! Each record owns copies of its thumbnails, so deleting one removes only its own. The shared
//! original goes ([`release_original`]) only when no record of it needs it any more
//! (`keep_raw`, or work left), decided under the same lock, so that an upload of the same
//! bytes at that moment either sees the original kept or writes it again. What a crash
//! leaves (an original no record names, a copy of a thumbnail whose record was not written)
//! is an orphan that the orphan sweep collects.

use common::record::{Event, Record, Service};
use common::storage::{Key, Storage, StorageError};
use common::time::now_rfc3339;
use uuid::Uuid;

use crate::store::{Store, StoreError, Update};

/// The record an upload of the same bytes and variants as `record` can be served from:
/// a completed one first, else one in flight that has a job of its own.
pub fn canonical<'a>(record: &Record, others: &'a [Record]) -> Option<&'a Record> {
    let same = || {
        others
            .iter()
            .filter(|other| other.media_id != record.media_id && other.asks_as(record))
    };
    same()
        .find(|other| other.state == common::State::Completed)
        .or_else(|| same().find(|other| !other.is_final() && other.duplicate_of.is_none()))
}

/// Copies the thumbnails `from` made to `to`'s keys; `false` if one is gone (its record was
/// deleted meanwhile), in which case nothing may be served from it.
pub async fn copy_thumbnails(
    storage: &Storage,
    from: &Record,
    to: Uuid,
) -> Result<bool, StorageError> {
    for index in 0..from.thumbnails.len() {
        let Ok(index) = u16::try_from(index) else {
            break;
        };
        if !from.has_made(index) {
            continue;
        }
        match storage.get(Key::variant(from.media_id, index)).await? {
            Some(bytes) => storage.put(Key::variant(to, index), bytes).await?,
            None => return Ok(false),
        }
    }
    Ok(true)
}

/// Gives the uploads still waiting for `canonical` (deleted, or with thumbnails that can no
/// longer be copied) jobs of their own, in the same write as each record's change. Returns
/// how many.
pub async fn requeue_waiters(
    store: &Store,
    original: Uuid,
    canonical: Uuid,
) -> Result<usize, StoreError> {
    let mut requeued = 0;
    for waiting in store.with_original(original).await? {
        if waiting.duplicate_of != Some(canonical) || waiting.is_final() {
            continue;
        }
        let update = store
            .update_and_enqueue(waiting.media_id, |record| {
                if record.is_final() || record.duplicate_of != Some(canonical) {
                    return false;
                }
                record.duplicate_of = None;
                record.message = "queued: the identical upload it waited for is gone".to_owned();
                record.updated_at = now_rfc3339();
                record.push_event(Event::new(
                    "queued",
                    Service::Gateway,
                    Some(format!("{canonical} is gone")),
                ));
                true
            })
            .await?;
        if let Update::Changed(_) = update {
            requeued += 1;
        }
    }
    Ok(requeued)
}

/// Removes the shared original `original` unless a record of it still needs it: one with
/// work left, or any when `keep_raw`. Takes the content id's lock.
pub async fn release_original(
    store: &Store,
    storage: &Storage,
    keep_raw: bool,
    original: Uuid,
) -> Result<(), StoreError> {
    let lock = store.lock_content(original).await?;
    let needed = match store.with_original(original).await {
        Ok(records) => records.iter().any(|record| keep_raw || record.needs_raw()),
        Err(error) => {
            lock.release().await;
            return Err(error);
        }
    };
    if !needed && let Err(error) = storage.delete(Key::raw(original)).await {
        // An orphan now, which the orphan sweep collects.
        tracing::warn!(%error, "cannot remove an original no record needs");
    }
    lock.release().await;
    Ok(())
}
