//! The outbox publisher: moves accepted jobs from the store to the queue.
//!
//! An upload writes its record and its job to the store in one transaction and answers 202;
//! it never waits on the queue, so a broker outage never fails a POST. This task publishes
//! every job in the outbox (waking on each upload, and at least every second) and takes a job
//! out only once the queue has confirmed it. While the queue is unavailable it retries with
//! capped exponential backoff. A job published twice (a crash between the confirm and the
//! removal) is harmless.

use std::sync::Arc;
use std::time::Duration;

use common::queue::Queue;
use common::record::{Event, MAX_EVENTS, Service};
use common::shutdown::Shutdown;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::store::Store;

/// How many jobs one round publishes (their confirms are awaited together).
const BATCH: usize = 256;
/// The longest wait between publishing attempts while the queue is unavailable.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the outbox is looked at without being woken.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The publisher.
#[derive(Debug, Clone)]
pub struct Outbox {
    store: Store,
    queue: Queue,
    wake: Arc<Notify>,
}

impl Outbox {
    /// A publisher of `store`'s outbox to `queue`.
    pub fn new(store: Store, queue: Queue) -> Self {
        Self {
            store,
            queue,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Tells the publisher that a job is waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Publishes until `shutdown` fires.
    pub async fn run(self, mut shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(100);
        loop {
            let pause = match self.publish_round().await {
                Ok(0) => None,
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "cannot publish jobs");
                    let pause = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    Some(pause)
                }
            };
            tokio::select! {
                () = shutdown.recv() => return,
                () = self.wake.notified(), if pause.is_none() => {}
                () = tokio::time::sleep(pause.unwrap_or(IDLE_CHECK)) => {}
            }
        }
    }

    /// Adds `queued` to the record's history, after the step that queued the job: a worker
    /// may have started it (and said so) before the broker's confirm came back. The history
    /// is for people: a failure here is logged, not retried.
    async fn note_queued(&self, media_id: uuid::Uuid) {
        let noted = self
            .store
            .update(media_id, |record| {
                let queuing = ["accepted", "requeued", "variant_requested"];
                let Some(after) = record
                    .events
                    .iter()
                    .rposition(|e| queuing.contains(&e.event.as_str()))
                else {
                    return false;
                };
                if record
                    .events
                    .get(after + 1)
                    .is_some_and(|e| e.event == "queued")
                {
                    return false; // noted already
                }
                let mut event = Event::new("queued", Service::Gateway, None);
                if let Some(next) = record.events.get(after + 1) {
                    event.at = event.at.min(next.at.clone());
                }
                record.events.insert(after + 1, event);
                if record.events.len() > MAX_EVENTS {
                    record.events.remove(1);
                }
                true
            })
            .await;
        if let Err(error) = noted {
            tracing::debug!(%media_id, %error, "cannot note a job queued");
        }
    }

    /// Publishes one batch; returns how many were published.
    async fn publish_round(&self) -> Result<usize, String> {
        let jobs = self.store.outbox(BATCH).await.map_err(|e| e.to_string())?;
        let mut publishing = JoinSet::new();
        for job in jobs {
            let queue = self.queue.clone();
            publishing.spawn(async move { queue.publish_job(&job).await.map(|()| job.media_id) });
        }
        let (mut published, mut failure) = (0, None);
        while let Some(outcome) = publishing.join_next().await {
            match outcome
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            {
                Ok(media_id) => {
                    self.store
                        .published(media_id)
                        .await
                        .map_err(|e| e.to_string())?;
                    self.note_queued(media_id).await;
                    published += 1;
                }
                Err(error) => failure = Some(error),
            }
        }
        match failure {
            Some(error) if published == 0 => Err(error),
            _ => Ok(published),
        }
    }
}
