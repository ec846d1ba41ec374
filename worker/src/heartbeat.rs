//! The worker's heartbeat: every `worker.heartbeat_secs`, what it is and what it has done,
//! sent through the queue back-end so that gateways know the workers of the fleet.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use common::message::{Heartbeat, process_name};
use common::queue::Queue;
use common::shutdown::Shutdown;
use common::time::now_rfc3339;

/// What a worker has done, counted as it goes.
#[derive(Debug, Default)]
pub struct Stats {
    in_flight: AtomicU32,
    done: AtomicU64,
    failed: AtomicU64,
}

impl Stats {
    /// A job taken.
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A job finished (or handed back: `outcome` `None`).
    pub fn finished(&self, failed: Option<bool>) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(failed) = failed {
            self.done.fetch_add(1, Ordering::Relaxed);
            if failed {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Sends a heartbeat every `interval` until `shutdown` fires.
pub async fn run(
    queue: Queue,
    stats: Arc<Stats>,
    concurrency: usize,
    interval: Duration,
    mut shutdown: Shutdown,
) {
    let worker = process_name();
    let host = worker
        .rsplit_once(':')
        .map_or(worker.as_str(), |(host, _)| host)
        .to_owned();
    let started_at = now_rfc3339();
    loop {
        let heartbeat = Heartbeat {
            worker: worker.clone(),
            host: host.clone(),
            concurrency: u32::try_from(concurrency).unwrap_or(u32::MAX),
            in_flight: stats.in_flight.load(Ordering::Relaxed),
            jobs_done: stats.done.load(Ordering::Relaxed),
            jobs_failed: stats.failed.load(Ordering::Relaxed),
            started_at: started_at.clone(),
            sent_at: now_rfc3339(),
            interval_secs: interval.as_secs(),
        };
        if let Err(error) = queue.publish_heartbeat(&heartbeat).await {
            tracing::debug!(%error, "cannot send a heartbeat");
        }
        tokio::select! {
            () = shutdown.recv() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
