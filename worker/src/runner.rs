//! The worker loop: take jobs from the queue, process up to `worker.concurrency` at once on
//! blocking threads, publish each result, then ack the job.
//!
//! The order is what makes the queue lose nothing: a job is acked only after its result is
//! published (confirmed, on RabbitMQ). If the result cannot be published the job is handed
//! back to be processed again. On shutdown the loop stops taking jobs and finishes the ones
//! it holds.

use std::sync::Arc;
use std::time::Duration;

use common::config::Config;
use common::message::{Job, JobResult, Outcome, process_name};
use common::queue::{Delivery, Queue};
use common::shutdown::Shutdown;
use common::storage::Storage;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::error::WorkerError;
use crate::heartbeat::{self, Stats};
use crate::job;

/// How long a job whose media storage failed waits before it goes back to the queue.
const STORAGE_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Runs the worker loop until `shutdown` fires or the queue closes, then finishes the jobs in
/// hand.
pub async fn run(
    queue: Queue,
    config: Arc<Config>,
    mut shutdown: Shutdown,
) -> Result<(), WorkerError> {
    let concurrency = config.worker.effective_concurrency();
    let storage = Storage::from_config(&config)?;
    let prefetch = u16::try_from(concurrency).unwrap_or(u16::MAX);
    let mut jobs = queue.consume_jobs(prefetch).await?;
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    let stats = Arc::new(Stats::default());
    let heartbeat = tokio::spawn(heartbeat::run(
        queue.clone(),
        Arc::clone(&stats),
        concurrency,
        Duration::from_secs(config.worker.heartbeat_secs),
        shutdown.clone(),
    ));
    tracing::info!(
        concurrency,
        queue = queue.kind(),
        storage = storage.kind(),
        decoders = %crate::decode::backends(),
        simd = %crate::resize::simd(),
        "worker started"
    );

    loop {
        let permit = tokio::select! {
            biased;
            () = shutdown.recv() => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let delivery = tokio::select! {
            biased;
            () = shutdown.recv() => break,
            delivery = jobs.next() => match delivery {
                Some(delivery) => delivery,
                None => break,
            },
        };
        stats.started();
        let stats = Arc::clone(&stats);
        let (queue, config, storage) = (queue.clone(), Arc::clone(&config), storage.clone());
        // The job's span continues the upload's trace.
        let span = tracing::info_span!("job", media_id = %delivery.message.media_id);
        common::trace::follow(&span, delivery.message.traceparent.as_deref());
        tasks.spawn(
            async move {
                let failed = handle(delivery, queue, config, storage, permit).await;
                stats.finished(failed);
            }
            .instrument(span),
        );
        while let Some(done) = tasks.try_join_next() {
            log_task_end(done);
        }
    }

    drop(jobs);
    tracing::info!(
        in_flight = tasks.len(),
        "worker stopping, finishing jobs in hand"
    );
    while let Some(done) = tasks.join_next().await {
        log_task_end(done);
    }
    heartbeat.abort();
    Ok(())
}

fn log_task_end(done: Result<(), tokio::task::JoinError>) {
    if let Err(error) = done {
        tracing::error!(%error, "job task failed");
    }
}

/// Processes one delivery: report it started, make the thumbnail, report the outcome, ack.
/// Returns whether the job failed, or `None` when it was handed back.
async fn handle(
    delivery: Delivery<Job>,
    queue: Queue,
    config: Arc<Config>,
    storage: Storage,
    _permit: OwnedSemaphorePermit,
) -> Option<bool> {
    let job = delivery.message.clone();
    let media_id = job.media_id;
    let started = JobResult {
        media_id,
        outcome: Outcome::Started,
        worker: Some(process_name()),
        traceparent: common::trace::current(),
    };
    if let Err(error) = queue.publish_result(&started).await {
        tracing::warn!(%media_id, %error, "cannot report the job started");
    }

    let outcome = match job::process(&job, &storage, &config).await {
        Ok(outcome) => outcome,
        Err(error) => {
            // Storage out of reach is no fault of the job: hand it back after a pause.
            tracing::warn!(%media_id, %error, "media storage failed; handing the job back");
            tokio::time::sleep(STORAGE_RETRY_PAUSE).await;
            if let Err(error) = delivery.retry().await {
                tracing::warn!(%media_id, %error, "cannot hand the job back");
            }
            return None;
        }
    };
    let failed = matches!(outcome, Outcome::Failed { .. });
    match &outcome {
        Outcome::Failed { code, message } => {
            tracing::info!(%media_id, code, %message, "job failed");
        }
        _ => tracing::debug!(%media_id, "job completed"),
    }

    let result = JobResult {
        media_id,
        outcome,
        worker: Some(process_name()),
        traceparent: common::trace::current(),
    };
    let acked = match queue.publish_result(&result).await {
        Ok(()) => delivery.ack().await,
        Err(error) => {
            tracing::warn!(%media_id, %error, "cannot publish the result; handing the job back");
            delivery.retry().await
        }
    };
    if let Err(error) = acked {
        // The job will be delivered again; processing it twice is harmless.
        tracing::warn!(%media_id, %error, "cannot settle the job");
    }
    Some(failed)
}
