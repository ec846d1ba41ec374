//! Admission control: an upload is let in only while the service has room for it.
//!
//! | check | refusal |
//! |---|---|
//! | uploads being read at once ≤ `limits.max_inflight_uploads` | 503 `overloaded`, `Retry-After: 1` |
//! | jobs not final yet < `limits.max_queued_jobs` | 503 `queue_full`, `Retry-After: 5` |
//! | free space in the data directory ≥ `limits.min_free_disk_bytes` | 507 `insufficient_storage` |
//!
//! Refusing at the door keeps memory and disk bounded under any load, and refuses an upload
//! before it could fail half-way through a write.

use std::path::PathBuf;
use std::sync::Arc;

use common::config::LimitsConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::metrics::Metrics;

/// The admission checks.
#[derive(Debug, Clone)]
pub struct Admission {
    uploads: Arc<Semaphore>,
    max_queued_jobs: u64,
    min_free_disk_bytes: u64,
    data_dir: PathBuf,
}

impl Admission {
    /// The checks for these limits on the data directory `data_dir`.
    pub fn new(limits: &LimitsConfig, data_dir: PathBuf) -> Self {
        Self {
            uploads: Arc::new(Semaphore::new(limits.max_inflight_uploads)),
            max_queued_jobs: limits.max_queued_jobs,
            min_free_disk_bytes: limits.min_free_disk_bytes,
            data_dir,
        }
    }

    /// Lets an upload in, or says why not. The permit is held while the upload is read.
    pub fn admit(&self, metrics: &Metrics) -> Result<OwnedSemaphorePermit, ApiError> {
        let permit = Arc::clone(&self.uploads)
            .try_acquire_owned()
            .map_err(|_| ApiError::Overloaded("too many uploads in progress"))?;
        if u64::try_from(metrics.jobs_processing.get()).unwrap_or(0) >= self.max_queued_jobs {
            return Err(ApiError::QueueFull);
        }
        let free = free_bytes(&self.data_dir)?;
        if free < self.min_free_disk_bytes {
            return Err(ApiError::InsufficientStorage {
                free,
                floor: self.min_free_disk_bytes,
            });
        }
        Ok(permit)
    }
}

/// Bytes available to unprivileged writers on the file system holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Result<u64, ApiError> {
    let stat = rustix::fs::statvfs(dir).map_err(std::io::Error::from)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}
