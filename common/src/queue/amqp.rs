//! The RabbitMQ back-end, on lapin.
//!
//! A supervisor task owns the connection: it connects with capped exponential backoff,
//! declares the topology (idempotently, so every process may do it), opens a publishing
//! channel in confirm mode, and publishes the live [`Link`] on a watch channel; when the
//! connection drops it withdraws the link, keeps the reason for readiness checks, and connects
//! again. Publishers use whatever link is live and fail fast without one; consumers are tasks
//! that consume again on every new link.
//!
//! Topology (names below use the default prefix `thumbnailify`):
//!
//! | name | kind | arguments |
//! |---|---|---|
//! | `thumbnailify.jobs` | durable quorum queue | `x-delivery-limit` (config), `x-dead-letter-exchange: thumbnailify.dlx`, `x-dead-letter-routing-key: thumbnailify.dead` |
//! | `thumbnailify.results` | durable quorum queue | |
//! | `thumbnailify.dlx` | durable direct exchange | |
//! | `thumbnailify.dead` | durable quorum queue, bound to `thumbnailify.dlx` with key `thumbnailify.dead` | |
//! | `thumbnailify.heartbeats` | durable fanout exchange: workers' heartbeats | |
//! | (server-named) | exclusive auto-delete queue per gateway, bound to the heartbeats exchange | `x-message-ttl: 60000` |
//!
//! Messages are persistent JSON with `message_id` = media id, `content_type:
//! application/json` and, when traces are exported, the W3C `traceparent` header, published
//! to the default exchange and confirmed by the broker.
//! Deliveries are acked manually. After a reconnect, acks of deliveries from the old channel
//! fail; the broker then delivers those messages again, which processing tolerates.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use super::{
    Acker, Consumer, ConsumerInner, DEAD_LETTERS_PREFETCH, Delivery, MAX_BACKOFF, MIN_BACKOFF,
    QueueError,
};
use crate::config::QueueConfig;
use crate::message::{Heartbeat, Job, JobResult};

/// The largest AMQP frame we negotiate, unless the URL's `frame_max` says otherwise. lapin
/// keeps 32 frames of zero-filled buffer each way: at RabbitMQ's default of 128 KiB that is
/// 8 MiB per process, for messages under 1 KiB.
const FRAME_MAX: u32 = 16 * 1024;

/// How often the supervisor checks that the connection is alive.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// How long a publish may wait for the broker's confirm.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// The names of the queues and exchange, from the configured prefix.
#[derive(Debug, Clone)]
struct Names {
    jobs: String,
    results: String,
    dead_exchange: String,
    dead: String,
    heartbeats: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        Self {
            jobs: format!("{prefix}.jobs"),
            results: format!("{prefix}.results"),
            dead_exchange: format!("{prefix}.dlx"),
            dead: format!("{prefix}.dead"),
            heartbeats: format!("{prefix}.heartbeats"),
        }
    }
}

/// A live connection with its confirm-mode publishing channel.
#[derive(Debug)]
struct Link {
    connection: Connection,
    publisher: Channel,
}

/// A handle on RabbitMQ. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AmqpQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    names: Names,
    link: watch::Receiver<Option<Arc<Link>>>,
    /// Why the broker is unusable, while it is.
    problem: Arc<Mutex<String>>,
    closing: watch::Sender<bool>,
}

impl AmqpQueue {
    /// Starts the supervisor, which connects in the background: this returns at once, and the
    /// queue reports itself unavailable until the broker answers.
    pub fn start(url: &str, config: &QueueConfig) -> Self {
        let names = Names::new(&config.prefix);
        let (link_tx, link) = watch::channel(None);
        let (closing, closed) = watch::channel(false);
        let problem = Arc::new(Mutex::new("connecting to RabbitMQ".to_owned()));
        tokio::spawn(supervise(
            url.to_owned(),
            names.clone(),
            config.delivery_limit,
            link_tx,
            Arc::clone(&problem),
            closed,
        ));
        Self {
            inner: Arc::new(Inner {
                names,
                link,
                problem,
                closing,
            }),
        }
    }

    pub(super) async fn publish_job(&self, job: &Job) -> Result<(), QueueError> {
        let trace = job.traceparent.as_deref();
        self.publish(&self.inner.names.jobs, job.media_id, trace, job)
            .await
    }

    pub(super) async fn publish_result(&self, result: &JobResult) -> Result<(), QueueError> {
        let trace = result.traceparent.as_deref();
        self.publish(&self.inner.names.results, result.media_id, trace, result)
            .await
    }

    /// Publishes `message`, persistent and confirmed, with its trace context as the W3C
    /// `traceparent` header (as tools reading the broker expect it).
    async fn publish(
        &self,
        queue: &str,
        media_id: uuid::Uuid,
        traceparent: Option<&str>,
        message: &impl Serialize,
    ) -> Result<(), QueueError> {
        let link = self.live_link()?;
        let payload = serde_json::to_vec(message).map_err(|e| QueueError::Broker(e.to_string()))?;
        let mut properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(media_id.to_string().into());
        if let Some(traceparent) = traceparent {
            let mut headers = FieldTable::default();
            headers.insert(
                "traceparent".into(),
                AMQPValue::LongString(traceparent.into()),
            );
            properties = properties.with_headers(headers);
        }
        let confirm = async {
            link.publisher
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    &payload,
                    properties,
                )
                .await?
                .await
        };
        match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
            Ok(Ok(Confirmation::Ack(_))) => Ok(()),
            Ok(Ok(other)) => Err(QueueError::Broker(format!(
                "the broker did not confirm the message: {other:?}"
            ))),
            Ok(Err(error)) => Err(QueueError::Broker(error.to_string())),
            Err(_) => Err(QueueError::Broker(
                "no confirm from the broker in time".to_owned(),
            )),
        }
    }

    pub(super) fn consume_jobs(&self, prefetch: u16) -> Consumer<Job> {
        self.consume(self.inner.names.jobs.clone(), prefetch)
    }

    pub(super) fn consume_results(&self, prefetch: u16) -> Consumer<JobResult> {
        self.consume(self.inner.names.results.clone(), prefetch)
    }

    pub(super) fn consume_dead_jobs(&self) -> Consumer<Job> {
        self.consume(self.inner.names.dead.clone(), DEAD_LETTERS_PREFETCH)
    }

    /// Publishes a heartbeat to the fanout exchange, transient and unconfirmed.
    pub(super) async fn publish_heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), QueueError> {
        let link = self.live_link()?;
        let payload =
            serde_json::to_vec(heartbeat).map_err(|e| QueueError::Broker(e.to_string()))?;
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_expiration("60000".into());
        link.publisher
            .basic_publish(
                self.inner.names.heartbeats.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                &payload,
                properties,
            )
            .await
            .map(drop)
            .map_err(|error| QueueError::Broker(error.to_string()))
    }

    /// A task that listens to the heartbeats on every live link, through a queue of its own.
    pub(super) fn heartbeats(&self) -> mpsc::Receiver<Heartbeat> {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(listen_heartbeats(
            self.inner.names.heartbeats.clone(),
            self.inner.link.clone(),
            self.inner.closing.subscribe(),
            tx,
        ));
        rx
    }

    /// A consumer task that follows the live link.
    fn consume<T: DeserializeOwned + Send + 'static>(
        &self,
        queue: String,
        prefetch: u16,
    ) -> Consumer<T> {
        let (tx, rx) = mpsc::channel(usize::from(prefetch.max(1)));
        tokio::spawn(forward(
            queue,
            prefetch,
            self.inner.link.clone(),
            self.inner.closing.subscribe(),
            tx,
        ));
        Consumer {
            inner: ConsumerInner::Broker(rx),
        }
    }

    pub(super) fn check(&self) -> Result<(), QueueError> {
        self.live_link().map(drop)
    }

    fn live_link(&self) -> Result<Arc<Link>, QueueError> {
        match &*self.inner.link.borrow() {
            Some(link) if link.connection.status().connected() => Ok(Arc::clone(link)),
            _ => Err(QueueError::Unavailable(
                self.inner
                    .problem
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .clone(),
            )),
        }
    }

    /// Stops the supervisor and every consumer and closes the connection. Unacked deliveries
    /// go back to their queues.
    pub(super) async fn close(&self) {
        self.inner.closing.send_replace(true);
        let link = self.inner.link.borrow().clone();
        if let Some(link) = link {
            let _ = link.connection.close(200, "shutting down".into()).await;
        }
    }
}

/// Keeps a live link published while not closing.
async fn supervise(
    url: String,
    names: Names,
    delivery_limit: u32,
    link_tx: watch::Sender<Option<Arc<Link>>>,
    problem: Arc<Mutex<String>>,
    mut closing: watch::Receiver<bool>,
) {
    let set_problem = |text: String| {
        *problem
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = text;
    };
    let mut backoff = MIN_BACKOFF;
    while !*closing.borrow() {
        match connect(&url, &names, delivery_limit).await {
            Ok(link) => {
                tracing::info!("connected to RabbitMQ");
                backoff = MIN_BACKOFF;
                let link = Arc::new(link);
                link_tx.send_replace(Some(Arc::clone(&link)));
                while link.connection.status().connected() && link.publisher.status().connected() {
                    tokio::select! {
                        _ = closing.wait_for(|closing| *closing) => return,
                        () = tokio::time::sleep(WATCH_INTERVAL) => {}
                    }
                }
                link_tx.send_replace(None);
                set_problem("the connection to RabbitMQ was lost; reconnecting".to_owned());
                tracing::warn!("lost the connection to RabbitMQ; reconnecting");
            }
            Err(error) => {
                set_problem(format!("cannot reach RabbitMQ: {error}"));
                tracing::warn!(%error, retry_in = ?backoff, "cannot reach RabbitMQ");
                tokio::select! {
                    _ = closing.wait_for(|closing| *closing) => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Connects, declares the topology and opens the publishing channel.
async fn connect(url: &str, names: &Names, delivery_limit: u32) -> Result<Link, lapin::Error> {
    let properties = ConnectionProperties::default().with_connection_name("thumbnailify".into());
    let connection = match url.parse::<lapin::uri::AMQPUri>() {
        Ok(mut uri) => {
            uri.query.frame_max.get_or_insert(FRAME_MAX);
            Connection::connect_uri(uri, properties).await?
        }
        // lapin reports the malformed URL.
        Err(_) => Connection::connect(url, properties).await?,
    };
    let channel = connection.create_channel().await?;
    declare(&channel, names, delivery_limit).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(Link {
        connection,
        publisher: channel,
    })
}

/// Declares the queues and exchange. Idempotent while the arguments stay the same.
async fn declare(
    channel: &Channel,
    names: &Names,
    delivery_limit: u32,
) -> Result<(), lapin::Error> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let quorum = || {
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        arguments
    };
    let mut jobs = quorum();
    jobs.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongInt(i32::try_from(delivery_limit).unwrap_or(i32::MAX)),
    );
    jobs.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(names.dead_exchange.as_str().into()),
    );
    jobs.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(names.dead.as_str().into()),
    );
    channel
        .exchange_declare(
            names.dead_exchange.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(names.dead.as_str().into(), durable, quorum())
        .await?;
    channel
        .queue_bind(
            names.dead.as_str().into(),
            names.dead_exchange.as_str().into(),
            names.dead.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            names.heartbeats.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(names.jobs.as_str().into(), durable, jobs)
        .await?;
    channel
        .queue_declare(names.results.as_str().into(), durable, quorum())
        .await?;
    Ok(())
}

/// Runs `session` on every live link in turn, until closing or until a session says to stop
/// (its receiver is gone): when a link drops, it waits for the supervisor to publish the next.
async fn on_every_link<F, Fut>(
    what: &str,
    mut link: watch::Receiver<Option<Arc<Link>>>,
    mut closing: watch::Receiver<bool>,
    mut session: F,
) where
    F: FnMut(Arc<Link>, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = Result<Stop, lapin::Error>>,
{
    loop {
        let current = tokio::select! {
            _ = closing.wait_for(|closing| *closing) => return,
            current = link.wait_for(Option::is_some) => match current {
                Ok(current) => current.clone().expect("waited for Some"),
                Err(_) => return,
            },
        };
        match session(Arc::clone(&current), closing.clone()).await {
            Ok(Stop::Closing) | Ok(Stop::ReceiverGone) => return,
            Ok(Stop::StreamEnded) => {}
            Err(error) => tracing::warn!(%what, %error, "consumer interrupted"),
        }
        // Wait for the supervisor to withdraw this link before looking for the next one.
        while link
            .borrow()
            .as_ref()
            .is_some_and(|live| Arc::ptr_eq(live, &current))
        {
            tokio::select! {
                _ = closing.wait_for(|closing| *closing) => return,
                () = tokio::time::sleep(WATCH_INTERVAL) => {}
            }
        }
    }
}

/// Forwards deliveries of `queue` to `tx`, consuming again on every new link, until closing or
/// until the receiving end is dropped.
async fn forward<T: DeserializeOwned + Send + 'static>(
    queue: String,
    prefetch: u16,
    link: watch::Receiver<Option<Arc<Link>>>,
    closing: watch::Receiver<bool>,
    tx: mpsc::Sender<Delivery<T>>,
) {
    let what = queue.clone();
    on_every_link(&what, link, closing, |current, mut closing| {
        let (queue, tx) = (queue.clone(), tx.clone());
        async move { consume_on(&current, &queue, prefetch, &mut closing, &tx).await }
    })
    .await;
}

/// Forwards the heartbeats of every live link to `tx` until closing or until the receiver is
/// dropped. A full channel drops the heartbeat: the next one says the same.
async fn listen_heartbeats(
    exchange: String,
    link: watch::Receiver<Option<Arc<Link>>>,
    closing: watch::Receiver<bool>,
    tx: mpsc::Sender<Heartbeat>,
) {
    on_every_link("heartbeats", link, closing, |current, mut closing| {
        let (exchange, tx) = (exchange.clone(), tx.clone());
        async move { listen_on(&current, &exchange, &mut closing, &tx).await }
    })
    .await;
}

async fn listen_on(
    link: &Link,
    exchange: &str,
    closing: &mut watch::Receiver<bool>,
    tx: &mpsc::Sender<Heartbeat>,
) -> Result<Stop, lapin::Error> {
    let channel = link.connection.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert("x-message-ttl".into(), AMQPValue::LongInt(60_000));
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await?;
    channel
        .queue_bind(
            queue.name().as_str().into(),
            exchange.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.name().as_str().into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    loop {
        let next = tokio::select! {
            _ = closing.wait_for(|closing| *closing) => return Ok(Stop::Closing),
            next = consumer.next() => next,
        };
        let delivery = match next {
            Some(delivery) => delivery?,
            None => return Ok(Stop::StreamEnded),
        };
        if let Ok(heartbeat) = serde_json::from_slice::<Heartbeat>(&delivery.data) {
            match tx.try_send(heartbeat) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => return Ok(Stop::ReceiverGone),
            }
        }
    }
}

enum Stop {
    Closing,
    ReceiverGone,
    StreamEnded,
}

async fn consume_on<T: DeserializeOwned>(
    link: &Link,
    queue: &str,
    prefetch: u16,
    closing: &mut watch::Receiver<bool>,
    tx: &mpsc::Sender<Delivery<T>>,
) -> Result<Stop, lapin::Error> {
    let channel = link.connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::debug!(%queue, "consuming");
    loop {
        let next = tokio::select! {
            _ = closing.wait_for(|closing| *closing) => return Ok(Stop::Closing),
            next = consumer.next() => next,
        };
        let delivery = match next {
            Some(delivery) => delivery?,
            None => return Ok(Stop::StreamEnded),
        };
        match serde_json::from_slice::<T>(&delivery.data) {
            Ok(message) => {
                let delivery = Delivery {
                    message,
                    deliveries: delivery_count(&delivery.properties) + 1,
                    acker: Acker::Amqp(delivery.acker),
                };
                if tx.send(delivery).await.is_err() {
                    return Ok(Stop::ReceiverGone);
                }
            }
            Err(error) => {
                // Not ours: to the dead-letter queue (for jobs) or dropped, never redelivered.
                tracing::error!(%queue, %error, "rejecting a message that is not valid JSON of its kind");
                delivery
                    .acker
                    .reject(BasicRejectOptions { requeue: false })
                    .await?;
            }
        }
    }
}

/// How many times a quorum queue has had a message handed back: its `x-delivery-count`
/// header, absent on the first delivery.
fn delivery_count(properties: &lapin::BasicProperties) -> u32 {
    let count = properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get("x-delivery-count"));
    let count = match count {
        Some(AMQPValue::LongLongInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => i64::from(*n),
        Some(AMQPValue::LongUInt(n)) => i64::from(*n),
        Some(AMQPValue::ShortInt(n)) => i64::from(*n),
        Some(AMQPValue::ShortUInt(n)) => i64::from(*n),
        Some(AMQPValue::ShortShortInt(n)) => i64::from(*n),
        Some(AMQPValue::ShortShortUInt(n)) => i64::from(*n),
        _ => 0,
    };
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Acknowledges a delivery.
pub(super) async fn ack(acker: &lapin::Acker) -> Result<(), QueueError> {
    acker
        .ack(BasicAckOptions::default())
        .await
        .map(drop)
        .map_err(|error| QueueError::Broker(error.to_string()))
}

/// Hands a delivery back to its queue.
pub(super) async fn requeue(acker: &lapin::Acker) -> Result<(), QueueError> {
    acker
        .nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        })
        .await
        .map(drop)
        .map_err(|error| QueueError::Broker(error.to_string()))
}
