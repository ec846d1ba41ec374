//! The embedded record store: an embedded sled database in the data directory, which one
//! gateway alone owns.
//!
//! Records are JSON values keyed by the 16 bytes of their UUID v7, so key order is upload
//! order and listing pages by id is a range scan. Changes to a record go through
//! [`SledStore::update`], a compare-and-swap loop, so that a result and a DELETE racing on the
//! same record never resurrect it or lose either change.
//!
//! Durability: [`SledStore::flush`] returns once everything written before the call is on disk.
//! The upload path flushes before it answers 202; the results path flushes before it acks a
//! result. One flusher task does every flush (group commit): it takes all the callers waiting,
//! runs one fsync on a blocking thread, and answers them all. Flushes never run concurrently,
//! which also keeps clear of sled 0.34's deadlock between concurrent `flush_async` calls
//! (spacejam/sled#1308).

use std::path::Path;
use std::sync::Arc;

use common::message::Job;
use common::record::Record;
use sled::Transactional;
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{StoreError, Update};

/// A caller waiting for a flush.
type FlushWaiter = oneshot::Sender<Result<(), Arc<str>>>;

/// The sled record store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SledStore {
    records: sled::Tree,
    outbox: sled::Tree,
    /// Records whose completion callback is due: id → when (milliseconds since the epoch,
    /// big-endian), kept in the same transaction as the record.
    callbacks: sled::Tree,
    /// Records by the content id of their stored original: original ++ id → nothing.
    originals: sled::Tree,
    flushes: mpsc::UnboundedSender<FlushWaiter>,
}

/// The key of `record` in the originals tree, if it has a content id.
fn original_key(record: &Record) -> Option<[u8; 32]> {
    let original = record.original?;
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(original.as_bytes());
    key[16..].copy_from_slice(record.media_id.as_bytes());
    Some(key)
}

/// Milliseconds since the epoch of an RFC 3339 time (0 if it cannot be read: due at once).
fn millis(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Milliseconds since the epoch, now.
fn now_millis() -> i64 {
    millis(&common::time::now_rfc3339())
}

/// Sets or clears `record`'s entry in the callbacks tree.
fn index_callback(
    callbacks: &sled::transaction::TransactionalTree,
    record: &Record,
) -> Result<(), sled::transaction::UnabortableTransactionError> {
    let key = record.media_id.as_bytes();
    match record.callback_due() {
        Some(due) => callbacks.insert(key, &millis(&due).to_be_bytes())?,
        None => callbacks.remove(key)?,
    };
    Ok(())
}

/// The error of a transaction that aborts only on a record it cannot read or write.
fn transaction_error(error: TransactionError<serde_json::Error>) -> StoreError {
    match error {
        TransactionError::Storage(error) => StoreError::Sled(error),
        TransactionError::Abort(error) => StoreError::Corrupt(error),
    }
}

impl SledStore {
    /// Opens (or creates) the store in `dir` and starts its flusher task, which ends when the
    /// last clone of the store is dropped. Fails if another process holds the store. Call it
    /// inside a Tokio runtime.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|source| StoreError::Open {
                path: dir.to_owned(),
                source,
            })?;
        let records = db.open_tree("records")?;
        let outbox = db.open_tree("outbox")?;
        let callbacks = db.open_tree("callbacks")?;
        let originals = db.open_tree("originals")?;
        // One gateway owns this store: leases of deliveries its previous run had under way
        // are void. Each pending delivery is due again when its record says.
        for entry in callbacks.iter() {
            let (key, _) = entry?;
            let due = match records.get(&key)? {
                Some(value) => serde_json::from_slice::<Record>(&value)?.callback_due(),
                None => None,
            };
            match due {
                Some(due) => callbacks.insert(&key, &millis(&due).to_be_bytes())?,
                None => callbacks.remove(&key)?,
            };
        }
        let (flushes, waiting) = mpsc::unbounded_channel();
        tokio::spawn(flusher(db, waiting));
        Ok(Self {
            records,
            outbox,
            callbacks,
            originals,
            flushes,
        })
    }

    /// Inserts a new record and its job in the outbox, atomically (not yet flushed).
    pub async fn insert(&self, record: &Record, job: &Job) -> Result<(), StoreError> {
        self.import(record, Some(job)).await.map(drop)
    }

    /// Adds `record` (and `job` to the outbox) unless a record with its id exists, in one
    /// transaction; returns whether it was added.
    pub async fn import(&self, record: &Record, job: Option<&Job>) -> Result<bool, StoreError> {
        let key = record.media_id.as_bytes();
        let value = serde_json::to_vec(record)?;
        let job = job.map(serde_json::to_vec).transpose()?;
        let original = original_key(record);
        (&self.records, &self.outbox, &self.callbacks, &self.originals)
            .transaction(
                |(records, outbox, callbacks, originals)| -> ConflictableTransactionResult<bool, serde_json::Error> {
                    if records.get(key)?.is_some() {
                        return Ok(false);
                    }
                    records.insert(key, value.as_slice())?;
                    if let Some(original) = &original {
                        originals.insert(original.as_slice(), &[])?;
                    }
                    if let Some(job) = &job {
                        outbox.insert(key, job.as_slice())?;
                    }
                    index_callback(callbacks, record)?;
                    Ok(true)
                },
            )
            .map_err(transaction_error)
    }

    /// Puts a job in the outbox (to be published again).
    pub async fn enqueue(&self, job: &Job) -> Result<(), StoreError> {
        self.outbox
            .insert(job.media_id.as_bytes(), serde_json::to_vec(job)?)?;
        Ok(())
    }

    /// Up to `limit` jobs waiting in the outbox, oldest first.
    pub async fn outbox(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        self.outbox
            .iter()
            .take(limit)
            .map(|entry| {
                let (_, value) = entry?;
                Ok(serde_json::from_slice(&value)?)
            })
            .collect()
    }

    /// Takes a job out of the outbox once the queue has it.
    pub async fn published(&self, media_id: Uuid) -> Result<(), StoreError> {
        self.outbox.remove(media_id.as_bytes())?;
        Ok(())
    }

    /// The record of `media_id`, if any.
    pub async fn get(&self, media_id: Uuid) -> Result<Option<Record>, StoreError> {
        self.records
            .get(media_id.as_bytes())?
            .map(|value| serde_json::from_slice(&value).map_err(StoreError::from))
            .transpose()
    }

    /// Up to `limit` records with ids after `after` (from the first when `None`), in id order.
    /// It may read many records to fill a tenant's page, so it runs on a blocking thread.
    pub async fn list(
        &self,
        tenant: Option<&str>,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let (records, tenant) = (self.records.clone(), tenant.map(str::to_owned));
        let scan = move || -> Result<Vec<Record>, StoreError> {
            let range = match after {
                Some(after) => records.range(after.as_bytes().to_vec()..),
                None => records.iter(),
            };
            let mut page = Vec::new();
            for entry in range {
                let (key, value) = entry?;
                if after.is_some_and(|after| key.as_ref() == after.as_bytes()) {
                    continue;
                }
                let record: Record = serde_json::from_slice(&value)?;
                if tenant.is_none() || record.tenant == tenant {
                    page.push(record);
                    if page.len() == limit {
                        break;
                    }
                }
            }
            Ok(page)
        };
        match tokio::task::spawn_blocking(scan).await {
            Ok(page) => page,
            Err(error) => Err(StoreError::Unavailable(error.to_string())),
        }
    }

    /// The dashboard's view: one pass over every record.
    /// It reads every record, so it runs on a blocking thread, not on the runtime's.
    pub async fn overview(&self, limit: usize) -> Result<super::Overview, StoreError> {
        let records = self.records.clone();
        let scan = move || -> Result<super::Overview, StoreError> {
            let mut overview = super::Overview::default();
            for entry in records.iter() {
                let (_, value) = entry?;
                overview.add(serde_json::from_slice(&value)?);
            }
            Ok(overview.finish(limit))
        };
        match tokio::task::spawn_blocking(scan).await {
            Ok(overview) => overview,
            // As if it had run here: a panic goes on up.
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    /// Every record with work left ([`Record::needs_work`]), in id order.
    pub async fn processing(&self) -> Result<Vec<Record>, StoreError> {
        self.records
            .iter()
            .map(|entry| -> Result<Record, StoreError> {
                let (_, value) = entry?;
                Ok(serde_json::from_slice(&value)?)
            })
            .filter(|record| !matches!(record, Ok(record) if !record.needs_work()))
            .collect()
    }

    /// Applies `change` to the record of `media_id` atomically; with `enqueue`, a changed
    /// record's [`Record::job`] goes to the outbox in the same transaction. `change` returns
    /// whether it changed the record; it may run more than once if the record changes
    /// meanwhile.
    pub async fn update(
        &self,
        media_id: Uuid,
        change: impl FnMut(&mut Record) -> bool + Send,
        enqueue: bool,
    ) -> Result<Update, StoreError> {
        let key = media_id.as_bytes();
        // sled retries a transaction whose reads another writer changed: the change runs
        // again on what is stored then.
        let change = std::sync::Mutex::new(change);
        (&self.records, &self.outbox, &self.callbacks)
            .transaction(
                |(records, outbox, callbacks)| -> ConflictableTransactionResult<Update, serde_json::Error> {
                    let Some(old) = records.get(key)? else {
                        return Ok(Update::Missing);
                    };
                    let mut record: Record = serde_json::from_slice(&old)
                        .map_err(ConflictableTransactionError::Abort)?;
                    let changed = (change.lock().unwrap_or_else(|e| e.into_inner()))(&mut record);
                    if !changed {
                        return Ok(Update::Unchanged(record));
                    }
                    let value =
                        serde_json::to_vec(&record).map_err(ConflictableTransactionError::Abort)?;
                    records.insert(key, value)?;
                    index_callback(callbacks, &record)?;
                    if enqueue {
                        let job = serde_json::to_vec(&record.job())
                            .map_err(ConflictableTransactionError::Abort)?;
                        outbox.insert(key, job)?;
                    }
                    Ok(Update::Changed(record))
                },
            )
            .map_err(transaction_error)
    }

    /// Up to `limit` records whose callback is due, each held for `lease` (not handed out
    /// again before, unless a change to the record sets a new time).
    pub async fn due_callbacks(
        &self,
        limit: usize,
        lease: std::time::Duration,
    ) -> Result<Vec<Record>, StoreError> {
        let now = now_millis();
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let mut due = Vec::new();
        for entry in self.callbacks.iter() {
            if due.len() >= limit {
                break;
            }
            let (key, at) = entry?;
            let at = <[u8; 8]>::try_from(at.as_ref()).map_or(0, i64::from_be_bytes);
            if at > now {
                continue;
            }
            let leased = self.callbacks.compare_and_swap(
                &key,
                Some(at.to_be_bytes().as_slice()),
                Some(until.to_be_bytes().as_slice()),
            )?;
            if leased.is_err() {
                continue; // changed meanwhile
            }
            if let Some(value) = self.records.get(&key)? {
                due.push(serde_json::from_slice(&value)?);
            }
        }
        Ok(due)
    }

    /// Removes the record of `media_id` (and its job if still in the outbox); returns it if it
    /// existed.
    pub async fn remove(&self, media_id: Uuid) -> Result<Option<Record>, StoreError> {
        self.outbox.remove(media_id.as_bytes())?;
        self.callbacks.remove(media_id.as_bytes())?;
        let removed: Option<Record> = self
            .records
            .remove(media_id.as_bytes())?
            .map(|value| serde_json::from_slice(&value))
            .transpose()?;
        // After a crash before this, the entry names a missing record: readers skip those.
        if let Some(key) = removed.as_ref().and_then(original_key) {
            self.originals.remove(key)?;
        }
        Ok(removed)
    }

    /// Every record whose original is stored under the content id `original`.
    pub async fn with_original(&self, original: Uuid) -> Result<Vec<Record>, StoreError> {
        let mut found = Vec::new();
        for entry in self.originals.scan_prefix(original.as_bytes()) {
            let (key, _) = entry?;
            if let Some(value) = self.records.get(&key[16..])? {
                found.push(serde_json::from_slice(&value)?);
            }
        }
        Ok(found)
    }

    /// Waits until every change made before the call is on disk.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (done, result) = oneshot::channel();
        let gone = || StoreError::Flush("the store is closed".into());
        self.flushes.send(done).map_err(|_| gone())?;
        result.await.map_err(|_| gone())?.map_err(StoreError::Flush)
    }

    /// Whether the store answers reads.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.records.first()?;
        Ok(())
    }
}

/// The group-commit loop: each round answers every caller that was waiting when it began.
async fn flusher(db: sled::Db, mut waiting: mpsc::UnboundedReceiver<FlushWaiter>) {
    while let Some(first) = waiting.recv().await {
        let mut waiters = vec![first];
        while let Ok(next) = waiting.try_recv() {
            waiters.push(next);
        }
        let db = db.clone();
        let result = match tokio::task::spawn_blocking(move || db.flush()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(Arc::from(error.to_string())),
            Err(error) => Err(Arc::from(error.to_string())),
        };
        for waiter in waiters {
            // A caller that went away no longer needs the answer.
            let _ = waiter.send(result.clone());
        }
    }
}
