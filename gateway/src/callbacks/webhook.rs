//! The webhook: the final record POSTed as JSON, signed as the Standard Webhooks
//! specification says, through a client that reaches only addresses that pass
//! [`address::VettedResolver`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::address;
use common::config::CallbacksConfig;
use common::record::Record;
use standardwebhooks::Webhook;
use uuid::Uuid;

use super::{Attempt, CallbackError};

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

/// Posts records, signed.
pub(super) struct Poster {
    client: reqwest::Client,
    signer: Option<Webhook>,
    allowed: address::Allowed,
}

impl Poster {
    /// A poster reaching only what `config.allowed_hosts` allows besides public addresses,
    /// signing with `signer`.
    pub(super) fn new(
        config: &CallbacksConfig,
        signer: Option<Webhook>,
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
            client,
            signer,
            allowed,
        })
    }

    /// POSTs `record` to `url`, signed.
    pub(super) async fn attempt(&self, url: &str, record: Record) -> Attempt {
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
        if let Some(signer) = &self.signer {
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

/// An error and its causes, as one line.
fn describe(error: &reqwest::Error) -> String {
    let first = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    super::with_causes(first.to_owned(), error)
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
