//! The queue interface: jobs from the gateway to workers, results from workers to the gateway.
//!
//! One interface, two back-ends:
//!
//! - [`embedded`]: in-process channels. The default: `cargo run` works with no broker, and the
//!   gateway runs the workers itself. Durability comes from the gateway's store: a record left
//!   `Processing` by a crash is re-enqueued at start-up.
//! - RabbitMQ (when `queue.url` is an `amqp://` URL): durable queues, publisher confirms and
//!   manual acks, for a fleet of `worker` processes on many hosts.
//!
//! The protocol is the same on both:
//!
//! 1. The gateway [`Queue::publish_job`]s; the call returns once the job is safely queued.
//! 2. A worker [`Queue::consume_jobs`], processes each [`Delivery`], [`Queue::publish_result`]s
//!    and only then [`Delivery::ack`]s the job. If it cannot publish the result it
//!    [`Delivery::retry`]s, so the job is processed again rather than lost.
//! 3. The gateway [`Queue::consume_results`], records each result in its store, then acks it.
//!
//! Every message may therefore arrive more than once; processing is idempotent and the gateway
//! ignores results for records that are already final or deleted.

pub mod embedded;

use crate::message::{Job, JobResult};

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue is closed (the process is shutting down).
    #[error("the queue is closed")]
    Closed,
    /// This back-end allows one consumer per queue, and it is taken.
    #[error("the {0} queue already has its consumer")]
    AlreadyConsumed(&'static str),
}

/// A handle on the job queue. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Queue {
    /// In-process channels.
    Embedded(embedded::EmbeddedQueue),
}

impl Queue {
    /// A new embedded queue.
    pub fn embedded() -> Self {
        Queue::Embedded(embedded::EmbeddedQueue::new())
    }

    /// Publishes a job; returns once it is queued.
    pub async fn publish_job(&self, job: &Job) -> Result<(), QueueError> {
        match self {
            Queue::Embedded(queue) => queue.publish_job(job),
        }
    }

    /// Publishes a job result; returns once it is queued.
    pub async fn publish_result(&self, result: &JobResult) -> Result<(), QueueError> {
        match self {
            Queue::Embedded(queue) => queue.publish_result(result),
        }
    }

    /// Starts consuming jobs, at most `prefetch` unacknowledged at a time.
    pub async fn consume_jobs(&self, prefetch: u16) -> Result<Consumer<Job>, QueueError> {
        let _ = prefetch; // The embedded queue hands out jobs as fast as they are asked for.
        match self {
            Queue::Embedded(queue) => queue.consume_jobs(),
        }
    }

    /// Starts consuming job results.
    pub async fn consume_results(&self) -> Result<Consumer<JobResult>, QueueError> {
        match self {
            Queue::Embedded(queue) => queue.consume_results(),
        }
    }

    /// Whether the queue is usable now; the error says why not.
    pub fn check(&self) -> Result<(), QueueError> {
        match self {
            Queue::Embedded(queue) => queue.check(),
        }
    }

    /// A short name of the back-end, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Queue::Embedded(_) => "embedded",
        }
    }
}

/// A stream of deliveries from one queue.
#[derive(Debug)]
pub struct Consumer<T> {
    inner: ConsumerInner<T>,
}

#[derive(Debug)]
enum ConsumerInner<T> {
    Embedded(embedded::Receiver<T>),
}

impl<T: Clone> Consumer<T> {
    /// The next delivery; `None` once the queue is closed.
    pub async fn next(&mut self) -> Option<Result<Delivery<T>, QueueError>> {
        match &mut self.inner {
            ConsumerInner::Embedded(receiver) => receiver.next().await.map(Ok),
        }
    }
}

/// One message taken from a queue, to be acknowledged once handled.
#[derive(Debug)]
#[must_use = "a delivery must be acked or retried"]
pub struct Delivery<T> {
    /// The message.
    pub message: T,
    acker: Acker<T>,
}

#[derive(Debug)]
enum Acker<T> {
    Embedded(embedded::Requeue<T>),
}

impl<T> Delivery<T> {
    /// Acknowledges the message: it is handled and will not be delivered again.
    pub async fn ack(self) -> Result<(), QueueError> {
        match self.acker {
            Acker::Embedded(_) => Ok(()),
        }
    }

    /// Hands the message back to the queue to be delivered again.
    pub async fn retry(self) -> Result<(), QueueError> {
        match self.acker {
            Acker::Embedded(requeue) => requeue.send(self.message),
        }
    }
}
