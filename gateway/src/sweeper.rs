//! The sweeper: no record stays `Processing` forever.
//!
//! Every so often (a quarter of `recovery.stuck_after_secs`, between 1 s and 60 s) it looks
//! for records still processing and unchanged for `recovery.stuck_after_secs`: a job lost
//! with a broker's data, dropped by a bug, or stuck in a worker. Such a record's job is
//! queued again, up to `recovery.max_attempts` times in all; stuck after the last, the record
//! becomes `Error` (504) with a message. A late result of an earlier attempt is harmless: the
//! first final result wins.
//!
//! Every `recovery.orphan_sweep_secs` it also removes the objects no record needs
//! ([`crate::recovery::sweep_orphans`]), older than `recovery.orphan_grace_secs`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::config::RecoveryConfig;
use common::record::{Event, Record, Service, State};

use common::shutdown::Shutdown;
use common::storage::Storage;
use common::time::now_rfc3339;

use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::store::{Store, StoreError, Update};

/// The sweeper.
#[derive(Debug)]
pub struct Sweeper {
    /// The record store.
    pub store: Store,
    /// Where raw uploads and thumbnails are.
    pub storage: Storage,
    /// Whether raw uploads of final records stay.
    pub keep_raw: bool,
    /// Where jobs queued again go.
    pub outbox: Outbox,
    /// The limits.
    pub config: RecoveryConfig,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

impl Sweeper {
    /// Sweeps until `shutdown` fires.
    pub async fn run(self, mut shutdown: Shutdown) {
        let stuck_every = Duration::from_secs(self.config.stuck_after_secs / 4)
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let orphans_every = Duration::from_secs(self.config.orphan_sweep_secs.max(1));
        let grace = Duration::from_secs(self.config.orphan_grace_secs);
        let mut stuck = tokio::time::interval(stuck_every);
        let mut orphans = tokio::time::interval(orphans_every);
        for interval in [&mut stuck, &mut orphans] {
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        // Both first ticks are at once: skip them, the start-up recovery has just swept.
        stuck.tick().await;
        orphans.tick().await;
        loop {
            tokio::select! {
                () = shutdown.recv() => return,
                _ = stuck.tick() => {
                    if let Err(error) = self.sweep().await {
                        tracing::error!(%error, "sweep failed");
                    }
                }
                _ = orphans.tick() => {
                    let swept = crate::recovery::sweep_orphans(
                        &self.store,
                        &self.storage,
                        self.keep_raw,
                        grace,
                    )
                    .await;
                    if let Err(error) = swept {
                        tracing::error!(%error, "orphan sweep failed");
                    }
                }
            }
        }
    }

    /// One pass over the records still processing.
    pub async fn sweep(&self) -> Result<(), StoreError> {
        let stuck_after = Duration::from_secs(self.config.stuck_after_secs);
        let now = SystemTime::now();
        let stuck: Vec<Record> = self
            .store
            .processing()
            .await?
            .into_iter()
            .filter(|record| {
                humantime::parse_rfc3339(&record.updated_at).map_or(true, |at| {
                    now.duration_since(at).unwrap_or_default() >= stuck_after
                })
            })
            .collect();
        for record in stuck {
            let media_id = record.media_id;
            let max_attempts = self.config.max_attempts;
            let update = self
                .store
                .update(media_id, |current| {
                    if !current.needs_work() || current.updated_at != record.updated_at {
                        return false; // it moved meanwhile
                    }
                    let was_final = current.is_final();
                    current.updated_at = now_rfc3339();
                    if current.attempts >= max_attempts {
                        let message = format!(
                            "the job did not finish: stuck for {} s on each of {} attempts",
                            stuck_after.as_secs(),
                            current.attempts
                        );
                        if was_final {
                            // Variants asked for on demand: they fail, the record stays.
                            current.fail(504, &message);
                            current.push_event(Event::new(
                                "failed",
                                Service::Gateway,
                                Some(message),
                            ));
                        } else {
                            // Kept, raw upload and all, for an operator to retry.
                            current.give_up(504, &message);
                        }
                    } else {
                        current.attempts += 1;
                        if !was_final {
                            current.service = Service::Gateway;
                            current.message =
                                format!("queued again (attempt {})", current.attempts);
                        }
                        let message = Some(format!(
                            "stuck; queued again (attempt {})",
                            current.attempts
                        ));
                        current.push_event(Event::new("requeued", Service::Gateway, message));
                    }
                    true
                })
                .await?;
            if let Update::Changed(updated) = update {
                if updated.needs_work() {
                    self.store.enqueue(&updated.job()).await?;
                }
                if !record.is_final() && updated.state == State::Error {
                    tracing::error!(%media_id, "a job never finished; recorded as failed");
                    self.metrics.jobs_processing.dec();
                    self.metrics.finished(&updated, "error");
                } else if updated.needs_work() {
                    tracing::warn!(%media_id, attempt = updated.attempts, "a job was stuck; queued again");
                    self.outbox.wake();
                } else {
                    tracing::error!(%media_id, "variants asked for on demand never finished; recorded as failed");
                }
            }
        }
        Ok(())
    }
}
