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
//! - What the crash left behind is removed: temporary files of interrupted writes, raw uploads
//!   of records that are final (unless `keep_raw`) or gone, thumbnails of records that are
//!   gone (a DELETE interrupted between the record and its objects), variants a final record
//!   never recorded as made. The sweeper does the
//!   same every `recovery.orphan_sweep_secs`, sparing objects younger than
//!   `recovery.orphan_grace_secs` that another process may be writing.

use std::time::{Duration, SystemTime};

use common::config::RecoveryConfig;
use common::files;
use common::record::{Event, Service, State};
use common::storage::{Kind, Listed, Storage};
use common::time::now_rfc3339;

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
            processing += usize::from(!record.is_final());
            continue;
        }
        if record.is_final() {
            // Variants asked for on demand: their job goes round again.
            store.enqueue(&record.job()).await?;
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
                    let message = format!(
                        "the service stopped while processing this image on each of {} attempts",
                        current.attempts
                    );
                    current.fail(500, &message);
                    current.push_event(Event::new("failed", Service::Gateway, Some(message)));
                } else {
                    current.attempts += 1;
                    current.message = format!(
                        "queued again after a restart (attempt {})",
                        current.attempts
                    );
                    let message = Some(current.message.clone());
                    current.push_event(Event::new("requeued", Service::Gateway, message));
                }
                true
            })
            .await?;
        match update {
            Update::Changed(record) if record.state == State::Error => {
                tracing::error!(media_id = %record.media_id, "a job was in flight at every crash; recorded as failed");
            }
            Update::Changed(record) | Update::Unchanged(record) => {
                store.enqueue(&record.job()).await?;
                processing += 1;
            }
            Update::Missing => {}
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

/// Removes the temporary files interrupted writes left in the data directory, when media
/// lives there. `sole_raw_writer`: no other gateway writes raw uploads there (the embedded
/// store has one gateway); `sole_thumbnail_writer`: no worker of another process writes
/// thumbnails (the embedded queue, before its workers start). Temporary files another
/// process may still be writing are left alone.
pub async fn remove_temp_files(
    storage: &Storage,
    sole_raw_writer: bool,
    sole_thumbnail_writer: bool,
) -> Result<(), GatewayError> {
    let Storage::Dir(dir) = storage else {
        return Ok(());
    };
    let data = dir.data().clone();
    tokio::task::spawn_blocking(move || {
        if sole_raw_writer {
            files::remove_temp_files(&data.raw_dir())?;
        }
        if sole_thumbnail_writer {
            files::remove_temp_files(&data.thumbnails_dir())?;
        }
        Ok::<_, std::io::Error>(())
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(())
}

/// Removes the objects no record needs, written more than `grace` ago: raw uploads and
/// thumbnails of records that are gone (a crash between the object and the record, or in the
/// middle of a DELETE), and raw uploads of final records (unless `keep_raw`). The grace period
/// spares what another gateway or worker is writing right now; a process that is the only
/// writer passes zero. Returns how many it removed.
pub async fn sweep_orphans(
    store: &Store,
    storage: &Storage,
    keep_raw: bool,
    grace: Duration,
) -> Result<usize, GatewayError> {
    let now = SystemTime::now();
    let old_enough =
        |listed: &Listed| now.duration_since(listed.modified).unwrap_or_default() >= grace;
    let mut removed = 0;
    for kind in [Kind::Raw, Kind::Thumbnail] {
        for listed in storage.list(kind).await?.iter().filter(|l| old_enough(l)) {
            let key = listed.key;
            let orphan = match store.get(key.media_id).await? {
                // A shared original is named by its content id, not by a record.
                None if kind == Kind::Raw => !store
                    .with_original(key.media_id)
                    .await?
                    .iter()
                    .any(|record| keep_raw || record.needs_raw()),
                None => true,
                Some(record) if kind == Kind::Raw => !record.needs_raw() && !keep_raw,
                // A variant never recorded as made: a failed job's, or one the record no
                // longer has.
                Some(record) => !record.has_made(key.variant) && !record.needs_work(),
            };
            if orphan {
                storage.delete(key).await?;
                removed += 1;
            }
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed objects no record needs");
    }
    Ok(removed)
}
