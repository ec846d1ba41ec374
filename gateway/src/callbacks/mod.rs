//! Completion callbacks: when a record becomes final, POST it, signed, to the URL its upload
//! named (`callback_url`) or to `callbacks.url`.
//!
//! - **Durable, at least once.** The pending delivery is part of the record: it is written
//!   in the same transaction as the final state, and the store indexes when it is due
//!   ([`Store::due_callbacks`]). The [`Deliverer`] takes due records (each leased for the
//!   request timeout and a margin, so one gateway of many delivers it and a gateway that
//!   dies mid-delivery only delays it), delivers, and records the outcome in the record. A crash anywhere means a
//!   delivery is made again, never lost.
//! - **Signed** as the Standard Webhooks specification says: `webhook-id` (`msg_<media_id>`,
//!   the same on every attempt, for the receiver's deduplication), `webhook-timestamp` and
//!   `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>` with
//!   `callbacks.secret`, by the specification's own `standardwebhooks` crate.
//! - **Retried** on network errors, timeouts, 408, 429 and 5xx, after a capped exponential
//!   backoff with jitter, up to `callbacks.max_attempts`; any other answer but 2xx (other
//!   4xx, a redirect: redirects are not followed) fails the delivery at once.
//! - **Only where a client may send it**: the URL is checked at upload ([`address`]), and the
//!   host is resolved at each delivery by [`address::VettedResolver`], which hands the
//!   client only addresses that pass (a name that now resolves inside is `failed`, with the
//!   reason). Connect and whole-request timeouts; at most `callbacks.concurrency` at once.
//! - **One receiver waits only on itself.** At most `callbacks.concurrency_per_host` of the
//!   deliveries in flight go to one host. A due record whose host is at its bound is left
//!   leased and not started; once its lease lapses it is due again, so a receiver that
//!   never answers has its own callbacks retried at its own pace while every other
//!   receiver's are delivered at once.

use common::address;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::config::CallbacksConfig;
use common::record::{Callback, CallbackState, Event, Record, Service};
use common::shutdown::Shutdown;
use standardwebhooks::Webhook;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use crate::metrics::{Delivery, Metrics};
use crate::store::{Store, StoreError, Update};

/// How much longer than one request's timeout a deliverer holds a due record before
/// another may take it.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// How many due records one round takes.
const BATCH: usize = 64;

/// How often the store is asked for due deliveries without being woken.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// A handle that wakes the deliverer. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    /// Wakes the deliverer: a record with a callback may have become final.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// What the upload path needs to know of callbacks.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Whether callbacks can be signed (a secret is configured).
    pub enabled: bool,
    /// The hosts callbacks may reach although internal.
    pub allowed: address::Allowed,
}

/// Why callbacks cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The secret is missing, unreadable or not base64.
    #[error("callbacks.secret: {0}")]
    Secret(String),
    /// The HTTP client cannot be built.
    #[error("callbacks: {0}")]
    Client(#[from] reqwest::Error),
}

/// The signing secret of `config`: `callbacks.secret`, or the first line of
/// `callbacks.secret_file`; `None` when neither is set.
pub fn load_secret(config: &CallbacksConfig) -> Result<Option<Webhook>, CallbackError> {
    let text = match (&config.secret, &config.secret_file) {
        (Some(secret), _) => secret.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|error| CallbackError::Secret(format!("{}: {error}", path.display())))?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned(),
        (None, None) => return Ok(None),
    };
    Webhook::new(&text)
        .map(Some)
        .map_err(|_| CallbackError::Secret("must be `whsec_` followed by base64".to_owned()))
}

/// Delivers due callbacks.
#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    client: reqwest::Client,
    signer: Arc<Option<Webhook>>,
    config: Arc<CallbacksConfig>,
    metrics: Arc<Metrics>,
    wake: Wake,
    allowed: address::Allowed,
    hosts: Hosts,
}

/// The deliveries in flight to each receiver host.
#[derive(Debug, Clone, Default)]
struct Hosts(Arc<Mutex<HashMap<String, usize>>>);

/// One delivery in flight to a host; counted until dropped.
struct HostSlot {
    hosts: Hosts,
    host: String,
}

impl Hosts {
    /// A slot for `host`, unless `most` deliveries to it are in flight already.
    fn take(&self, host: String, most: usize) -> Option<HostSlot> {
        let mut hosts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = hosts.entry(host.clone()).or_default();
        if *count >= most {
            return None;
        }
        *count += 1;
        Some(HostSlot {
            hosts: self.clone(),
            host,
        })
    }
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        let mut hosts = self.hosts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = hosts.get_mut(&self.host) {
            *count -= 1;
            if *count == 0 {
                hosts.remove(&self.host);
            }
        }
    }
}

/// The host a callback URL goes to, lower case; empty for one that does not parse (its
/// attempt fails on its own).
fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_ascii_lowercase))
        .unwrap_or_default()
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer").finish_non_exhaustive()
    }
}

/// What one attempt came to.
enum Attempt {
    /// 2xx.
    Delivered(u16),
    /// Worth trying again: network error, timeout, 408, 429, 5xx.
    Retry(Option<u16>, String),
    /// Not worth trying again.
    Failed(Option<u16>, String),
}

impl Deliverer {
    /// A deliverer for `store`'s records, signing with `signer`, woken by `wake`.
    pub fn new(
        store: Store,
        config: &CallbacksConfig,
        signer: Option<Webhook>,
        metrics: Arc<Metrics>,
        wake: Wake,
    ) -> Result<Self, CallbackError> {
        let allowed = address::Allowed::new(&config.allowed_hosts);
        let resolver = address::VettedResolver::new(allowed.clone());
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(resolver))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            .timeout(Duration::from_secs(config.timeout_secs))
            .user_agent(concat!("thumbnailify/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            store,
            client,
            signer: Arc::new(signer),
            config: Arc::new(config.clone()),
            metrics,
            wake,
            allowed,
            hosts: Hosts::default(),
        })
    }

    /// Delivers until `shutdown` fires.
    pub async fn run(self, mut shutdown: Shutdown) {
        let permits = Arc::new(Semaphore::new(self.config.concurrency));
        let lease = Duration::from_secs(self.config.timeout_secs) + LEASE_MARGIN;
        loop {
            let taken = match self.store.due_callbacks(BATCH, lease).await {
                Ok(records) => records,
                Err(error) => {
                    tracing::warn!(%error, "cannot read due callbacks");
                    Vec::new()
                }
            };
            let full_batch = taken.len() == BATCH;
            for record in taken {
                let host = record
                    .callback
                    .as_ref()
                    .map_or_else(String::new, |c| host_of(&c.url));
                let Some(host_slot) = self.hosts.take(host, self.config.concurrency_per_host)
                else {
                    // Its host is busy: left leased, due again when the lease lapses.
                    continue;
                };
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    return;
                };
                let this = self.clone();
                tokio::spawn(async move {
                    if let Err(error) = this.deliver(record).await {
                        // The lease runs out and the delivery is made again.
                        tracing::warn!(%error, "cannot record a callback's outcome");
                    }
                    drop((permit, host_slot));
                });
            }
            if full_batch {
                continue;
            }
            tokio::select! {
                () = shutdown.recv() => return,
                () = self.wake.0.notified() => {}
                () = tokio::time::sleep(IDLE_CHECK) => {}
            }
        }
    }

    /// Makes one attempt at `record`'s callback and records how it went.
    async fn deliver(&self, record: Record) -> Result<(), StoreError> {
        let Some(callback) = record.callback.clone() else {
            return Ok(());
        };
        let media_id = record.media_id;
        let attempt = self.attempt(&callback.url, record.public()).await;
        let max_attempts = self.config.max_attempts;
        let backoff = self.backoff(callback.attempts + 1);
        let update = self
            .store
            .update(media_id, |current| {
                let Some(pending) = current.callback.as_mut() else {
                    return false;
                };
                if pending.state != CallbackState::Pending || pending.attempts != callback.attempts
                {
                    return false; // another attempt was recorded meanwhile
                }
                let event = record_attempt(pending, &attempt, max_attempts, backoff);
                current.push_event(event);
                true
            })
            .await?;
        if let Update::Changed(current) = update
            && let Some(callback) = &current.callback
        {
            let outcome = match callback.state {
                CallbackState::Delivered => "delivered",
                CallbackState::Failed => "failed",
                CallbackState::Pending => "retry",
            };
            self.metrics
                .callback_deliveries
                .get_or_create(&Delivery { outcome })
                .inc();
            tracing::debug!(%media_id, outcome, attempts = callback.attempts, "callback attempt");
        }
        Ok(())
    }

    /// The wait before attempt `attempt + 1`: the initial backoff doubled per attempt, capped,
    /// then a random half of it taken off (jitter, so that receivers coming back up are not
    /// hit by every retry at once).
    fn backoff(&self, attempt: u32) -> Duration {
        let initial = Duration::from_millis(self.config.initial_backoff_ms);
        let cap = Duration::from_secs(self.config.max_backoff_secs);
        let full = initial
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(cap);
        full.mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    /// POSTs `record` to `url`, signed.
    async fn attempt(&self, url: &str, record: Record) -> Attempt {
        // An address literal never reaches the resolver: check it here.
        if let Err(reason) = address::check_url(url, &self.allowed) {
            return Attempt::Failed(None, format!("refused: {reason}"));
        }
        let body = match serde_json::to_vec(&record) {
            Ok(body) => body,
            Err(error) => return Attempt::Failed(None, error.to_string()),
        };
        let id = message_id(record.media_id);
        let timestamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
            });
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header(standardwebhooks::HEADER_WEBHOOK_ID, &id)
            .header(
                standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
                timestamp.to_string(),
            );
        if let Some(signer) = self.signer.as_ref() {
            match signer.sign(&id, timestamp, &body) {
                Ok(signature) => {
                    request = request.header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature);
                }
                Err(error) => return Attempt::Failed(None, format!("cannot sign: {error}")),
            }
        }
        match request.body(body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                match status {
                    200..=299 => Attempt::Delivered(status),
                    408 | 429 | 500..=599 => {
                        Attempt::Retry(Some(status), format!("the receiver answered {status}"))
                    }
                    _ => Attempt::Failed(Some(status), format!("the receiver answered {status}")),
                }
            }
            Err(error) => {
                let reason = describe(&error);
                if find_refusal(&error) {
                    Attempt::Failed(None, reason)
                } else {
                    Attempt::Retry(None, reason)
                }
            }
        }
    }
}

/// The `webhook-id` of a record's callback: the same on every attempt.
pub fn message_id(media_id: Uuid) -> String {
    format!("msg_{}", media_id.simple())
}

/// Updates `callback` with how `attempt` went; returns the history event.
fn record_attempt(
    callback: &mut Callback,
    attempt: &Attempt,
    max_attempts: u32,
    backoff: Duration,
) -> Event {
    callback.attempts += 1;
    callback.next_attempt_at = None;
    let (event, message) = match attempt {
        Attempt::Delivered(status) => {
            callback.state = CallbackState::Delivered;
            callback.last_status = Some(*status);
            callback.last_error = None;
            ("callback_delivered", format!("answered {status}"))
        }
        Attempt::Retry(status, reason) if callback.attempts < max_attempts => {
            callback.last_status = *status;
            callback.last_error = Some(reason.clone());
            let at = SystemTime::now() + backoff;
            callback.next_attempt_at = Some(humantime::format_rfc3339_millis(at).to_string());
            (
                "callback_retry",
                format!("{reason}; again in {} ms", backoff.as_millis()),
            )
        }
        Attempt::Retry(status, reason) | Attempt::Failed(status, reason) => {
            callback.state = CallbackState::Failed;
            callback.last_status = *status;
            callback.last_error = Some(reason.clone());
            ("callback_failed", reason.clone())
        }
    };
    Event::new(event, Service::Gateway, Some(message))
}

/// An error and its causes, as one line.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether the resolver refused the host's addresses.
fn find_refusal(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<address::Refused>() {
            return true;
        }
        source = cause.source();
    }
    false
}
