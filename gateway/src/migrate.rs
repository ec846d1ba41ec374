//! `gateway migrate --from A.yaml --to B.yaml`: copies every record and its media from one
//! pair of back-ends to another, typically from the embedded ones (sled, the data directory)
//! to the distributed ones (PostgreSQL, S3), so that a service started on one machine can
//! grow without losing anything.
//!
//! For each record of the source, in id order:
//! 1. skip it if the target has a record with its id (migrated by an earlier run: a record
//!    is written last, so its objects are there); this makes the migration resumable;
//! 2. copy its raw upload, if the source still has it, and read it back: its SHA-256 must be
//!    the record's `sha256`;
//! 3. copy its thumbnail, if it has one, and read it back: its SHA-256 must be the source's;
//! 4. add the record to the target (with its job queued again if it was still processing).
//!
//! A record whose objects cannot be copied or verified is reported and left out of the target,
//! and the command fails at the end; running it again retries those. Stop the gateways using
//! the source first (sled refuses a second process anyway); the target may be live.

use common::config::Config;
use common::record::{Record, VariantState};
use common::storage::{Key, Storage, StorageError};
use sha2::{Digest, Sha256};

use crate::error::GatewayError;
use crate::store::{Store, StoreError};

/// Records read from the source at a time.
const PAGE: usize = 500;

/// What a migration did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Records copied, with their objects.
    pub copied: usize,
    /// Records the target had already.
    pub already_there: usize,
    /// Raw uploads the source no longer had (final records, unless `keep_raw` was on).
    pub raw_absent: usize,
    /// Records left out, with why.
    pub failed: Vec<(uuid::Uuid, String)>,
}

/// Why one record could not be migrated.
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} changed on the way: its SHA-256 read back is not the one expected")]
    Mismatch(&'static str),
    #[error("the record says Completed but the source has no thumbnail")]
    MissingThumbnail,
}

/// The hex SHA-256 of `bytes`.
fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The back-ends one configuration names.
struct Ends {
    store: Store,
    storage: Storage,
}

async fn open(config: &Config) -> Result<Ends, GatewayError> {
    let data = common::files::DataDir::new(&config.data_dir);
    Ok(Ends {
        store: Store::open(&config.store, &data.db_dir()).await?,
        storage: Storage::from_config(config)?,
    })
}

/// Copies every record and its media from `from` to `to`.
pub async fn migrate(from: &Config, to: &Config) -> Result<Report, GatewayError> {
    let (source, target) = (open(from).await?, open(to).await?);
    tracing::info!(
        from = %format!("{} + {}", source.store.kind(), source.storage.kind()),
        to = %format!("{} + {}", target.store.kind(), target.storage.kind()),
        "migrating"
    );
    let mut report = Report::default();
    let mut after = None;
    loop {
        let page = source.store.list(None, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.media_id);
        for record in page {
            if target.store.get(record.media_id).await?.is_some() {
                report.already_there += 1;
                continue;
            }
            match copy(&record, &source, &target, &mut report).await {
                Ok(()) => report.copied += 1,
                Err(error) => {
                    tracing::error!(media_id = %record.media_id, %error, "not migrated");
                    report.failed.push((record.media_id, error.to_string()));
                }
            }
        }
        tracing::info!(
            copied = report.copied,
            already_there = report.already_there,
            "progress"
        );
    }
    target.store.flush().await?;
    Ok(report)
}

/// The indexes of the variants of `record` that were made (a record from before variants
/// existed has its one thumbnail as variant 0).
fn made_variants(record: &Record) -> Vec<u16> {
    if record.thumbnails.is_empty() {
        return if record.thumbnail.is_some() {
            vec![0]
        } else {
            Vec::new()
        };
    }
    (0..record.thumbnails.len())
        .filter(|&index| record.thumbnails[index].state == VariantState::Ready)
        .filter_map(|index| u16::try_from(index).ok())
        .collect()
}

/// Copies one record's objects, verified, then the record.
async fn copy(
    record: &Record,
    source: &Ends,
    target: &Ends,
    report: &mut Report,
) -> Result<(), RecordError> {
    let id = record.media_id;
    let raw_key = Key::raw(record.raw_id());
    match source.storage.get(raw_key).await? {
        Some(raw) => {
            let raw_copy = raw.clone();
            target.storage.put(raw_key, raw).await?;
            let back = target.storage.get(raw_key).await?.unwrap_or_default();
            // A source fetched by a job whose result has not come yet: its digest is not
            // known, the bytes are compared with what was read instead.
            let expected = match record.sha256.as_str() {
                "" => sha256(&raw_copy),
                known => known.to_owned(),
            };
            if sha256(&back) != expected {
                return Err(RecordError::Mismatch("the raw upload"));
            }
        }
        None => report.raw_absent += 1,
    }
    for index in made_variants(record) {
        let key = Key::variant(id, index);
        let thumbnail = source
            .storage
            .get(key)
            .await?
            .ok_or(RecordError::MissingThumbnail)?;
        let expected = sha256(&thumbnail);
        target.storage.put(key, thumbnail).await?;
        let back = target.storage.get(key).await?.unwrap_or_default();
        if sha256(&back) != expected {
            return Err(RecordError::Mismatch("a thumbnail"));
        }
    }
    let job = record.needs_work().then(|| record.job());
    target.store.import(record, job.as_ref()).await?;
    Ok(())
}
