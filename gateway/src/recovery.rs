//! Start-up recovery: every record left `Processing` by a crash or a shutdown is queued again.
//!
//! A 202 means the record and the raw file are on disk; this is what makes that promise hold
//! across restarts. A job may thereby run twice, which is harmless (see [`crate::results`]).

use common::message::Job;
use common::queue::Queue;

use crate::error::GatewayError;
use crate::metrics::Metrics;
use crate::store::Store;

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
