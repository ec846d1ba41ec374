//! Start-up recovery: finish what a crash or a shutdown interrupted.
//!
//! - Every record left `Processing` is queued again. A 202 means the record and the raw file
//!   are on disk; this is what makes that promise hold across restarts. A job may thereby run
//!   twice, which is harmless (see [`crate::results`]).
//! - Files the crash left behind are removed: temporary files of interrupted writes, raw files
//!   of records that are final (unless `keep_raw`) or gone, thumbnails of records that are
//!   gone (a DELETE interrupted between the record and its files).

use std::path::Path;

use common::files::{DataDir, remove_if_exists, remove_temp_files};
use common::message::Job;
use common::queue::Queue;
use uuid::Uuid;

use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

/// Queues a job for every record still processing; returns how many.
pub async fn requeue(
    store: &Store,
    queue: &Queue,
    metrics: &Metrics,
) -> Result<usize, GatewayError> {
    let jobs = store
        .processing()
        .map(|record| record.map(|record| Job::new(record.media_id, record.media_type)))
        .collect::<Result<Vec<_>, _>>()?;
    for job in &jobs {
        queue.publish_job(job).await?;
    }
    metrics
        .jobs_processing
        .set(i64::try_from(jobs.len()).unwrap_or(i64::MAX));
    if !jobs.is_empty() {
        tracing::info!(count = jobs.len(), "queued again the jobs left processing");
    }
    Ok(jobs.len())
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
