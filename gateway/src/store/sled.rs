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
use common::record::{Record, State};
use sled::Transactional;
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
    flushes: mpsc::UnboundedSender<FlushWaiter>,
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
        let (flushes, waiting) = mpsc::unbounded_channel();
        tokio::spawn(flusher(db, waiting));
        Ok(Self {
            records,
            outbox,
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
        let record = serde_json::to_vec(record)?;
        let job = job.map(serde_json::to_vec).transpose()?;
        (&self.records, &self.outbox)
            .transaction(
                |(records, outbox)| -> sled::transaction::ConflictableTransactionResult<bool, ()> {
                    if records.get(key)?.is_some() {
                        return Ok(false);
                    }
                    records.insert(key, record.as_slice())?;
                    if let Some(job) = &job {
                        outbox.insert(key, job.as_slice())?;
                    }
                    Ok(true)
                },
            )
            .map_err(|error| match error {
                sled::transaction::TransactionError::Storage(error) => StoreError::Sled(error),
                sled::transaction::TransactionError::Abort(()) => {
                    unreachable!("the transaction never aborts")
                }
            })
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
    pub async fn list(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<Record>, StoreError> {
        let range = match after {
            Some(after) => self.records.range(after.as_bytes().to_vec()..),
            None => self.records.iter(),
        };
        range
            .filter(|entry| match (entry, after) {
                (Ok((key, _)), Some(after)) => key.as_ref() != after.as_bytes(),
                _ => true,
            })
            .take(limit)
            .map(|entry| {
                let (_, value) = entry?;
                Ok(serde_json::from_slice(&value)?)
            })
            .collect()
    }

    /// Every record still [`State::Processing`], in id order.
    pub async fn processing(&self) -> Result<Vec<Record>, StoreError> {
        self.records
            .iter()
            .map(|entry| -> Result<Record, StoreError> {
                let (_, value) = entry?;
                Ok(serde_json::from_slice(&value)?)
            })
            .filter(|record| !matches!(record, Ok(record) if record.state != State::Processing))
            .collect()
    }

    /// Applies `change` to the record of `media_id` atomically. `change` returns whether it
    /// changed the record; it may run more than once if the record changes meanwhile.
    pub async fn update(
        &self,
        media_id: Uuid,
        mut change: impl FnMut(&mut Record) -> bool + Send,
    ) -> Result<Update, StoreError> {
        let key = media_id.as_bytes();
        loop {
            let Some(old) = self.records.get(key)? else {
                return Ok(Update::Missing);
            };
            let mut record: Record = serde_json::from_slice(&old)?;
            if !change(&mut record) {
                return Ok(Update::Unchanged(record));
            }
            let new = serde_json::to_vec(&record)?;
            if self
                .records
                .compare_and_swap(key, Some(old), Some(new))?
                .is_ok()
            {
                return Ok(Update::Changed(record));
            }
        }
    }

    /// Removes the record of `media_id` (and its job if still in the outbox); returns it if it
    /// existed.
    pub async fn remove(&self, media_id: Uuid) -> Result<Option<Record>, StoreError> {
        self.outbox.remove(media_id.as_bytes())?;
        self.records
            .remove(media_id.as_bytes())?
            .map(|value| serde_json::from_slice(&value).map_err(StoreError::from))
            .transpose()
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
