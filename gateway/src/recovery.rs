//! Start-up recovery: finish what a crash or a shutdown interrupted.
//!
//! - With the embedded queue, which keeps nothing across restarts, every record left
//!   `Processing` goes back to the outbox. One a worker had taken (`service: worker`) was in
//!   flight when the process died, and may be what killed it: that counts as an attempt, and
//!   after `recovery.max_attempts` the record becomes `Error` instead of crashing the process
//!   again and again. (RabbitMQ keeps its queued jobs, and the outbox
//!   keeps those not yet published.) A 202 means the record and the raw file are on disk;
//!   this is what makes that promise hold across restarts. A job may thereby run twice, which
//!   is harmless (see [`crate::results`]).
//! - Files the crash left behind are removed: temporary files of interrupted writes, raw files
//!   of records that are final (unless `keep_raw`) or gone, thumbnails of records that are
//!   gone (a DELETE interrupted between the record and its files).

use std::path::{Path, PathBuf};

use common::config::RecoveryConfig;
use common::files::{DataDir, remove_if_exists, remove_temp_files};
use common::message::Job;
use common::record::{Service, State};
use common::time::now_rfc3339;
use uuid::Uuid;

use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::store::{Store, Update};

/// Counts the records still processing and, when the queue is not durable, puts their jobs
/// back in the outbox (or fails those that were in flight at too many crashes); returns how
/// many are still processing. Flush the store afterwards.
pub async fn requeue(
    store: &Store,
    queue_is_durable: bool,
    recovery: &RecoveryConfig,
    metrics: &Metrics,
) -> Result<usize, GatewayError> {
    let mut processing = 0;
    for record in store.processing().await? {
        if queue_is_durable {
            processing += 1;
            continue;
        }
        let update = store
            .update(record.media_id, |current| {
                if current.is_final() || current.service != Service::Worker {
                    return false;
                }
                current.updated_at = now_rfc3339();
                current.service = Service::Gateway;
                if current.attempts >= recovery.max_attempts {
                    current.state = State::Error;
                    current.code = 500;
                    current.message = format!(
                        "the service stopped while processing this image on each of {} attempts",
                        current.attempts
                    );
                } else {
                    current.attempts += 1;
                    current.message = format!(
                        "queued again after a restart (attempt {})",
                        current.attempts
                    );
                }
                true
            })
            .await?;
        if matches!(&update, Update::Changed(record) if record.state == State::Error) {
            tracing::error!(media_id = %record.media_id, "a job was in flight at every crash; recorded as failed");
        } else {
            store
                .enqueue(&Job::new(record.media_id, record.media_type))
                .await?;
            processing += 1;
        }
    }
    metrics
        .jobs_processing
        .set(i64::try_from(processing).unwrap_or(i64::MAX));
    if processing > 0 && !queue_is_durable {
        tracing::info!(count = processing, "queued again the jobs left processing");
    }
    Ok(processing)
}

/// Removes the files a crash left behind. Call it before serving: it reads directories and
/// removes files on the calling thread. Thumbnails being written by workers meanwhile are
/// safe: their records exist. `sole_writer` says that no worker of another process writes
/// thumbnails (the embedded queue, before its workers start): then temporary thumbnails are
/// leftovers too.
pub async fn sweep_files(
    store: &Store,
    data: &DataDir,
    keep_raw: bool,
    sole_writer: bool,
) -> Result<usize, GatewayError> {
    remove_temp_files(&data.raw_dir())?;
    if sole_writer {
        remove_temp_files(&data.thumbnails_dir())?;
    }
    let mut removed = 0;
    for (id, path) in files_by_id(&data.raw_dir())? {
        let stale = match store.get(id).await? {
            None => true,
            Some(record) => record.is_final() && !keep_raw,
        };
        if stale {
            remove_if_exists(&path)?;
            removed += 1;
        }
    }
    for (id, path) in files_by_id(&data.thumbnails_dir())? {
        if store.get(id).await?.is_none() {
            remove_if_exists(&path)?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed files left behind");
    }
    Ok(removed)
}

/// The files of `dir` named by a media id, with their ids.
fn files_by_id(dir: &Path) -> Result<Vec<(Uuid, PathBuf)>, GatewayError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|name| Uuid::try_parse(name).ok())
        {
            files.push((id, entry.path()));
        }
    }
    Ok(files)
}
