//! The queue interface: jobs from the gateway to workers, results from workers to the gateway.
//!
//! One interface, two back-ends:
//!
//! - [`embedded`]: in-process channels. The default: `cargo run` works with no broker, and the
//!   gateway runs the workers itself. Durability comes from the gateway's store: a record left
//!   `Processing` by a crash is re-enqueued at start-up.
//! - RabbitMQ (when `queue.url` is an `amqp://` URL): durable queues, publisher confirms and
//!   manual acks, for a fleet of `worker` processes on many hosts.
//! - [`redis_streams`] (when `queue.url` is a `redis://` or `rediss://` URL): streams read by
//!   consumer groups, for a fleet that already runs Redis.
//!
//! The protocol is the same on all three (`tests/queue.rs` holds each to it):
//!
//! 1. The gateway [`Queue::publish_job`]s; the call returns once the job is safely queued.
//! 2. A worker [`Queue::consume_jobs`], processes each [`Delivery`], [`Queue::publish_result`]s
//!    and only then [`Delivery::ack`]s the job. If it cannot publish the result it
//!    [`Delivery::retry`]s, so the job is processed again rather than lost.
//! 3. The gateway [`Queue::consume_results`], records each result in its store, then acks it.
//!
//! Every message may therefore arrive more than once; processing is idempotent and the gateway
//! ignores results for records that are already final or deleted.
//!
//! Beside the jobs, workers send [`Heartbeat`]s ([`Queue::publish_heartbeat`]) that every
//! gateway hears ([`Queue::heartbeats`]): fire and forget, never stored, lost while no gateway
//! listens.

pub mod amqp;
pub mod embedded;
pub mod redis_streams;

use tokio::sync::{broadcast, mpsc};

use crate::config::QueueConfig;
use crate::message::{Heartbeat, Job, JobResult};

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue is closed (the process is shutting down).
    #[error("the queue is closed")]
    Closed,
    /// This back-end allows one consumer per queue, and it is taken.
    #[error("the {0} queue already has its consumer")]
    AlreadyConsumed(&'static str),
    /// The broker is not reachable now; the text says why.
    #[error("{0}")]
    Unavailable(String),
    /// The broker refused or failed an operation.
    #[error("broker: {0}")]
    Broker(String),
}

/// A handle on the job queue. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Queue {
    /// In-process channels.
    Embedded(embedded::EmbeddedQueue),
    /// RabbitMQ.
    Amqp(amqp::AmqpQueue),
    /// Redis Streams.
    Redis(redis_streams::RedisQueue),
}

/// How many results the gateway takes from a broker at once.
const RESULTS_PREFETCH: u16 = 64;

/// How many dead letters the gateway takes from a broker at once.
const DEAD_LETTERS_PREFETCH: u16 = 16;

/// A broker's first wait before reconnecting; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// A broker's longest wait between reconnection attempts.
const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(5);

impl Queue {
    /// The queue the configuration names: embedded without a URL, Redis with a `redis://` or
    /// `rediss://` one, RabbitMQ with another. Both brokers connect in the background, so this
    /// returns at once even while the broker is down.
    pub fn from_config(config: &QueueConfig) -> Self {
        match config.url.as_deref() {
            None => Self::embedded(),
            Some(url) if is_redis_url(url) => {
                Queue::Redis(redis_streams::RedisQueue::start(url, config))
            }
            Some(url) => Queue::Amqp(amqp::AmqpQueue::start(url, config)),
        }
    }

    /// A new embedded queue.
    pub fn embedded() -> Self {
        Queue::Embedded(embedded::EmbeddedQueue::new())
    }

    /// Whether queued messages survive the process (RabbitMQ, Redis) or not (embedded).
    pub fn is_durable(&self) -> bool {
        !matches!(self, Queue::Embedded(_))
    }

    /// Publishes a job; returns once it is queued (confirmed by the broker).
    pub async fn publish_job(&self, job: &Job) -> Result<(), QueueError> {
        match self {
            Queue::Embedded(queue) => queue.publish_job(job),
            Queue::Amqp(queue) => queue.publish_job(job).await,
            Queue::Redis(queue) => queue.publish_job(job).await,
        }
    }

    /// Publishes a job result; returns once it is queued (confirmed by the broker).
    pub async fn publish_result(&self, result: &JobResult) -> Result<(), QueueError> {
        match self {
            Queue::Embedded(queue) => queue.publish_result(result),
            Queue::Amqp(queue) => queue.publish_result(result).await,
            Queue::Redis(queue) => queue.publish_result(result).await,
        }
    }

    /// Starts consuming jobs, at most `prefetch` unacknowledged at a time.
    pub async fn consume_jobs(&self, prefetch: u16) -> Result<Consumer<Job>, QueueError> {
        match self {
            // The embedded queue hands out jobs as fast as they are asked for.
            Queue::Embedded(queue) => queue.consume_jobs(),
            Queue::Amqp(queue) => Ok(queue.consume_jobs(prefetch)),
            Queue::Redis(queue) => Ok(queue.consume_jobs(prefetch)),
        }
    }

    /// Starts consuming job results.
    pub async fn consume_results(&self) -> Result<Consumer<JobResult>, QueueError> {
        match self {
            Queue::Embedded(queue) => queue.consume_results(),
            Queue::Amqp(queue) => Ok(queue.consume_results(RESULTS_PREFETCH)),
            Queue::Redis(queue) => Ok(queue.consume_results(RESULTS_PREFETCH)),
        }
    }

    /// Starts consuming the jobs that exceeded the delivery limit (their worker died every
    /// time). `None` on the embedded queue, which has no such jobs.
    pub fn consume_dead_jobs(&self) -> Option<Consumer<Job>> {
        match self {
            Queue::Embedded(_) => None,
            Queue::Amqp(queue) => Some(queue.consume_dead_jobs()),
            Queue::Redis(queue) => Some(queue.consume_dead_jobs()),
        }
    }

    /// Sends a worker's heartbeat to every gateway listening. Not confirmed: a lost heartbeat
    /// is made good by the next.
    pub async fn publish_heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), QueueError> {
        match self {
            Queue::Embedded(queue) => {
                queue.publish_heartbeat(heartbeat);
                Ok(())
            }
            Queue::Amqp(queue) => queue.publish_heartbeat(heartbeat).await,
            Queue::Redis(queue) => queue.publish_heartbeat(heartbeat).await,
        }
    }

    /// Listens to the workers' heartbeats from now on.
    pub fn heartbeats(&self) -> Heartbeats {
        Heartbeats {
            inner: match self {
                Queue::Embedded(queue) => HeartbeatsInner::Embedded(queue.heartbeats()),
                Queue::Amqp(queue) => HeartbeatsInner::Broker(queue.heartbeats()),
                Queue::Redis(queue) => HeartbeatsInner::Broker(queue.heartbeats()),
            },
        }
    }

    /// Whether the queue is usable now; the error says why not.
    pub fn check(&self) -> Result<(), QueueError> {
        match self {
            Queue::Embedded(queue) => queue.check(),
            Queue::Amqp(queue) => queue.check(),
            Queue::Redis(queue) => queue.check(),
        }
    }

    /// Stops consuming and disconnects (RabbitMQ, Redis). The embedded queue closes when its
    /// last handle is dropped.
    pub async fn close(&self) {
        match self {
            Queue::Embedded(_) => {}
            Queue::Amqp(queue) => queue.close().await,
            Queue::Redis(queue) => queue.close().await,
        }
    }

    /// A short name of the back-end, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Queue::Embedded(_) => "embedded",
            Queue::Amqp(_) => "rabbitmq",
            Queue::Redis(_) => "redis",
        }
    }
}

/// Whether `url` names Redis (`redis://`, or `rediss://` over TLS).
pub fn is_redis_url(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

/// The workers' heartbeats, as a gateway hears them.
#[derive(Debug)]
pub struct Heartbeats {
    inner: HeartbeatsInner,
}

#[derive(Debug)]
enum HeartbeatsInner {
    Embedded(broadcast::Receiver<Heartbeat>),
    /// RabbitMQ or Redis: a task of the back-end forwards them.
    Broker(mpsc::Receiver<Heartbeat>),
}

impl Heartbeats {
    /// The next heartbeat; `None` once the queue is closed. Heartbeats a slow listener missed
    /// are skipped.
    pub async fn next(&mut self) -> Option<Heartbeat> {
        match &mut self.inner {
            HeartbeatsInner::Embedded(receiver) => loop {
                match receiver.recv().await {
                    Ok(heartbeat) => return Some(heartbeat),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            },
            HeartbeatsInner::Broker(receiver) => receiver.recv().await,
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
    /// RabbitMQ or Redis: a task of the back-end forwards the deliveries.
    Broker(mpsc::Receiver<Delivery<T>>),
}

impl<T> Consumer<T> {
    /// The next delivery; `None` once the queue is closed.
    pub async fn next(&mut self) -> Option<Delivery<T>> {
        match &mut self.inner {
            ConsumerInner::Embedded(receiver) => receiver.next().await,
            ConsumerInner::Broker(receiver) => receiver.recv().await,
        }
    }
}

/// One message taken from a queue, to be acknowledged once handled.
#[derive(Debug)]
#[must_use = "a delivery must be acked or retried"]
pub struct Delivery<T> {
    /// The message.
    pub message: T,
    /// Which delivery of the message this is, from 1: one more than the times it was
    /// handed back (or its consumer died holding it).
    deliveries: u32,
    acker: Acker<T>,
}

#[derive(Debug)]
enum Acker<T> {
    Embedded(embedded::Requeue<T>),
    Amqp(lapin::Acker),
    Redis(redis_streams::RedisAcker),
}

impl<T> Delivery<T> {
    /// Which delivery of the message this is, from 1. RabbitMQ and Redis dead-letter a job
    /// handed back when this is past `queue.delivery_limit`; the embedded queue counts the
    /// same way.
    pub fn deliveries(&self) -> u32 {
        self.deliveries
    }

    /// Acknowledges the message: it is handled and will not be delivered again.
    pub async fn ack(self) -> Result<(), QueueError> {
        match self.acker {
            Acker::Embedded(_) => Ok(()),
            Acker::Amqp(acker) => amqp::ack(&acker).await,
            Acker::Redis(acker) => acker.ack().await,
        }
    }

    /// Hands the message back to the queue to be delivered again.
    pub async fn retry(self) -> Result<(), QueueError> {
        match self.acker {
            Acker::Embedded(requeue) => requeue.send(self.message, self.deliveries),
            Acker::Amqp(acker) => amqp::requeue(&acker).await,
            Acker::Redis(acker) => acker.retry().await,
        }
    }
}
