//! The store: every record, in an embedded sled database that the gateway alone owns.
//!
//! Records are JSON values keyed by the 16 bytes of their UUID v7, so key order is upload
//! order and listing pages by id is a range scan. Changes to a record go through
//! [`Store::update`], a compare-and-swap loop, so that a result and a DELETE racing on the
//! same record never resurrect it or lose either change.
//!
//! Durability: [`Store::flush`] returns once everything written before the call is on disk.
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

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be opened: another gateway holds it, or the directory is not
    /// writable.
    #[error("cannot open the store in {}: {source}{}", path.display(), if is_locked(source) {
        " (another gateway process is using this data directory: with the embedded store, one gateway owns a data directory)"
    } else { "" })]
    Open {
        /// The store's directory.
        path: std::path::PathBuf,
        /// Why.
        source: sled::Error,
    },
    /// The database failed.
    #[error("store: {0}")]
    Sled(#[from] sled::Error),
    /// A stored value is not a record (a bug or a damaged database).
    #[error("store: a stored record cannot be read: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// Flushing to disk failed (the message of the underlying error, shared by every caller
    /// of that flush).
    #[error("store: flush failed: {0}")]
    Flush(Arc<str>),
}

/// Whether sled could not open its database because another process holds its lock (sled
/// says so only in its message).
fn is_locked(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock
        || io.to_string().contains("could not acquire lock"))
}

/// The result of [`Store::update`].
#[derive(Debug)]
pub enum Update {
    /// There is no such record.
    Missing,
    /// The change declined to change the record; here it is as stored.
    Unchanged(Record),
    /// The record as changed and stored.
    Changed(Record),
}

/// A caller waiting for a flush.
type FlushWaiter = oneshot::Sender<Result<(), Arc<str>>>;

/// The record store. Cheap to clone.
///
/// Beside the records it keeps the outbox: the jobs accepted but not yet confirmed by the
/// queue, written in the same transaction as their record.
#[derive(Debug, Clone)]
pub struct Store {
    records: sled::Tree,
    outbox: sled::Tree,
    flushes: mpsc::UnboundedSender<FlushWaiter>,
}

impl Store {
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
    pub fn insert(&self, record: &Record, job: &Job) -> Result<(), StoreError> {
        let key = record.media_id.as_bytes();
        let (record, job) = (serde_json::to_vec(record)?, serde_json::to_vec(job)?);
        (&self.records, &self.outbox)
            .transaction(
                |(records, outbox)| -> sled::transaction::ConflictableTransactionResult<(), ()> {
                    records.insert(key, record.as_slice())?;
                    outbox.insert(key, job.as_slice())?;
                    Ok(())
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
    pub fn enqueue(&self, job: &Job) -> Result<(), StoreError> {
        self.outbox
            .insert(job.media_id.as_bytes(), serde_json::to_vec(job)?)?;
        Ok(())
    }

    /// Up to `limit` jobs waiting in the outbox, oldest first.
    pub fn outbox(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
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
    pub fn published(&self, media_id: Uuid) -> Result<(), StoreError> {
        self.outbox.remove(media_id.as_bytes())?;
        Ok(())
    }

    /// The record of `media_id`, if any.
    pub fn get(&self, media_id: Uuid) -> Result<Option<Record>, StoreError> {
        self.records
            .get(media_id.as_bytes())?
            .map(|value| serde_json::from_slice(&value).map_err(StoreError::from))
            .transpose()
    }

    /// Up to `limit` records with ids after `after` (from the first when `None`), in id order.
    pub fn list(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<Record>, StoreError> {
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
    pub fn processing(&self) -> impl Iterator<Item = Result<Record, StoreError>> + '_ {
        self.records
            .iter()
            .map(|entry| -> Result<Record, StoreError> {
                let (_, value) = entry?;
                Ok(serde_json::from_slice(&value)?)
            })
            .filter(|record| !matches!(record, Ok(record) if record.state != State::Processing))
    }

    /// Applies `change` to the record of `media_id` atomically. `change` returns whether it
    /// changed the record; it may run more than once if the record changes meanwhile.
    pub fn update(
        &self,
        media_id: Uuid,
        mut change: impl FnMut(&mut Record) -> bool,
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
    pub fn remove(&self, media_id: Uuid) -> Result<Option<Record>, StoreError> {
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
    pub fn check(&self) -> Result<(), StoreError> {
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

#[cfg(test)]
mod tests {
    use common::media::MediaType;
    use common::message::Job;
    use common::record::NewUpload;

    use super::*;

    fn record() -> Record {
        Record::new(NewUpload {
            media_id: Uuid::now_v7(),
            media_type: MediaType::Png,
            name: None,
            size: 1,
            md5: String::new(),
            sha256: String::new(),
            dimensions: None,
        })
    }

    fn job(record: &Record) -> Job {
        Job::new(record.media_id, record.media_type)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_flushes_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let record = record();
                    store.insert(&record, &job(&record)).unwrap();
                    store.flush().await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(store.list(None, 1000).unwrap().len(), 200);
    }

    #[tokio::test]
    async fn records_persist_list_in_order_and_update_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let records: Vec<Record> = (0..5).map(|_| record()).collect();
        {
            let store = Store::open(dir.path()).unwrap();
            for record in records.iter().rev() {
                store.insert(record, &job(record)).unwrap();
            }
            store.flush().await.unwrap();
        }
        // The first store's flusher holds the database until its task sees the store gone.
        let mut attempts = 0;
        let store = loop {
            match Store::open(dir.path()) {
                Ok(store) => break store,
                Err(error) if attempts < 1000 => {
                    attempts += 1;
                    let _ = error;
                    tokio::task::yield_now().await;
                }
                Err(error) => panic!("cannot reopen the store: {error}"),
            }
        };
        let all = store.list(None, 10).unwrap();
        assert_eq!(all, records);
        let page = store.list(Some(records[1].media_id), 2).unwrap();
        assert_eq!(page, records[2..4]);

        let id = records[0].media_id;
        let changed = store
            .update(id, |record| {
                record.state = State::Completed;
                true
            })
            .unwrap();
        assert!(matches!(changed, Update::Changed(r) if r.state == State::Completed));
        assert!(matches!(
            store.update(id, |_| false).unwrap(),
            Update::Unchanged(_)
        ));
        assert_eq!(store.processing().count(), 4);
        let outbox = store.outbox(10).unwrap();
        assert_eq!(outbox.len(), 5, "every job waits in the outbox");
        assert_eq!(outbox[0], job(&records[0]));
        store.published(records[1].media_id).unwrap();
        assert_eq!(store.outbox(10).unwrap().len(), 4);
        assert_eq!(store.remove(id).unwrap().unwrap().media_id, id);
        assert_eq!(
            store.outbox(10).unwrap().len(),
            3,
            "a removed record's job goes too"
        );
        assert!(matches!(
            store.update(id, |_| true).unwrap(),
            Update::Missing
        ));
        assert!(store.get(id).unwrap().is_none());
    }
}
