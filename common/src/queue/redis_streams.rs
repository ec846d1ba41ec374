//! The Redis Streams back-end, on the `redis` crate.
//!
//! Each queue is a stream read by a consumer group: jobs by the group `workers`, results and
//! dead letters by the group `gateways`. Every process reads as a consumer of its own name
//! (its host, pid and a random suffix), so Redis knows which entries each one holds.
//!
//! | stream (default prefix) | group | what |
//! |---|---|---|
//! | `thumbnailify.jobs` | `workers` | jobs |
//! | `thumbnailify.results` | `gateways` | results |
//! | `thumbnailify.dead` | `gateways` | jobs past the delivery limit |
//! | `thumbnailify.heartbeats` (a pub/sub channel) | | workers' heartbeats |
//!
//! An entry has the fields `message` (the JSON message), `media_id`, and `deliveries`: which
//! delivery of the message the entry is, from 1.
//!
//! - **Publish**: `XADD`; the reply is the confirm. Redis keeps what it acknowledged as far as
//!   its persistence does: run it with `appendonly yes` (and `appendfsync always` for the
//!   same promise as a quorum queue). Whatever Redis loses, the gateway's outbox and its
//!   sweep of records stuck `Processing` make good: no upload is lost, it is only late.
//! - **Ack**: `XACK` and `XDEL` in one script, so the stream holds only what is unfinished.
//! - **Hand back** ([`Delivery::retry`](super::Delivery::retry)) and **claim again**: the
//!   entry is moved, in one script that first `XACK`s it (so only one process can move it), to
//!   the tail of its stream with `deliveries` one more, or, for a job past
//!   `queue.delivery_limit`, to the dead letters.
//! - **A consumer that died**: its entries stay pending in the group. Every consumer runs
//!   `XAUTOCLAIM` on its stream each few seconds for entries idle longer than
//!   `queue.visibility_secs`, and moves what it claims as above. A live consumer keeps the
//!   entries it holds from going idle by claiming them again (`XCLAIM … JUSTID`) every third
//!   of that time, so a long job is not taken from a worker still at it.
//! - **Prefetch**: a consumer reads at most as many entries as it has free places, a place
//!   taken by each delivery until it is acked, handed back or dropped. A delivery dropped
//!   unsettled (a stopping worker's jobs not begun) goes back to the tail at once.
//!
//! A supervisor task owns the connection for publishing and acks: it connects with capped
//! exponential backoff, creates the groups (idempotently, from the start of each stream, so
//! that nothing published before the first consumer is missed), pings, and reconnects when the
//! connection fails, keeping the reason for readiness checks. Each consumer reads on a
//! connection of its own (a blocking `XREADGROUP` would hold up anything sharing it) and
//! connects again on its own after a failure, creating its group again if Redis lost it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncConnectionConfig, Client, RedisError, Script};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use super::{
    Acker, Consumer, ConsumerInner, DEAD_LETTERS_PREFETCH, Delivery, MAX_BACKOFF, MIN_BACKOFF,
    QueueError,
};
use crate::config::QueueConfig;
use crate::message::{Heartbeat, Job, JobResult, process_name};

/// How often the supervisor pings.
const WATCH_INTERVAL: Duration = Duration::from_millis(250);
/// How long a command may wait for its reply (a blocking read waits [`BLOCK`] more).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a read blocks waiting for new entries.
const BLOCK: Duration = Duration::from_secs(2);
/// Entries claimed again at most per `XAUTOCLAIM`.
const CLAIM_BATCH: usize = 64;
/// A consumer that has held nothing for this long is removed from its group.
const FORGET_CONSUMER_AFTER: Duration = Duration::from_secs(3600);

/// Acks an entry: `XACK` then `XDEL`. Returns whether it was still pending.
const ACK: &str = r"
local acked = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return acked";

/// Moves a pending entry to the tail of `KEYS[2]`, as delivery `ARGV[4]`: only if it was
/// still pending (the `XACK` says 1), so that of two processes moving it one does.
const MOVE: &str = r"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return false end
redis.call('XDEL', KEYS[1], ARGV[2])
return redis.call('XADD', KEYS[2], '*', 'message', ARGV[3], 'media_id', ARGV[5], 'deliveries', ARGV[4])";

/// One stream and the group that reads it.
#[derive(Debug, Clone)]
struct Stream {
    key: String,
    group: &'static str,
    /// Where an entry goes once its next delivery would pass the limit (jobs only).
    dead: Option<String>,
}

/// The streams and channel, from the configured prefix.
#[derive(Debug, Clone)]
struct Names {
    jobs: Stream,
    results: Stream,
    dead: Stream,
    heartbeats: String,
}

impl Names {
    fn new(prefix: &str) -> Self {
        let dead = format!("{prefix}.dead");
        Self {
            jobs: Stream {
                key: format!("{prefix}.jobs"),
                group: "workers",
                dead: Some(dead.clone()),
            },
            results: Stream {
                key: format!("{prefix}.results"),
                group: "gateways",
                dead: None,
            },
            dead: Stream {
                key: dead,
                group: "gateways",
                dead: None,
            },
            heartbeats: format!("{prefix}.heartbeats"),
        }
    }

    fn streams(&self) -> [&Stream; 3] {
        [&self.jobs, &self.results, &self.dead]
    }
}

/// A handle on Redis. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RedisQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// `None` when the URL is not one: the queue stays unavailable, saying so.
    client: Option<Client>,
    names: Names,
    /// This process's consumer name in every group.
    consumer: String,
    delivery_limit: u32,
    visibility: Duration,
    ack: Script,
    moved: Script,
    /// The supervisor's live connection, for publishing and acks.
    link: watch::Receiver<Option<MultiplexedConnection>>,
    /// Why Redis is unusable, while it is.
    problem: Mutex<String>,
    closing: watch::Sender<bool>,
}

impl RedisQueue {
    /// Starts the supervisor, which connects in the background: this returns at once, and the
    /// queue reports itself unavailable until Redis answers. A malformed URL is reported the
    /// same way, as the reason the queue is unavailable.
    pub fn start(url: &str, config: &QueueConfig) -> Self {
        let client = Client::open(url);
        let (link_tx, link) = watch::channel(None);
        let (closing, closed) = watch::channel(false);
        let problem = match &client {
            Ok(_) => "connecting to Redis".to_owned(),
            Err(error) => format!("queue.url is not a usable Redis URL ({:?})", error.kind()),
        };
        let inner = Arc::new(Inner {
            client: client.ok(),
            names: Names::new(&config.prefix),
            // The random end of a v7 id: a process restarted with the same pid (as pid 1
            // in a container always is) is another consumer.
            consumer: format!(
                "{}:{}",
                process_name(),
                &uuid::Uuid::now_v7().simple().to_string()[24..]
            ),
            delivery_limit: config.delivery_limit,
            visibility: Duration::from_secs(config.visibility_secs),
            ack: Script::new(ACK),
            moved: Script::new(MOVE),
            link,
            problem: Mutex::new(problem),
            closing,
        });
        if inner.client.is_some() {
            tokio::spawn(supervise(Arc::clone(&inner), link_tx, closed));
        }
        Self { inner }
    }

    pub(super) async fn publish_job(&self, job: &Job) -> Result<(), QueueError> {
        self.publish(&self.inner.names.jobs.key, job.media_id, job)
            .await
    }

    pub(super) async fn publish_result(&self, result: &JobResult) -> Result<(), QueueError> {
        self.publish(&self.inner.names.results.key, result.media_id, result)
            .await
    }

    async fn publish(
        &self,
        stream: &str,
        media_id: uuid::Uuid,
        message: &impl Serialize,
    ) -> Result<(), QueueError> {
        let mut connection = self.inner.live()?;
        let payload = serde_json::to_vec(message).map_err(|e| QueueError::Broker(e.to_string()))?;
        redis::cmd("XADD")
            .arg(stream)
            .arg("*")
            .arg("message")
            .arg(payload)
            .arg("media_id")
            .arg(media_id.to_string())
            .arg("deliveries")
            .arg(1)
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
            .map_err(broker)
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

    /// Publishes a heartbeat on the channel: every gateway subscribed hears it.
    pub(super) async fn publish_heartbeat(&self, heartbeat: &Heartbeat) -> Result<(), QueueError> {
        let mut connection = self.inner.live()?;
        let payload =
            serde_json::to_vec(heartbeat).map_err(|e| QueueError::Broker(e.to_string()))?;
        redis::cmd("PUBLISH")
            .arg(&self.inner.names.heartbeats)
            .arg(payload)
            .query_async::<i64>(&mut connection)
            .await
            .map(drop)
            .map_err(broker)
    }

    /// A task that subscribes to the heartbeats, again after every lost connection.
    pub(super) fn heartbeats(&self) -> mpsc::Receiver<Heartbeat> {
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(listen_heartbeats(
            Arc::clone(&self.inner),
            self.inner.closing.subscribe(),
            tx,
        ));
        rx
    }

    fn consume<T: DeserializeOwned + Send + 'static>(
        &self,
        stream: Stream,
        prefetch: u16,
    ) -> Consumer<T> {
        let places = usize::from(prefetch.max(1));
        let (tx, rx) = mpsc::channel(places);
        tokio::spawn(forward(
            Arc::clone(&self.inner),
            stream,
            places,
            self.inner.closing.subscribe(),
            tx,
        ));
        Consumer {
            inner: ConsumerInner::Broker(rx),
        }
    }

    pub(super) fn check(&self) -> Result<(), QueueError> {
        self.inner.live().map(drop)
    }

    /// Stops the supervisor and every consumer. A delivery dropped unsettled goes back to its
    /// stream (while the connection lasts); one that could not is claimed again after
    /// `queue.visibility_secs`.
    pub(super) async fn close(&self) {
        self.inner.closing.send_replace(true);
    }
}

impl Inner {
    fn live(&self) -> Result<MultiplexedConnection, QueueError> {
        match &*self.link.borrow() {
            Some(connection) => Ok(connection.clone()),
            None => Err(QueueError::Unavailable(
                self.problem
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .clone(),
            )),
        }
    }

    fn set_problem(&self, text: String) {
        *self
            .problem
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = text;
    }

    /// A new connection whose replies may take `extra` longer than a command's.
    async fn connect(&self, extra: Duration) -> Result<MultiplexedConnection, RedisError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(RESPONSE_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT + extra));
        self.client()?
            .get_multiplexed_async_connection_with_config(&config)
            .await
    }

    fn client(&self) -> Result<&Client, RedisError> {
        self.client.as_ref().ok_or_else(|| {
            RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "queue.url is not a usable Redis URL",
            ))
        })
    }

    /// Acks entry `id` of `stream`.
    async fn ack(&self, stream: &Stream, id: &str) -> Result<(), QueueError> {
        let mut connection = self.live()?;
        self.ack
            .key(&stream.key)
            .arg(stream.group)
            .arg(id)
            .invoke_async::<i64>(&mut connection)
            .await
            .map(drop)
            .map_err(broker)
    }

    /// Moves pending entry `id` of `stream` to the tail as delivery `deliveries`, or to the
    /// dead letters when that passes the limit. Returns whether it moved (another process
    /// may have acked or moved it first).
    async fn redeliver(
        &self,
        connection: &mut MultiplexedConnection,
        stream: &Stream,
        entry: &Entry,
        deliveries: u32,
    ) -> Result<bool, RedisError> {
        let to = match &stream.dead {
            // The worker's last try is delivery `limit + 1` (see the worker's runner).
            Some(dead) if deliveries > self.delivery_limit + 1 => dead,
            _ => &stream.key,
        };
        let moved: Option<String> = self
            .moved
            .key(&stream.key)
            .key(to)
            .arg(stream.group)
            .arg(&entry.id)
            .arg(&entry.message)
            .arg(deliveries)
            .arg(&entry.media_id)
            .invoke_async(connection)
            .await?;
        if moved.is_some() && to != &stream.key {
            tracing::warn!(media_id = %entry.media_id, deliveries, "a job passed its delivery limit: to the dead letters");
        }
        Ok(moved.is_some())
    }
}

fn broker(error: RedisError) -> QueueError {
    QueueError::Broker(error.to_string())
}

/// Keeps a live connection published while not closing.
async fn supervise(
    inner: Arc<Inner>,
    link_tx: watch::Sender<Option<MultiplexedConnection>>,
    mut closing: watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    while !*closing.borrow() {
        let connected = async {
            let mut connection = inner.connect(Duration::ZERO).await?;
            for stream in inner.names.streams() {
                create_group(&mut connection, stream).await?;
            }
            Ok::<_, RedisError>(connection)
        };
        match connected.await {
            Ok(mut connection) => {
                tracing::info!("connected to Redis");
                backoff = MIN_BACKOFF;
                link_tx.send_replace(Some(connection.clone()));
                let lost = loop {
                    tokio::select! {
                        _ = closing.wait_for(|closing| *closing) => return,
                        () = tokio::time::sleep(WATCH_INTERVAL) => {}
                    }
                    if let Err(error) = redis::cmd("PING")
                        .query_async::<String>(&mut connection)
                        .await
                    {
                        break error;
                    }
                };
                link_tx.send_replace(None);
                inner.set_problem(format!(
                    "the connection to Redis was lost ({lost}); reconnecting"
                ));
                tracing::warn!(error = %lost, "lost the connection to Redis; reconnecting");
            }
            Err(error) => {
                inner.set_problem(format!("cannot reach Redis: {error}"));
                tracing::warn!(%error, retry_in = ?backoff, "cannot reach Redis");
                tokio::select! {
                    _ = closing.wait_for(|closing| *closing) => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Creates `stream`'s group, reading from the stream's start, unless it exists.
async fn create_group(
    connection: &mut MultiplexedConnection,
    stream: &Stream,
) -> Result<(), RedisError> {
    let created = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&stream.key)
        .arg(stream.group)
        .arg("0")
        .arg("MKSTREAM")
        .query_async::<()>(connection)
        .await;
    match created {
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(()),
        other => other,
    }
}

/// What a consumer needs of an entry to hand it out, ack it or move it.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    id: String,
    message: Vec<u8>,
    media_id: String,
    deliveries: u32,
}

impl Entry {
    fn from_stream_id(entry: &StreamId) -> Self {
        Self {
            id: entry.id.clone(),
            message: entry.get("message").unwrap_or_default(),
            media_id: entry.get("media_id").unwrap_or_default(),
            deliveries: entry.get("deliveries").unwrap_or(1),
        }
    }
}

/// How a delivery from Redis is acked or handed back. Holds its consumer's place until then.
#[derive(Debug)]
pub(super) struct RedisAcker {
    inner: Arc<Inner>,
    stream: Stream,
    entry: Entry,
    held: Held,
    /// Acked or handed back (else, when dropped, it goes back to the queue).
    settled: bool,
    _place: OwnedSemaphorePermit,
}

impl RedisAcker {
    /// Acks the delivery.
    pub(super) async fn ack(mut self) -> Result<(), QueueError> {
        self.settled = true;
        self.inner.ack(&self.stream, &self.entry.id).await
    }

    /// Hands the delivery back: to the tail of its stream as the next delivery.
    pub(super) async fn retry(mut self) -> Result<(), QueueError> {
        self.settled = true;
        let mut connection = self.inner.live()?;
        self.inner
            .redeliver(
                &mut connection,
                &self.stream,
                &self.entry,
                self.entry.deliveries.saturating_add(1),
            )
            .await
            .map(drop)
            .map_err(broker)
    }
}

impl Drop for RedisAcker {
    /// Settled or dropped, the entry is no longer this consumer's to keep. Dropped unsettled
    /// (a worker stopping drops the jobs it had taken and not begun), it goes back to the
    /// tail of its stream at once, as the same delivery, not after the visibility time: on a
    /// task, while the runtime runs; should that not happen, the claim of idle entries does
    /// it later.
    fn drop(&mut self) {
        self.held.release(&self.entry.id);
        if self.settled {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (inner, stream, entry) = (
            Arc::clone(&self.inner),
            self.stream.clone(),
            self.entry.clone(),
        );
        handle.spawn(async move {
            let Ok(mut connection) = inner.live() else {
                return;
            };
            let deliveries = entry.deliveries;
            if let Err(error) = inner
                .redeliver(&mut connection, &stream, &entry, deliveries)
                .await
            {
                tracing::debug!(%error, "cannot hand back an entry dropped unsettled; it will be claimed");
            }
        });
    }
}

/// The entries a consumer has handed out and not yet settled, kept from going idle.
#[derive(Debug, Clone, Default)]
struct Held(Arc<Mutex<HashSet<String>>>);

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take(&self, id: &str) {
        self.lock().insert(id.to_owned());
    }

    fn release(&self, id: &str) {
        self.lock().remove(id);
    }

    fn ids(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }
}

/// Forwards the entries of `stream` to `tx`, at most `places` unsettled at once, until
/// closing or until the receiving end is dropped; beside it, a task keeps what it holds and
/// claims what others let go idle.
async fn forward<T: DeserializeOwned + Send + 'static>(
    inner: Arc<Inner>,
    stream: Stream,
    places: usize,
    mut closing: watch::Receiver<bool>,
    tx: mpsc::Sender<Delivery<T>>,
) {
    let places = Arc::new(Semaphore::new(places));
    let held = Held::default();
    let upkeep = tokio::spawn(upkeep(Arc::clone(&inner), stream.clone(), held.clone()));
    let mut backoff = MIN_BACKOFF;
    while !*closing.borrow() {
        let began = tokio::time::Instant::now();
        let session = consume_on(&inner, &stream, &places, &held, &mut closing, &tx);
        match session.await {
            Ok(()) => break,
            Err(error) => {
                if began.elapsed() > MAX_BACKOFF * 2 {
                    // A session that lasted: this is a new outage, not the same one.
                    backoff = MIN_BACKOFF;
                }
                tracing::warn!(stream = %stream.key, %error, retry_in = ?backoff, "consumer interrupted");
                tokio::select! {
                    _ = closing.wait_for(|closing| *closing) => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    upkeep.abort();
}

/// Every third of the visibility time, on the shared connection: claims again what this
/// consumer holds, so that it does not go idle while a long job runs (the reads block, so
/// this cannot wait for them), then claims what has gone idle.
async fn upkeep(inner: Arc<Inner>, stream: Stream, held: Held) {
    let period = (inner.visibility / 3).max(Duration::from_millis(200));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Ok(mut connection) = inner.live() else {
            continue;
        };
        let done = async {
            keep_held(&inner, &mut connection, &stream, &held).await?;
            claim_idle(&inner, &mut connection, &stream).await
        };
        if let Err(error) = done.await {
            tracing::warn!(stream = %stream.key, %error, "cannot claim entries");
        }
    }
}

/// One connection's worth of consuming: returns `Ok` when done for good (closing, or the
/// receiver gone), an error when the connection failed.
async fn consume_on<T: DeserializeOwned + Send + 'static>(
    inner: &Arc<Inner>,
    stream: &Stream,
    places: &Arc<Semaphore>,
    held: &Held,
    closing: &mut watch::Receiver<bool>,
    tx: &mpsc::Sender<Delivery<T>>,
) -> Result<(), RedisError> {
    let mut connection = inner.connect(BLOCK).await?;
    create_group(&mut connection, stream).await?;
    tracing::debug!(stream = %stream.key, "consuming");
    loop {
        let first = tokio::select! {
            _ = closing.wait_for(|closing| *closing) => return Ok(()),
            permit = Arc::clone(places).acquire_owned() => permit.expect("never closed"),
        };
        let free = 1 + places.available_permits();
        let options = StreamReadOptions::default()
            .group(stream.group, &inner.consumer)
            .count(free)
            .block(BLOCK.as_millis() as usize);
        let mut command = redis::cmd("XREADGROUP");
        command
            .arg(&options)
            .arg("STREAMS")
            .arg(&stream.key)
            .arg(">");
        let read = command.query_async::<Option<StreamReadReply>>(&mut connection);
        let reply = tokio::select! {
            _ = closing.wait_for(|closing| *closing) => return Ok(()),
            reply = read => reply,
        };
        let reply = match reply {
            // Redis lost the group (restarted without its data): made again.
            Err(error) if error.code() == Some("NOGROUP") => {
                create_group(&mut connection, stream).await?;
                continue;
            }
            other => other?,
        };
        let entries = reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids);
        let mut first = Some(first);
        for entry in entries {
            let entry = Entry::from_stream_id(&entry);
            let message = match serde_json::from_slice::<T>(&entry.message) {
                Ok(message) => message,
                Err(error) => {
                    // Not ours: dropped, never handed out again.
                    tracing::error!(stream = %stream.key, %error, "dropping an entry that is not valid JSON of its kind");
                    inner
                        .ack
                        .key(&stream.key)
                        .arg(stream.group)
                        .arg(&entry.id)
                        .invoke_async::<i64>(&mut connection)
                        .await?;
                    continue;
                }
            };
            let place = match first.take() {
                Some(place) => place,
                None => match Arc::clone(places).try_acquire_owned() {
                    Ok(place) => place,
                    // More than asked for cannot come; should it, it waits its turn.
                    Err(_) => Arc::clone(places)
                        .acquire_owned()
                        .await
                        .expect("never closed"),
                },
            };
            held.take(&entry.id);
            let delivery = Delivery {
                message,
                deliveries: entry.deliveries,
                acker: Acker::Redis(RedisAcker {
                    inner: Arc::clone(inner),
                    stream: stream.clone(),
                    entry,
                    held: held.clone(),
                    settled: false,
                    _place: place,
                }),
            };
            if tx.send(delivery).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// Claims again, for this consumer, the entries it holds, so that they do not go idle.
async fn keep_held(
    inner: &Inner,
    connection: &mut MultiplexedConnection,
    stream: &Stream,
    held: &Held,
) -> Result<(), RedisError> {
    let ids = held.ids();
    if ids.is_empty() {
        return Ok(());
    }
    redis::cmd("XCLAIM")
        .arg(&stream.key)
        .arg(stream.group)
        .arg(&inner.consumer)
        .arg(0)
        .arg(&ids)
        .arg("JUSTID")
        .query_async::<()>(connection)
        .await
}

/// Claims the entries idle past the visibility time (their consumer died) and moves each to
/// the tail as its next delivery, or to the dead letters; and forgets consumers long gone.
async fn claim_idle(
    inner: &Inner,
    connection: &mut MultiplexedConnection,
    stream: &Stream,
) -> Result<(), RedisError> {
    let min_idle = inner.visibility.as_millis() as usize;
    let mut start = "0-0".to_owned();
    loop {
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(&stream.key)
            .arg(stream.group)
            .arg(&inner.consumer)
            .arg(min_idle)
            .arg(&start)
            .arg(StreamAutoClaimOptions::default().count(CLAIM_BATCH))
            .query_async(connection)
            .await?;
        for claimed in &reply.claimed {
            let entry = Entry::from_stream_id(claimed);
            tracing::warn!(stream = %stream.key, media_id = %entry.media_id, deliveries = entry.deliveries, "claimed an entry whose consumer stopped answering");
            let next = entry.deliveries.saturating_add(1);
            inner.redeliver(connection, stream, &entry, next).await?;
        }
        if reply.next_stream_id == "0-0" {
            break;
        }
        start = reply.next_stream_id;
    }
    forget_idle_consumers(inner, connection, stream).await
}

/// Removes from the group the consumers that hold nothing and have not read for an hour:
/// every process that ever ran would otherwise stay listed.
async fn forget_idle_consumers(
    inner: &Inner,
    connection: &mut MultiplexedConnection,
    stream: &Stream,
) -> Result<(), RedisError> {
    let consumers: Vec<std::collections::HashMap<String, redis::Value>> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(&stream.key)
        .arg(stream.group)
        .query_async(connection)
        .await?;
    for consumer in consumers {
        let field = |name: &str| consumer.get(name).cloned();
        let name: Option<String> = field("name").and_then(|v| redis::from_redis_value(v).ok());
        let pending: i64 = field("pending")
            .and_then(|v| redis::from_redis_value(v).ok())
            .unwrap_or(1);
        let idle: i64 = field("idle")
            .and_then(|v| redis::from_redis_value(v).ok())
            .unwrap_or(0);
        if let Some(name) = name
            && name != inner.consumer
            && pending == 0
            && u128::try_from(idle).unwrap_or(0) > FORGET_CONSUMER_AFTER.as_millis()
        {
            redis::cmd("XGROUP")
                .arg("DELCONSUMER")
                .arg(&stream.key)
                .arg(stream.group)
                .arg(&name)
                .query_async::<i64>(connection)
                .await?;
        }
    }
    Ok(())
}

/// Forwards the heartbeats to `tx`, subscribing again after every lost connection, until
/// closing or until the receiver is dropped. A full channel drops the heartbeat.
async fn listen_heartbeats(
    inner: Arc<Inner>,
    mut closing: watch::Receiver<bool>,
    tx: mpsc::Sender<Heartbeat>,
) {
    let mut backoff = MIN_BACKOFF;
    while !*closing.borrow() {
        let session = async {
            let mut pubsub = inner.client()?.get_async_pubsub().await?;
            pubsub.subscribe(&inner.names.heartbeats).await?;
            backoff = MIN_BACKOFF;
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                if let Ok(heartbeat) =
                    serde_json::from_slice::<Heartbeat>(message.get_payload_bytes())
                {
                    match tx.try_send(heartbeat) {
                        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                        Err(mpsc::error::TrySendError::Closed(_)) => return Ok(true),
                    }
                }
            }
            Ok::<_, RedisError>(false)
        };
        let done = tokio::select! {
            _ = closing.wait_for(|closing| *closing) => return,
            done = session => done,
        };
        match done {
            Ok(true) => return,
            Ok(false) => tracing::warn!("the heartbeat subscription ended; subscribing again"),
            Err(error) => tracing::warn!(%error, "cannot hear heartbeats; trying again"),
        }
        tokio::select! {
            _ = closing.wait_for(|closing| *closing) => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
