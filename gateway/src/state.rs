//! What every request handler shares.

use std::sync::Arc;

use common::config::Config;
use common::queue::Queue;
use common::storage::Storage;

use crate::admission::Admission;
use crate::callbacks;
use crate::memory::UploadMemory;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::store::Store;
use crate::waiters::Waiters;
use common::spool::Spool;

/// The handlers' shared state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The configuration.
    pub config: Arc<Config>,
    /// The record store.
    pub store: Store,
    /// The job queue.
    pub queue: Queue,
    /// Where raw uploads and thumbnails live.
    pub storage: Storage,
    /// Where streamed uploads are written as they arrive.
    pub spool: Spool,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The publisher of accepted jobs.
    pub outbox: Outbox,
    /// Whether there is room for another upload.
    pub admission: Admission,
    /// Each client's uploads by URL in flight.
    pub sources: crate::source_quota::SourceQuota,
    /// What the last checks of the store, the queue and media storage found.
    pub readiness: crate::readiness::Readiness,
    /// The memory uploads being read share.
    pub memory: UploadMemory,
    /// The requests waiting for records to become final.
    pub waiters: Waiters,
    /// Whether callbacks are on, and where they may go.
    pub callbacks: callbacks::Settings,
    /// Wakes the callback deliverer (a deduplicated upload may be final at once).
    pub deliveries: callbacks::Wake,
    /// The workers heard from (their heartbeats).
    pub workers: crate::workers::Workers,
    /// Whether videos can be thumbnailed: FFmpeg's version, or why not (video uploads are
    /// then refused with 415).
    pub video: Result<String, String>,
}
