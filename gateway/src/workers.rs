//! The workers this gateway has heard from: their heartbeats, kept by worker, for the
//! dashboard. A worker silent for three of its intervals is shown as silent; one silent for
//! ten minutes is forgotten.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::message::Heartbeat;
use common::queue::Heartbeats;
use serde::Serialize;

/// How long a silent worker stays listed.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// The workers heard from. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Workers {
    seen: Arc<Mutex<BTreeMap<String, (Heartbeat, Instant)>>>,
}

/// A worker as the dashboard shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkerView {
    /// Its latest heartbeat.
    #[serde(flatten)]
    pub heartbeat: Heartbeat,
    /// Seconds since its latest heartbeat arrived.
    pub last_seen_secs: u64,
    /// Whether it was heard from within three of its intervals.
    pub alive: bool,
}

impl Workers {
    /// Keeps every heartbeat heard until the queue closes.
    pub async fn listen(self, mut heartbeats: Heartbeats) {
        while let Some(heartbeat) = heartbeats.next().await {
            self.heard(heartbeat);
        }
    }

    /// Keeps one heartbeat.
    pub fn heard(&self, heartbeat: Heartbeat) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.insert(heartbeat.worker.clone(), (heartbeat, Instant::now()));
    }

    /// The workers heard from lately, by name.
    pub fn list(&self) -> Vec<WorkerView> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, (_, at)| at.elapsed() < FORGET_AFTER);
        seen.values()
            .map(|(heartbeat, at)| {
                let silence = at.elapsed();
                WorkerView {
                    heartbeat: heartbeat.clone(),
                    last_seen_secs: silence.as_secs(),
                    alive: silence < Duration::from_secs(3 * heartbeat.interval_secs.max(1)),
                }
            })
            .collect()
    }
}
