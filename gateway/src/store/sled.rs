//! The records of a data directory from before SQLite: a sled database in `<data_dir>/db`,
//! read (never written) by the import that moves them into the SQLite store
//! ([`crate::migrate::import_sled`]).
//!
//! sled kept each record as JSON keyed by the 16 bytes of its UUID v7 in the tree `records`,
//! and the jobs not yet confirmed by the queue, keyed alike, in `outbox`; its other trees
//! (`callbacks`, `originals`) were indexes of the records, which SQLite's schema keeps
//! itself.

use std::path::{Path, PathBuf};

use common::message::Job;
use common::record::Record;
use uuid::Uuid;

use super::StoreError;

/// A sled store opened to be read.
#[derive(Debug)]
pub struct SledRecords {
    dir: PathBuf,
    records: sled::Tree,
    outbox: sled::Tree,
}

/// Why a sled store could not be read.
fn sled_error(path: &Path) -> impl Fn(sled::Error) -> StoreError + '_ {
    move |error| StoreError::Sled {
        path: path.to_owned(),
        detail: error.to_string(),
    }
}

/// Whether `dir` holds a sled database (its `conf` file is written when it is created).
pub fn exists(dir: &Path) -> bool {
    dir.join("conf").is_file()
}

impl SledRecords {
    /// Opens the sled database in `dir`; fails if another process holds it.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let errors = sled_error(dir);
        let db = sled::Config::new().path(dir).open().map_err(&errors)?;
        Ok(Self {
            dir: dir.to_owned(),
            records: db.open_tree("records").map_err(&errors)?,
            outbox: db.open_tree("outbox").map_err(&errors)?,
        })
    }

    /// How many records there are.
    pub fn count(&self) -> usize {
        self.records.len()
    }

    /// Up to `limit` records with ids after `after` (from the first when `None`), in id
    /// order, each with its job if it was in the outbox. Blocking.
    pub fn page(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<(Record, Option<Job>)>, StoreError> {
        let errors = sled_error(&self.dir);
        let range = match after {
            Some(after) => self.records.range(after.as_bytes().to_vec()..),
            None => self.records.iter(),
        };
        let mut page = Vec::new();
        for entry in range {
            let (key, value) = entry.map_err(&errors)?;
            if after.is_some_and(|after| key.as_ref() == after.as_bytes()) {
                continue;
            }
            let record: Record = serde_json::from_slice(&value)?;
            let job = match self.outbox.get(&key).map_err(&errors)? {
                Some(job) => Some(serde_json::from_slice(&job)?),
                None => None,
            };
            page.push((record, job));
            if page.len() == limit {
                break;
            }
        }
        Ok(page)
    }
}
