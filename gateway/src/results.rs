//! The results path: apply each worker's result to its record, then ack the result.
//!
//! A record changes at most once from `Processing` to final, through the store's
//! compare-and-swap, and the change is flushed to disk before the result is acked. Results
//! may arrive twice or late; each case is harmless:
//!
//! | result | record | action |
//! |---|---|---|
//! | started | processing, held by the gateway | `service: worker`, flushed |
//! | completed / failed | processing | made final, flushed, waiters and the callback deliverer woken; raw file removed unless `keep_raw` |
//! | completed / failed | final, with variants asked for on demand | those variants made ready or failed |
//! | completed | final without them, or deleted | variants the record does not have as made are orphans: removed |
//! | any | already final | ignored |
//!
//! Jobs dead-lettered by RabbitMQ (their worker died on every delivery) arrive on their own
//! queue and are recorded as failed, so that no record waits forever.

use common::config::Config;
use common::message::{Job, JobResult, Outcome};
use common::queue::{Consumer, Delivery};
use common::record::{Event, Placeholder, Record, Service, State};
use common::storage::{Key, Storage};
use common::time::now_rfc3339;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::callbacks::Wake;
use crate::dedup;
use crate::metrics::Metrics;
use crate::store::{Store, StoreError, Update};
use crate::waiters::Waiters;

/// What the results path needs.
#[derive(Debug, Clone)]
pub struct Results {
    /// The record store.
    pub store: Store,
    /// Where raw uploads and thumbnails are.
    pub storage: Storage,
    /// The configuration (for `keep_raw`).
    pub config: Arc<Config>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The requests waiting for records to become final.
    pub waiters: Waiters,
    /// The callback deliverer, woken when a record becomes final.
    pub deliveries: Wake,
}

/// How many results are applied at once.
const CONCURRENCY: usize = 64;

impl Results {
    /// Consumes results until the queue closes, applying up to [`CONCURRENCY`] at once.
    pub async fn run(self, mut results: Consumer<JobResult>) {
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        let mut tasks = JoinSet::new();
        while let Some(delivery) = results.next().await {
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let this = self.clone();
            // Applying the result continues the worker's span of the upload's trace.
            let span = tracing::info_span!("result", media_id = %delivery.message.media_id);
            common::trace::follow(&span, delivery.message.traceparent.as_deref());
            tasks.spawn(
                async move {
                    let result = delivery.message.clone();
                    this.settle_delivery(delivery, &result).await;
                    drop(permit);
                }
                .instrument(span),
            );
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Consumes the jobs RabbitMQ dead-lettered and records each as a dead letter: failed,
    /// its raw upload kept for an operator to retry or discard.
    pub async fn run_dead_jobs(self, mut dead: Consumer<Job>) {
        while let Some(delivery) = dead.next().await {
            let media_id = delivery.message.media_id;
            tracing::error!(%media_id, "a job exceeded its delivery limit: its worker died each time");
            let message = format!(
                "the worker stopped (crashed or was killed) on each of its {} attempts at this image",
                self.config.queue.delivery_limit
            );
            let settled = match self.give_up(media_id, 500, &message).await {
                Ok(()) => delivery.ack().await,
                Err(error) => {
                    tracing::error!(%media_id, %error, "cannot record a dead letter; it will come again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    delivery.retry().await
                }
            };
            if let Err(error) = settled {
                tracing::warn!(%error, "cannot settle a dead letter");
            }
        }
    }

    /// Records the job of `media_id` as given up on ([`Record::give_up`]) and announces it;
    /// its raw upload stays.
    pub async fn give_up(
        &self,
        media_id: uuid::Uuid,
        code: u16,
        message: &str,
    ) -> Result<(), StoreError> {
        let update = self
            .store
            .update(media_id, |record| record.give_up(code, message))
            .await?;
        if let Update::Changed(record) = update {
            self.announce(&record, "error").await;
        }
        Ok(())
    }

    /// Applies `result`, then acks the delivery; on failure hands it back to come again.
    async fn settle_delivery<T>(&self, delivery: Delivery<T>, result: &JobResult) {
        let settled = match self.apply(result).await {
            Ok(()) => delivery.ack().await,
            Err(error) => {
                tracing::error!(media_id = %result.media_id, %error, "cannot record a result; it will come again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                delivery.retry().await
            }
        };
        if let Err(error) = settled {
            // Not acked: the broker delivers it again, and applying it twice is harmless.
            tracing::warn!(%error, "cannot settle a result");
        }
    }

    /// Applies one result to its record.
    pub async fn apply(&self, result: &JobResult) -> Result<(), StoreError> {
        let media_id = result.media_id;
        let event = |name: &str, message: Option<String>| Event {
            by: result.worker.clone(),
            ..Event::new(name, Service::Worker, message)
        };
        match &result.outcome {
            Outcome::Started => {
                // Committed, so that after a crash the start-up recovery knows this job was
                // in flight (and may be what crashed the process).
                self.store
                    .update(media_id, |record| {
                        let take =
                            record.state == State::Processing && record.service == Service::Gateway;
                        if take {
                            record.service = Service::Worker;
                            record.message = "a worker is making the thumbnail".to_owned();
                            record.updated_at = now_rfc3339();
                            record.push_event(event("started", None));
                        }
                        take
                    })
                    .await?;
            }
            Outcome::Completed {
                width,
                height,
                thumbnails,
                source,
                duration,
                video,
                placeholder,
                warnings,
            } => {
                let mut became_final = false;
                let update = self
                    .store
                    .update(media_id, |record| {
                        let was_final = record.is_final();
                        if !record.apply_made(thumbnails, *width, *height) {
                            return false;
                        }
                        became_final = !was_final;
                        record.service = Service::Worker;
                        record.updated_at = now_rfc3339();
                        if let Some(source) = source {
                            record.apply_source(source);
                        }
                        if video.is_some() {
                            record.duration = *duration;
                            record.video.clone_from(video);
                        }
                        if let Some(placeholder) = placeholder {
                            record.placeholder = Some(Placeholder::clone(placeholder));
                        }
                        for warning in warnings {
                            record.push_event(event("warning", Some(warning.clone())));
                        }
                        for made in thumbnails {
                            let (name, message) = match (&made.error, was_final) {
                                (None, true) => ("variant_completed", made.name.clone()),
                                (Some(error), _) => (
                                    "variant_failed",
                                    format!("{}: {}", made.name, error.message),
                                ),
                                (None, false) => continue,
                            };
                            record.push_event(event(name, Some(message)));
                        }
                        if !was_final {
                            record.push_event(event("completed", None));
                        }
                        true
                    })
                    .await?;
                match update {
                    Update::Changed(record) if became_final => {
                        self.settle(&record, "completed").await?
                    }
                    Update::Changed(_) => {}
                    Update::Unchanged(record) => {
                        // Made again after the record took them (a job run twice), or for a
                        // record that failed meanwhile: what it does not need is an orphan.
                        self.metrics.results_discarded.inc();
                        for made in thumbnails.iter().filter(|m| !record.has_made(m.index)) {
                            self.remove(Key::variant(media_id, made.index)).await;
                        }
                    }
                    Update::Missing => {
                        tracing::debug!(%media_id, "removing the thumbnails of a deleted record");
                        self.metrics.results_discarded.inc();
                        for made in thumbnails {
                            self.remove(Key::variant(media_id, made.index)).await;
                        }
                    }
                }
            }
            Outcome::Failed { code, message } => {
                let mut became_final = false;
                let update = self
                    .store
                    .update(media_id, |record| {
                        let was_final = record.is_final();
                        if !record.fail(*code, message) {
                            return false;
                        }
                        became_final = !was_final;
                        record.service = Service::Worker;
                        record.updated_at = now_rfc3339();
                        let name = if was_final {
                            "variant_failed"
                        } else {
                            "failed"
                        };
                        record.push_event(event(name, Some(message.clone())));
                        true
                    })
                    .await?;
                match update {
                    Update::Changed(record) if became_final => {
                        self.settle(&record, "error").await?
                    }
                    Update::Changed(_) => {}
                    Update::Missing | Update::Unchanged(_) => {
                        self.metrics.results_discarded.inc();
                    }
                }
            }
        }
        Ok(())
    }

    /// Removes an object nothing needs any more; a failure is logged (the orphan sweep
    /// collects it).
    async fn remove(&self, key: Key) {
        if let Err(error) = self.storage.delete(key).await {
            tracing::warn!(%error, "cannot remove an object");
        }
    }

    /// After a record became final (and committed): wake its waiters and the callback deliverer,
    /// count, complete the uploads waiting for it, and drop the raw file unless kept (a
    /// shared original only once no record needs it).
    async fn settle(&self, record: &Record, state: &'static str) -> Result<(), StoreError> {
        self.announce(record, state).await;
        let Some(original) = record.original else {
            if !self.config.keep_raw {
                self.remove(Key::raw(record.media_id)).await;
            }
            return Ok(());
        };
        self.complete_duplicates(record, original).await?;
        dedup::release_original(&self.store, &self.storage, self.config.keep_raw, original).await
    }

    /// Wakes what waits for `record`, now final (and flushed), and counts it.
    async fn announce(&self, record: &Record, state: &'static str) {
        let media_id = record.media_id;
        // Counted first: a client that sees the record final finds it counted.
        self.metrics.jobs_processing.dec();
        self.metrics.finished(record, state);
        self.waiters.notify(media_id);
        if let Err(error) = self.store.announce_final(media_id).await {
            // Waiters on other gateways read the record again within a few seconds anyway.
            tracing::debug!(%error, "cannot announce a final record");
        }
        self.deliveries.wake();
    }

    /// Completes (or fails) the uploads of the same bytes and variants that waited for
    /// `canonical`; when its thumbnails are gone (deleted meanwhile), they get jobs of their
    /// own.
    async fn complete_duplicates(
        &self,
        canonical: &Record,
        original: uuid::Uuid,
    ) -> Result<(), StoreError> {
        // Under the content lock: an upload deciding to wait for `canonical` is in the store
        // before this looks, or sees `canonical` final and does not wait.
        let lock = self.store.lock_content(original).await?;
        let found = self.store.with_original(original).await;
        lock.release().await;
        let waiting: Vec<Record> = found?
            .into_iter()
            .filter(|other| other.duplicate_of == Some(canonical.media_id) && !other.is_final())
            .collect();
        for duplicate in waiting {
            let completed = canonical.state == State::Completed;
            if completed {
                match dedup::copy_thumbnails(&self.storage, canonical, duplicate.media_id).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // Deleted as soon as it was final: the waiting ones are made apart.
                        dedup::requeue_waiters(&self.store, original, canonical.media_id).await?;
                        return Ok(());
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot copy the thumbnails of a duplicate");
                        continue;
                    }
                }
            }
            let update = self
                .store
                .update(duplicate.media_id, |record| {
                    if record.is_final() {
                        return false;
                    }
                    if completed {
                        record.complete_from(canonical);
                        record.push_event(Event::new("completed", Service::Gateway, None));
                    } else {
                        record.fail(canonical.code, &canonical.message);
                        record.updated_at = now_rfc3339();
                        record.push_event(Event::new(
                            "failed",
                            Service::Gateway,
                            Some(canonical.message.clone()),
                        ));
                    }
                    true
                })
                .await?;
            if let Update::Changed(updated) = update {
                let state = if completed { "completed" } else { "error" };
                self.announce(&updated, state).await;
            }
        }
        Ok(())
    }
}
