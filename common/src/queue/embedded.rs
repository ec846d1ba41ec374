//! The embedded back-end: unbounded in-process channels.
//!
//! It keeps nothing on disk: the gateway's store is the durable copy of every job, and the
//! gateway re-enqueues the records left `Processing` when it starts. Acks are therefore no-ops,
//! and a retried delivery goes to the back of its queue, counted as RabbitMQ counts it.

use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc};

use super::{Acker, Consumer, ConsumerInner, Delivery, QueueError};
use crate::message::{Heartbeat, Job, JobResult};

/// Both queues of the embedded back-end, and the heartbeats of its workers.
#[derive(Debug, Clone)]
pub struct EmbeddedQueue {
    jobs: Arc<Channel<Job>>,
    results: Arc<Channel<JobResult>>,
    heartbeats: broadcast::Sender<Heartbeat>,
}

/// One queue: a sender shared by publishers and a receiver taken by the one consumer.
#[derive(Debug)]
struct Channel<T> {
    name: &'static str,
    tx: mpsc::UnboundedSender<Counted<T>>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Counted<T>>>>,
}

/// A message with the number of deliveries it has had.
type Counted<T> = (T, u32);

impl<T> Channel<T> {
    fn new(name: &'static str) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            name,
            tx,
            rx: Mutex::new(Some(rx)),
        }
    }

    fn publish(&self, message: T) -> Result<(), QueueError> {
        self.tx.send((message, 0)).map_err(|_| QueueError::Closed)
    }

    fn consume(&self) -> Result<Consumer<T>, QueueError> {
        let rx = self
            .rx
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .ok_or(QueueError::AlreadyConsumed(self.name))?;
        Ok(Consumer {
            inner: ConsumerInner::Embedded(Receiver {
                rx,
                tx: self.tx.downgrade(),
            }),
        })
    }
}

/// The consuming end of an embedded queue. Its handle for retries is weak, so that the queue
/// closes (and [`Consumer::next`] ends) once every publisher is gone and it is drained.
#[derive(Debug)]
pub(super) struct Receiver<T> {
    rx: mpsc::UnboundedReceiver<Counted<T>>,
    tx: mpsc::WeakUnboundedSender<Counted<T>>,
}

impl<T> Receiver<T> {
    pub(super) async fn next(&mut self) -> Option<Delivery<T>> {
        let (message, delivered) = self.rx.recv().await?;
        Some(Delivery {
            message,
            deliveries: delivered + 1,
            acker: Acker::Embedded(Requeue(self.tx.clone())),
        })
    }
}

/// Puts a retried message back on its queue, while the queue is open.
#[derive(Debug)]
pub(super) struct Requeue<T>(mpsc::WeakUnboundedSender<Counted<T>>);

impl<T> Requeue<T> {
    /// Sends `message` again, after its `deliveries` so far.
    pub(super) fn send(self, message: T, deliveries: u32) -> Result<(), QueueError> {
        let tx = self.0.upgrade().ok_or(QueueError::Closed)?;
        tx.send((message, deliveries))
            .map_err(|_| QueueError::Closed)
    }
}

impl EmbeddedQueue {
    /// New, empty queues.
    pub fn new() -> Self {
        Self {
            jobs: Arc::new(Channel::new("jobs")),
            results: Arc::new(Channel::new("results")),
            heartbeats: broadcast::channel(64).0,
        }
    }

    /// Sends a heartbeat to every listener; none listening is no error.
    pub(super) fn publish_heartbeat(&self, heartbeat: &Heartbeat) {
        let _ = self.heartbeats.send(heartbeat.clone());
    }

    /// A listener for the heartbeats sent from now on.
    pub(super) fn heartbeats(&self) -> broadcast::Receiver<Heartbeat> {
        self.heartbeats.subscribe()
    }

    pub(super) fn publish_job(&self, job: &Job) -> Result<(), QueueError> {
        self.jobs.publish(job.clone())
    }

    pub(super) fn publish_result(&self, result: &JobResult) -> Result<(), QueueError> {
        self.results.publish(result.clone())
    }

    pub(super) fn consume_jobs(&self) -> Result<Consumer<Job>, QueueError> {
        self.jobs.consume()
    }

    pub(super) fn consume_results(&self) -> Result<Consumer<JobResult>, QueueError> {
        self.results.consume()
    }

    pub(super) fn check(&self) -> Result<(), QueueError> {
        if self.jobs.tx.is_closed() || self.results.tx.is_closed() {
            Err(QueueError::Closed)
        } else {
            Ok(())
        }
    }
}

impl Default for EmbeddedQueue {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use crate::media::MediaType;
    use crate::message::Outcome;
    use crate::queue::Queue;

    use super::*;

    #[tokio::test]
    async fn jobs_and_results_flow_and_retries_come_back() {
        let queue = Queue::embedded();
        let job = Job::new(Uuid::now_v7(), MediaType::Png, Vec::new());
        queue.publish_job(&job).await.unwrap();
        let mut jobs = queue.consume_jobs(4).await.unwrap();
        assert!(matches!(
            queue.consume_jobs(4).await,
            Err(QueueError::AlreadyConsumed("jobs"))
        ));

        let delivery = jobs.next().await.unwrap();
        assert_eq!(delivery.message, job);
        assert_eq!(delivery.deliveries(), 1);
        delivery.retry().await.unwrap();
        let again = jobs.next().await.unwrap();
        assert_eq!(again.message, job);
        assert_eq!(
            again.deliveries(),
            2,
            "a retry counts as RabbitMQ counts it"
        );
        again.ack().await.unwrap();

        let result = JobResult {
            media_id: job.media_id,
            outcome: Outcome::Started,
            worker: None,
            traceparent: None,
        };
        queue.publish_result(&result).await.unwrap();
        let mut results = queue.consume_results().await.unwrap();
        let delivery = results.next().await.unwrap();
        assert_eq!(delivery.message, result);
        delivery.ack().await.unwrap();
        queue.check().unwrap();

        // Once every publisher is gone, the consumers drain and end.
        queue.publish_result(&result).await.unwrap();
        drop(queue);
        assert!(results.next().await.is_some());
        assert!(results.next().await.is_none());
        assert!(jobs.next().await.is_none());
    }
}
