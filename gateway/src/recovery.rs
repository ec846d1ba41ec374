//! Start-up recovery: finish what a crash or a shutdown interrupted.
//!
//! - With the embedded queue, which keeps nothing across restarts, every record left
//!   `Processing` goes back to the outbox. (RabbitMQ keeps its queued jobs, and the outbox
//!   keeps those not yet published.) A 202 means the record and the raw file are on disk;
//!   this is what makes that promise hold across restarts. A job may thereby run twice, which
//!   is harmless (see [`crate::results`]).
//! - Files the crash left behind are removed: temporary files of interrupted writes, raw files
//!   of records that are final (unless `keep_raw`) or gone, thumbnails of records that are
//!   gone (a DELETE interrupted between the record and its files).

use std::path::Path;

use common::files::{DataDir, remove_if_exists, remove_temp_files};
use common::message::Job;
use uuid::Uuid;

use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Counts the records still processing and, when the queue is not durable, puts their jobs
/// back in the outbox; returns how many there are.
pub fn requeue(
    store: &Store,
    queue_is_durable: bool,
    metrics: &Metrics,
) -> Result<usize, GatewayError> {
    let mut processing = 0;
    for record in store.processing() {
        let record = record?;
        if !queue_is_durable {
            store.enqueue(&Job::new(record.media_id, record.media_type))?;
        }
        processing += 1;
    }
    metrics
        .jobs_processing
        .set(i64::try_from(processing).unwrap_or(i64::MAX));
    if processing > 0 && !queue_is_durable {
        tracing::info!(count = processing, "queued again the jobs left processing");
    }
    Ok(processing)
}

/// Removes the files a crash left behind. Blocking: call it before serving, from a blocking
/// thread. Thumbnails being written by workers meanwhile are safe: their records exist.
pub fn sweep_files(store: &Store, data: &DataDir, keep_raw: bool) -> Result<usize, GatewayError> {
    remove_temp_files(&data.raw_dir())?;
    let raw = sweep_dir(&data.raw_dir(), |id| {
        Ok(match store.get(id)? {
            None => true,
            Some(record) => record.is_final() && !keep_raw,
        })
    })?;
    let thumbnails = sweep_dir(&data.thumbnails_dir(), |id| Ok(store.get(id)?.is_none()))?;
    let removed = raw + thumbnails;
    if removed > 0 {
        tracing::info!(removed, "removed files left behind");
    }
    Ok(removed)
}

/// Removes the files of `dir` named by a media id for which `stale` says so.
fn sweep_dir(
    dir: &Path,
    stale: impl Fn(Uuid) -> Result<bool, StoreError>,
) -> Result<usize, GatewayError> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|name| Uuid::try_parse(name).ok())
        else {
            continue;
        };
        if stale(id)? {
            remove_if_exists(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}
