//! Fetching a source the client gave as a URL, safely: the first step of its job.
//!
//! - `http` and `https` only, without credentials ([`common::address::check_url`]).
//! - The host is resolved once and the connection made only to addresses that pass
//!   ([`common::address::VettedResolver`]): loopback, private, link-local (the cloud metadata
//!   address included), CGNAT, multicast, unspecified, IPv6 ULA and link-local and IPv4
//!   wrapped in IPv6 are refused unless the host is in `sources.allowed_hosts`.
//! - At most `sources.max_redirects` redirects, each URL checked as the first was (and its
//!   host resolved through the same resolver).
//! - `sources.connect_timeout_secs` to connect, `sources.timeout_secs` for all of it.
//! - Within the size limit of what the bytes are (`limits.max_video_bytes` for a video, else
//!   `max_upload_bytes`, chosen from the first bytes by the caller): refused from
//!   `Content-Length` when over both, else cut while streaming.
//! - The body is written to the [`common::spool`] as it arrives, hashed on the way: a
//!   fetch of any size costs a few chunks of memory.
//! - The server's `Content-Type` is not believed: the bytes are sniffed.
//!
//! Each failure is a [`FetchError`] with an HTTP-like code for the record: 400 a refused
//! address or URL, 413 too large, 502 the source failed (an error status, a broken
//! connection, too many redirects), 504 too slow.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::address::{Allowed, Refused, VettedResolver, check_url};
use common::config::{LimitsConfig, SourcesConfig};
use common::media::{MediaType, SNIFF_BYTES, Sniffed, sniff};
use common::spool::{Spool, Spooled};
use reqwest::redirect::Policy;

/// Why a source could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    /// HTTP-like: 400, 413, 502 or 504.
    pub code: u16,
    /// Why, for people; never the URL or the bytes.
    pub message: String,
}

/// What a source that starts with `head` is; an error when it is nothing supported.
pub fn media_type_of(head: &[u8]) -> Result<MediaType, FetchError> {
    match sniff(head) {
        Sniffed::Media(media_type) => Ok(media_type),
        found => Err(error(
            415,
            format!("the source is {found}, not a supported image or video"),
        )),
    }
}

/// A fetched source, spooled.
#[derive(Debug)]
pub struct Fetched {
    /// The bytes, in a spooled file with their digests.
    pub spooled: Spooled,
    /// What the bytes are.
    pub media_type: MediaType,
}

fn error(code: u16, message: impl Into<String>) -> FetchError {
    FetchError {
        code,
        message: message.into(),
    }
}

/// A redirect that may not be followed.
#[derive(Debug, thiserror::Error)]
enum RedirectRefused {
    #[error("more than {0} redirects")]
    TooMany(usize),
    #[error("a redirect leads to a URL that may not be fetched: {0}")]
    Refused(String),
}

/// The redirect statuses followed (as reqwest follows them).
const FOLLOWED: [u16; 5] = [301, 302, 303, 307, 308];

/// Fetches sources under one configuration. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    allowed: Allowed,
    timeout: Duration,
}

impl Fetcher {
    /// A fetcher for `config`.
    pub fn new(config: &SourcesConfig) -> Result<Self, FetchError> {
        let allowed = Allowed::new(&config.allowed_hosts);
        let max_redirects = config.max_redirects;
        let redirect_allowed = allowed.clone();
        let policy = Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                return attempt.error(RedirectRefused::TooMany(max_redirects));
            }
            match check_url(attempt.url().as_str(), &redirect_allowed) {
                Ok(_) => attempt.follow(),
                Err(reason) => attempt.error(RedirectRefused::Refused(reason)),
            }
        });
        let timeout = Duration::from_secs(config.timeout_secs);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(VettedResolver::new(allowed.clone())))
            .redirect(policy)
            .no_proxy()
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            .timeout(timeout)
            .user_agent(concat!("thumbnailify/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|cause| error(500, format!("cannot set up fetching: {cause}")))?;
        Ok(Self {
            client,
            allowed,
            timeout,
        })
    }

    /// The fetcher of this process for `config` (made once: the configuration does not
    /// change while a process runs).
    pub fn shared(config: &SourcesConfig) -> Result<Self, FetchError> {
        static SHARED: OnceLock<Result<Fetcher, FetchError>> = OnceLock::new();
        SHARED.get_or_init(|| Fetcher::new(config)).clone()
    }

    /// The body at `url`, spooled, within the size limit of what it is.
    pub async fn fetch(
        &self,
        url: &str,
        spool: &Spool,
        limits: &LimitsConfig,
    ) -> Result<Fetched, FetchError> {
        let url = check_url(url, &self.allowed)
            .map_err(|reason| error(400, format!("the source URL may not be fetched: {reason}")))?;
        let mut response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|cause| self.explain(&cause))?;
        let status = response.status();
        // A redirect the client would follow but did not leads somewhere it may not: not
        // http(s). Other 3xx answers (300, 304) are no redirect to follow: a failed source.
        if FOLLOWED.contains(&status.as_u16())
            && response.headers().contains_key(reqwest::header::LOCATION)
        {
            return Err(error(
                400,
                "a redirect leads to a URL that may not be fetched: only http and https URLs are allowed",
            ));
        }
        if !status.is_success() {
            return Err(error(
                502,
                format!("the source answered {}", status.as_u16()),
            ));
        }
        let too_large = |limit: u64| {
            error(
                413,
                format!("the source is larger than the limit of {limit} bytes"),
            )
        };
        let most = limits.max_upload_bytes.max(limits.max_video_bytes);
        if response
            .content_length()
            .is_some_and(|length| length > most)
        {
            return Err(too_large(most));
        }
        let spool_error =
            |error: std::io::Error| self::error(500, format!("cannot spool the source: {error}"));
        let mut file = spool.file().await.map_err(spool_error)?;
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut limit = None;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|cause| self.explain(&cause))?
        {
            if limit.is_none() {
                head.extend_from_slice(&chunk[..chunk.len().min(SNIFF_BYTES - head.len())]);
                if head.len() == SNIFF_BYTES {
                    limit = Some(limits.max_bytes_of(&head));
                }
            }
            let limit = limit.unwrap_or(most);
            if file.size() + chunk.len() as u64 > limit {
                return Err(too_large(limit));
            }
            file.write(&chunk).await.map_err(spool_error)?;
        }
        if file.size() == 0 {
            return Err(error(502, "the source is empty"));
        }
        let limit = limits.max_bytes_of(&head);
        if file.size() > limit {
            return Err(too_large(limit));
        }
        let media_type = media_type_of(&head)?;
        Ok(Fetched {
            spooled: file.finish().await.map_err(spool_error)?,
            media_type,
        })
    }

    /// What a client error means for the record.
    fn explain(&self, cause: &reqwest::Error) -> FetchError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(cause);
        while let Some(inner) = source {
            if let Some(refused) = inner.downcast_ref::<Refused>() {
                return error(400, refused.to_string());
            }
            if let Some(redirect) = inner.downcast_ref::<RedirectRefused>() {
                let code = match redirect {
                    RedirectRefused::TooMany(_) => 502,
                    RedirectRefused::Refused(_) => 400,
                };
                return error(code, redirect.to_string());
            }
            source = inner.source();
        }
        if cause.is_timeout() {
            return error(
                504,
                format!(
                    "the source did not arrive within {} s",
                    self.timeout.as_secs()
                ),
            );
        }
        if cause.is_connect() {
            return error(502, "cannot connect to the source");
        }
        error(502, "the source could not be read")
    }
}
