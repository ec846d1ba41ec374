//! The worker loop: take jobs from the queue, as many as the [`Slots`] have room for, run
//! each (decoding in at most `worker.concurrency` at once, fetching in a pool of its own),
//! publish each result, then ack the job. A job that must fetch its source and finds no
//! fetch slot free (for the pool, or for its host) is not held: it is published again at
//! the back of the queue and its delivery acked.
//!
//! The order is what makes the queue lose nothing: a job is acked only after its result is
//! published (confirmed, on RabbitMQ). If the result cannot be published the job is handed
//! back to be processed again. A job interrupted by what may be no fault of its own (media
//! storage out of reach, a tool out of time) is handed back too, a timeout only while the
//! queue's delivery limit leaves another try: the last try's timeout is its result. On
//! shutdown the loop stops taking jobs and finishes the ones it holds.
//!
//! The worker's own spool is made at start, and the spools of dead processes removed
//! ([`Spool::remove_dead`]).

use std::sync::Arc;
use std::time::Duration;

use common::config::Config;
use common::files::DataDir;
use common::message::{Job, JobResult, Outcome, process_name};
use common::queue::{Delivery, Queue};
use common::shutdown::Shutdown;
use common::spool::Spool;
use common::storage::Storage;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::error::WorkerError;
use crate::heartbeat::{self, Stats};
use crate::job::{self, Interrupted};
use crate::slots::{FetchSlot, Slots};

/// How long an interrupted job waits before it goes back to the queue.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// How long the loop rests after sending a job with no free fetch slot to the back of the
/// queue, times the number sent back in a row (up to ten).
const DEFER_PAUSE: Duration = Duration::from_millis(20);

/// Runs the worker loop until `shutdown` fires or the queue closes, then finishes the jobs in
/// hand.
pub async fn run(
    queue: Queue,
    config: Arc<Config>,
    mut shutdown: Shutdown,
) -> Result<(), WorkerError> {
    let concurrency = config.worker.effective_concurrency();
    let storage = Storage::from_config(&config)?;
    remove_dead_spools(&config).await;
    let slots = Slots::new(&config);
    let intake = Slots::intake(&config);
    let prefetch = u16::try_from(intake).unwrap_or(u16::MAX);
    let mut jobs = queue.consume_jobs(prefetch).await?;
    let permits = Arc::new(Semaphore::new(intake));
    // Jobs sent to the back of the queue in a row: each waits a little longer, so a queue of
    // nothing but sources with no free slot is walked slowly, not spun through.
    let mut deferred: u32 = 0;
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
        let fetching = match delivery.message.source_url.as_deref() {
            Some(url) if delivery.message.media_type.is_none() => {
                match slots.try_fetch(&job::source_host(url)) {
                    Some(slot) => Some(slot),
                    None => {
                        // No fetch slot for it: to the back of the queue, not held.
                        drop(permit);
                        deferred += 1;
                        defer(delivery, &queue).await;
                        tokio::time::sleep(DEFER_PAUSE * deferred.min(10)).await;
                        continue;
                    }
                }
            }
            _ => None,
        };
        deferred = 0;
        stats.started();
        let stats = Arc::clone(&stats);
        let (queue, config, storage, slots) = (
            queue.clone(),
            Arc::clone(&config),
            storage.clone(),
            slots.clone(),
        );
        // The job's span continues the upload's trace.
        let span = tracing::info_span!("job", media_id = %delivery.message.media_id);
        common::trace::follow(&span, delivery.message.traceparent.as_deref());
        tasks.spawn(
            async move {
                let failed =
                    handle(delivery, queue, config, storage, slots, fetching, permit).await;
                stats.finished(failed);
            }
            .instrument(span),
        );
        while let Some(done) = tasks.try_join_next() {
            log_task_end(done);
        }
    }

    drop(jobs);
    // Jobs that ended while the worker was idle are still in the set until joined.
    while let Some(done) = tasks.try_join_next() {
        log_task_end(done);
    }
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

/// Sends a job to the back of its queue as a new message (published, then the delivery
/// acked), so that waiting for a slot never counts as a failed delivery. If it cannot be
/// published, the delivery is handed back instead.
async fn defer(delivery: Delivery<Job>, queue: &Queue) {
    let media_id = delivery.message.media_id;
    let settled = match queue.publish_job(&delivery.message).await {
        Ok(()) => delivery.ack().await,
        Err(error) => {
            tracing::warn!(%media_id, %error, "cannot requeue the job; handing it back");
            delivery.retry().await
        }
    };
    if let Err(error) = settled {
        tracing::warn!(%media_id, %error, "cannot settle the deferred job");
    }
}

/// Removes what dead processes left in the spool; a failure is logged, not fatal (the spool
/// may be on a volume this worker cannot write until it needs it).
async fn remove_dead_spools(config: &Config) {
    let spool = Spool::new(&DataDir::new(&config.data_dir));
    match tokio::task::spawn_blocking(move || spool.remove_dead()).await {
        Ok(Ok(0)) => {}
        Ok(Ok(removed)) => tracing::info!(removed, "removed the spools of processes that died"),
        Ok(Err(error)) => tracing::warn!(%error, "cannot clean the spool"),
        Err(error) => tracing::warn!(%error, "cannot clean the spool"),
    }
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
    slots: Slots,
    fetching: Option<FetchSlot>,
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

    let outcome = match job::process(&job, &storage, &config, &slots, fetching).await {
        Ok(outcome) => outcome,
        Err(Interrupted::TimedOut(failure))
            if delivery.deliveries() > config.queue.delivery_limit =>
        {
            // The last try the queue allows: the timeout is the job's result.
            Outcome::Failed {
                code: failure.status,
                message: failure.message,
            }
        }
        Err(interrupted) => {
            tracing::warn!(%media_id, error = %interrupted, deliveries = delivery.deliveries(), "handing the job back");
            tokio::time::sleep(RETRY_PAUSE).await;
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
