//! Admission control: an upload is let in only while the service has room for it.
//!
//! | check | refusal |
//! |---|---|
//! | this client's uploads ≤ `limits.uploads_per_client_per_second` (bursts of twice that) | 429 `rate_limited`, `Retry-After` |
//! | uploads being read at once ≤ `limits.max_inflight_uploads`, waiting up to [`SLOT_WAIT`] for a place | 503 `overloaded`, `Retry-After: 1` |
//! | jobs not final yet < `limits.max_queued_jobs` | 503 `queue_full`, `Retry-After: 5` |
//! | free space in the data directory ≥ `limits.min_free_disk_bytes`, where the gateway writes there (SQLite, or media in the directory) | 507 `insufficient_storage` |
//!
//! Refusing at the door keeps memory and disk bounded under any load, and refuses an upload
//! before it could fail half-way through a write. An upload waiting for a place has had
//! none of its body read, so a burst waits in the kernel's buffers rather than in memory.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::config::LimitsConfig;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// How long an upload waits for a place among those being read before it is refused.
pub const SLOT_WAIT: Duration = Duration::from_secs(5);

/// The admission checks.
#[derive(Debug, Clone)]
pub struct Admission {
    per_client: Option<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
    uploads: Arc<Semaphore>,
    max_queued_jobs: u64,
    min_free_disk_bytes: u64,
    data_dir: Option<PathBuf>,
}

impl Admission {
    /// The checks for these limits; free disk is checked in `data_dir` when the gateway
    /// writes there.
    pub fn new(limits: &LimitsConfig, data_dir: Option<PathBuf>) -> Self {
        let per_client = NonZeroU32::new(limits.uploads_per_client_per_second).map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::new(2).expect("2 is not 0"));
            Arc::new(DefaultKeyedRateLimiter::keyed(
                Quota::per_second(rate).allow_burst(burst),
            ))
        });
        Self {
            per_client,
            uploads: Arc::new(Semaphore::new(limits.max_inflight_uploads)),
            max_queued_jobs: limits.max_queued_jobs,
            min_free_disk_bytes: limits.min_free_disk_bytes,
            data_dir,
        }
    }

    /// Lets an upload from `client` in, or says why not. The permit is held while the upload
    /// is read.
    pub async fn admit(
        &self,
        metrics: &Metrics,
        client: IpAddr,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Some(limiter) = &self.per_client {
            if let Err(not_until) = limiter.check_key(&client) {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                return Err(ApiError::RateLimited {
                    retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                });
            }
            // Forget clients that have been quiet, so the table stays small.
            if limiter.len() > 10_000 {
                limiter.retain_recent();
            }
        }
        let permit = tokio::time::timeout(SLOT_WAIT, Arc::clone(&self.uploads).acquire_owned())
            .await
            .map_err(|_| ApiError::Overloaded("too many uploads in progress"))?
            .expect("the semaphore is never closed");
        if u64::try_from(metrics.jobs_processing.get()).unwrap_or(0) >= self.max_queued_jobs {
            return Err(ApiError::QueueFull);
        }
        if let Some(data_dir) = &self.data_dir {
            let free = free_bytes(data_dir)?;
            if free < self.min_free_disk_bytes {
                return Err(ApiError::InsufficientStorage {
                    free,
                    floor: self.min_free_disk_bytes,
                });
            }
        }
        Ok(permit)
    }
}

/// Bytes available to unprivileged writers on the file system holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Result<u64, ApiError> {
    let stat = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}
