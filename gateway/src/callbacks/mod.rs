//! Completion callbacks: when a record becomes final, POST it, signed, to the URL its upload
//! named (`callback_url`) or to `callbacks.url` ([`webhook`]); and mail it, its thumbnail
//! attached, to the address its upload named (`notify_email`) or to `callbacks.email`
//! ([`email`]). Both are deliveries of the same kind, made by one [`Deliverer`]:
//!
//! - **Durable, at least once.** The pending deliveries are part of the record: they are
//!   written in the same transaction as the final state, and the store indexes when the
//!   first is due ([`Store::due_callbacks`], [`Record::callback_due`]). The [`Deliverer`] takes due records (each leased for the
//!   request timeout and a margin, so one gateway of many delivers it and a gateway that
//!   dies mid-delivery only delays it), delivers, and records the outcome in the record. A crash anywhere means a
//!   delivery is made again, never lost.
//! - **Signed** as the Standard Webhooks specification says: `webhook-id` (`msg_<media_id>`,
//!   the same on every attempt, for the receiver's deduplication), `webhook-timestamp` and
//!   `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>` with
//!   `callbacks.secret`, by the specification's own `standardwebhooks` crate.
//! - **Retried** on network errors, timeouts, 408, 429 and 5xx (for mail: an SMTP 4xx
//!   reply), after a capped exponential backoff with jitter, up to `callbacks.max_attempts`;
//!   any other answer but 2xx (other 4xx, a redirect: redirects are not followed; an SMTP
//!   5xx) fails the delivery at once.
//! - **Only where a client may send it**: the URL is checked at upload ([`address`]), and the
//!   host is resolved at each delivery by [`address::VettedResolver`], which hands the
//!   client only addresses that pass (a name that now resolves inside is `failed`, with the
//!   reason). Connect and whole-request timeouts; at most `callbacks.concurrency` at once.
//! - **One receiver waits only on itself.** At most `callbacks.concurrency_per_host` of the
//!   deliveries in flight go to one host. A due record whose host is at its bound is left
//!   leased and not started; once its lease lapses it is due again, so a receiver that
//!   never answers has its own callbacks retried at its own pace while every other
//!   receiver's are delivered at once.

pub mod email;
mod webhook;

pub use webhook::{load_secret, message_id};

use common::address;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::config::{CallbacksConfig, Config};
use common::record::{Callback, CallbackState, Email, Event, Record, Service};
use common::shutdown::Shutdown;
use standardwebhooks::Webhook;
use tokio::sync::{Notify, Semaphore};

use crate::metrics::{Delivery, Metrics};
use crate::store::{Store, StoreError, Update};
use email::Mailer;
use webhook::Poster;

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
    /// Whether mail can be sent (an SMTP server is configured).
    pub mail: bool,
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
    /// The mail settings cannot be used.
    #[error("{0}")]
    Email(String),
}

/// Delivers due callbacks and mail.
#[derive(Clone)]
pub struct Deliverer {
    store: Store,
    poster: Arc<Poster>,
    mailer: Arc<Option<Mailer>>,
    config: Arc<CallbacksConfig>,
    metrics: Arc<Metrics>,
    wake: Wake,
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

/// What one attempt came to, with the receiver's status (HTTP, or the SMTP reply code).
enum Attempt {
    /// 2xx (for mail, the server took it).
    Delivered(u16),
    /// Worth trying again: network error, timeout, 408, 429, 5xx (for mail, a 4xx reply).
    Retry(Option<u16>, String),
    /// Not worth trying again.
    Failed(Option<u16>, String),
}

/// Which of a record's deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Channel {
    /// The webhook.
    Webhook,
    /// The mail.
    Email,
}

impl Deliverer {
    /// A deliverer for `store`'s records, signing with `signer`, mailing with `mailer`,
    /// woken by `wake`.
    pub fn new(
        store: Store,
        config: &Config,
        signer: Option<Webhook>,
        mailer: Option<Mailer>,
        metrics: Arc<Metrics>,
        wake: Wake,
    ) -> Result<Self, CallbackError> {
        Ok(Self {
            store,
            poster: Arc::new(Poster::new(&config.callbacks, signer)?),
            mailer: Arc::new(mailer),
            config: Arc::new(config.callbacks.clone()),
            metrics,
            wake,
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
                let now = SystemTime::now();
                let email = is_due(record.email_due(), now);
                // The webhook goes only while its host has room; busy, it is left leased,
                // due again when the lease lapses.
                let host_slot = match (is_due(record.webhook_due(), now), &record.callback) {
                    (true, Some(callback)) => self
                        .hosts
                        .take(host_of(&callback.url), self.config.concurrency_per_host),
                    _ => None,
                };
                if host_slot.is_none() && !email {
                    continue;
                }
                let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                    return;
                };
                let this = self.clone();
                tokio::spawn(async move {
                    let channels = [
                        host_slot.is_some().then_some(Channel::Webhook),
                        email.then_some(Channel::Email),
                    ];
                    for channel in channels.into_iter().flatten() {
                        if let Err(error) = this.deliver(&record, channel).await {
                            // The lease runs out and the delivery is made again.
                            tracing::warn!(%error, "cannot record a delivery's outcome");
                        }
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

    /// Makes one attempt at `record`'s delivery on `channel` and records how it went.
    async fn deliver(&self, record: &Record, channel: Channel) -> Result<(), StoreError> {
        let (attempt, attempts) = match channel {
            Channel::Webhook => {
                let Some(callback) = &record.callback else {
                    return Ok(());
                };
                let attempt = self
                    .poster
                    .attempt(&callback.url, record.clone().public())
                    .await;
                (attempt, callback.attempts)
            }
            Channel::Email => {
                let (Some(email), Some(mailer)) = (&record.email, self.mailer.as_ref()) else {
                    // Mail was turned off since the upload asked for it.
                    let attempt = Attempt::Failed(None, "mail is off: no email.smtp_url".into());
                    return self.settle(record, channel, attempt, 0).await;
                };
                (mailer.attempt(&email.to, record).await, email.attempts)
            }
        };
        self.settle(record, channel, attempt, attempts).await
    }

    /// Records how an attempt on `channel` went, unless another was recorded meanwhile (the
    /// record's attempts are no longer `attempts`).
    async fn settle(
        &self,
        record: &Record,
        channel: Channel,
        attempt: Attempt,
        attempts: u32,
    ) -> Result<(), StoreError> {
        let media_id = record.media_id;
        let max_attempts = self.config.max_attempts;
        let backoff = self.backoff(attempts + 1);
        let update = self
            .store
            .update(media_id, |current| {
                let event = match channel {
                    Channel::Webhook => current.callback.as_mut().and_then(|pending| {
                        (pending.state == CallbackState::Pending && pending.attempts == attempts)
                            .then(|| record_attempt(pending, &attempt, max_attempts, backoff))
                    }),
                    Channel::Email => current.email.as_mut().and_then(|pending| {
                        (pending.state == CallbackState::Pending && pending.attempts == attempts)
                            .then(|| record_attempt(pending, &attempt, max_attempts, backoff))
                    }),
                };
                let Some(event) = event else {
                    return false; // another attempt was recorded meanwhile
                };
                current.push_event(event);
                true
            })
            .await?;
        if let Update::Changed(current) = update {
            let (state, attempts) = match channel {
                Channel::Webhook => current.callback.as_ref().map(|c| (c.state, c.attempts)),
                Channel::Email => current.email.as_ref().map(|e| (e.state, e.attempts)),
            }
            .unwrap_or((CallbackState::Failed, 0));
            let outcome = match state {
                CallbackState::Delivered => "delivered",
                CallbackState::Failed => "failed",
                CallbackState::Pending => "retry",
            };
            let (counter, channel) = match channel {
                Channel::Webhook => (&self.metrics.callback_deliveries, "webhook"),
                Channel::Email => (&self.metrics.email_deliveries, "email"),
            };
            counter.get_or_create(&Delivery { outcome }).inc();
            tracing::debug!(%media_id, channel, outcome, attempts, "delivery attempt");
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
}

/// A delivery's standing, as [`record_attempt`] updates it: the callback's or the mail's.
trait Standing {
    /// The history events of a delivery, a retry and a failure.
    const EVENTS: [&'static str; 3];
    /// Its state, attempts, last status, last error and next attempt, to update.
    fn fields(
        &mut self,
    ) -> (
        &mut CallbackState,
        &mut u32,
        &mut Option<u16>,
        &mut Option<String>,
        &mut Option<String>,
    );
}

impl Standing for Callback {
    const EVENTS: [&'static str; 3] = ["callback_delivered", "callback_retry", "callback_failed"];
    fn fields(
        &mut self,
    ) -> (
        &mut CallbackState,
        &mut u32,
        &mut Option<u16>,
        &mut Option<String>,
        &mut Option<String>,
    ) {
        (
            &mut self.state,
            &mut self.attempts,
            &mut self.last_status,
            &mut self.last_error,
            &mut self.next_attempt_at,
        )
    }
}

impl Standing for Email {
    const EVENTS: [&'static str; 3] = ["email_sent", "email_retry", "email_failed"];
    fn fields(
        &mut self,
    ) -> (
        &mut CallbackState,
        &mut u32,
        &mut Option<u16>,
        &mut Option<String>,
        &mut Option<String>,
    ) {
        (
            &mut self.state,
            &mut self.attempts,
            &mut self.last_code,
            &mut self.last_error,
            &mut self.next_attempt_at,
        )
    }
}

/// `first`, then `error`'s causes, as one line.
fn with_causes(first: String, error: &dyn std::error::Error) -> String {
    let mut text = first;
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether a delivery due at `due` (RFC 3339) is due at `now`.
fn is_due(due: Option<String>, now: SystemTime) -> bool {
    due.and_then(|due| humantime::parse_rfc3339(&due).ok())
        .is_some_and(|due| due <= now)
}

/// Updates a delivery's standing with how `attempt` went; returns the history event.
fn record_attempt<S: Standing>(
    standing: &mut S,
    attempt: &Attempt,
    max_attempts: u32,
    backoff: Duration,
) -> Event {
    let [delivered, retry, failed] = S::EVENTS;
    let (state, attempts, last_status, last_error, next_attempt_at) = standing.fields();
    *attempts += 1;
    *next_attempt_at = None;
    let (event, message) = match attempt {
        Attempt::Delivered(status) => {
            *state = CallbackState::Delivered;
            *last_status = Some(*status);
            *last_error = None;
            (delivered, format!("answered {status}"))
        }
        Attempt::Retry(status, reason) if *attempts < max_attempts => {
            *last_status = *status;
            *last_error = Some(reason.clone());
            let at = SystemTime::now() + backoff;
            *next_attempt_at = Some(humantime::format_rfc3339_millis(at).to_string());
            (
                retry,
                format!("{reason}; again in {} ms", backoff.as_millis()),
            )
        }
        Attempt::Retry(status, reason) | Attempt::Failed(status, reason) => {
            *state = CallbackState::Failed;
            *last_status = *status;
            *last_error = Some(reason.clone());
            (failed, reason.clone())
        }
    };
    Event::new(event, Service::Gateway, Some(message))
}
