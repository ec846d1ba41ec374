//! Requests the service makes: `sources` (fetching a URL upload), `callbacks` (posting a
//! final record, or mailing it) and `email` (the SMTP server mail goes through).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Sources fetched from a URL (`{"url": ...}` uploads), by the worker that runs the job.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    /// Hosts (names or addresses, as written in URLs) that may be fetched although they
    /// resolve to loopback, private, link-local or other internal addresses.
    pub allowed_hosts: Vec<String>,
    /// Redirects followed at most, each to a URL checked as the first was.
    pub max_redirects: usize,
    /// Seconds to connect.
    pub connect_timeout_secs: u64,
    /// Seconds for the whole fetch, body included.
    pub timeout_secs: u64,
    /// Sources one worker process fetches at once. Fetches have slots of their own: they
    /// never hold one of the `worker.concurrency` decode slots.
    pub max_fetches: usize,
    /// Sources one worker process fetches at once from one host; the others for that host
    /// wait their turn.
    pub max_fetches_per_host: usize,
    /// Uploads by URL one client (its tenant with API keys, else its IP address) may have in
    /// flight at once, per gateway; past it, 429 `too_many_sources`.
    pub max_in_flight_per_client: usize,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            max_redirects: 3,
            connect_timeout_secs: 5,
            timeout_secs: 60,
            max_fetches: 16,
            max_fetches_per_host: 4,
            max_in_flight_per_client: 32,
        }
    }
}

/// Completion callbacks: a signed POST of the record when it becomes final.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbacksConfig {
    /// A URL that every record is posted to when final, besides any `callback_url` of its
    /// upload (which then wins).
    pub url: Option<String>,
    /// An address every record is mailed to when final, unless its upload names one
    /// (`notify_email`, which then wins). Its domain must be one of `email.allowed_domains`.
    pub email: Option<String>,
    /// The Standard Webhooks signing secret (`whsec_` and base64).
    pub secret: Option<String>,
    /// A file holding the secret instead (its first line).
    pub secret_file: Option<PathBuf>,
    /// Hosts (names or addresses, as written in URLs) that callbacks may reach although they
    /// resolve to loopback, private, link-local or other internal addresses.
    pub allowed_hosts: Vec<String>,
    /// Attempts of one delivery before it is recorded as failed.
    pub max_attempts: u32,
    /// Wait before the first retry, in milliseconds; doubled each time, with jitter.
    pub initial_backoff_ms: u64,
    /// The longest wait between attempts, in seconds.
    pub max_backoff_secs: u64,
    /// Seconds to connect, and for the whole request.
    pub connect_timeout_secs: u64,
    /// Seconds for the whole request (connect, send, answer).
    pub timeout_secs: u64,
    /// Deliveries in flight at once, per gateway.
    pub concurrency: usize,
    /// Deliveries in flight at once to one receiver host, per gateway: a receiver that is
    /// slow, or never answers, holds up only its own callbacks.
    pub concurrency_per_host: usize,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        Self {
            url: None,
            email: None,
            secret: None,
            secret_file: None,
            allowed_hosts: Vec::new(),
            max_attempts: 10,
            initial_backoff_ms: 1000,
            max_backoff_secs: 3600,
            connect_timeout_secs: 5,
            timeout_secs: 10,
            concurrency: 16,
            concurrency_per_host: 4,
        }
    }
}

impl std::fmt::Debug for CallbacksConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbacksConfig")
            .field("url", &self.url)
            .field("email", &self.email)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("secret_file", &self.secret_file)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff_ms", &self.initial_backoff_ms)
            .field("max_backoff_secs", &self.max_backoff_secs)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("timeout_secs", &self.timeout_secs)
            .field("concurrency", &self.concurrency)
            .field("concurrency_per_host", &self.concurrency_per_host)
            .finish()
    }
}

/// Mail: the SMTP server the final records are mailed through (`notify_email`,
/// `callbacks.email`), and whom they may go to. Retries follow `callbacks` (attempts,
/// backoff, concurrency).
#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// The SMTP server: `smtp://host:port` (STARTTLS when offered), `smtp://host?tls=required`
    /// (STARTTLS or fail), `smtps://host` (TLS from the start); credentials as
    /// `smtp://user:password@host`. Unset: mail is off, and `notify_email` is refused.
    pub smtp_url: Option<String>,
    /// A file holding the SMTP URL instead (it may hold a password).
    pub smtp_url_file: Option<PathBuf>,
    /// The sender, as `Name <address>` or an address.
    pub from: String,
    /// The domains mail may be sent to (the part after `@`, compared without case). Empty:
    /// none, and `notify_email` is refused (400): the service never relays to anyone a client
    /// names.
    pub allowed_domains: Vec<String>,
    /// The service's address as the recipients reach it (`https://thumbs.example.org`): each
    /// mail links the record there. Unset: `http://` and `listen`.
    pub public_url: Option<String>,
    /// Seconds one delivery to the SMTP server may take, connection included.
    pub timeout_secs: u64,
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            smtp_url: None,
            smtp_url_file: None,
            from: "Thumbnailify <thumbnailify@localhost>".to_owned(),
            allowed_domains: Vec::new(),
            public_url: None,
            timeout_secs: 30,
        }
    }
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "***"))
            .field("smtp_url_file", &self.smtp_url_file)
            .field("from", &self.from)
            .field("allowed_domains", &self.allowed_domains)
            .field("public_url", &self.public_url)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}
