//! Prometheus metrics, served at `GET /metrics` in the text exposition format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The label of an upload refused.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Refusal {
    /// The error slug.
    pub code: &'static str,
}

/// The label of a finished job.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Finish {
    /// `completed` or `error`.
    pub state: &'static str,
}

/// The label of a callback delivery attempt.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Delivery {
    /// `delivered`, `retry` (to be tried again) or `failed` (given up).
    pub outcome: &'static str,
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Uploads answered 202.
    pub uploads_accepted: Counter,
    /// Uploads refused, by error slug.
    pub uploads_refused: Family<Refusal, Counter>,
    /// Jobs that reached a final state, by state.
    pub jobs_finished: Family<Finish, Counter>,
    /// Records not final yet.
    pub jobs_processing: Gauge,
    /// Final results that changed nothing: their record was already final or deleted.
    pub results_discarded: Counter,
    /// Callback delivery attempts, by outcome.
    pub callback_deliveries: Family<Delivery, Counter>,
    /// Requests waiting (`?wait=`) for a record to become final.
    pub waiting_requests: Gauge,
    /// Uploads of bytes and variants already completed or in flight: no job of their own.
    pub uploads_deduplicated: Counter,
    /// Bytes of deduplicated uploads: neither stored again nor decoded.
    pub dedup_bytes_saved: Counter,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("thumbnailify");
        let uploads_accepted = Counter::default();
        let uploads_refused = Family::<Refusal, Counter>::default();
        let jobs_finished = Family::<Finish, Counter>::default();
        let jobs_processing = Gauge::default();
        let results_discarded = Counter::default();
        let callback_deliveries = Family::<Delivery, Counter>::default();
        let waiting_requests = Gauge::default();
        let uploads_deduplicated = Counter::default();
        let dedup_bytes_saved = Counter::default();
        registry.register(
            "uploads_deduplicated",
            "Uploads completed from, or waiting for, an upload of the same bytes and variants",
            uploads_deduplicated.clone(),
        );
        registry.register(
            "dedup_bytes_saved",
            "Bytes of deduplicated uploads, neither stored again nor decoded",
            dedup_bytes_saved.clone(),
        );
        registry.register(
            "callback_deliveries",
            "Callback delivery attempts, by outcome",
            callback_deliveries.clone(),
        );
        registry.register(
            "waiting_requests",
            "Requests waiting for a record to become final",
            waiting_requests.clone(),
        );
        registry.register(
            "uploads_accepted",
            "Uploads accepted (202)",
            uploads_accepted.clone(),
        );
        registry.register(
            "uploads_refused",
            "Uploads refused, by error code",
            uploads_refused.clone(),
        );
        registry.register(
            "jobs_finished",
            "Jobs that reached a final state",
            jobs_finished.clone(),
        );
        registry.register(
            "jobs_processing",
            "Records still processing",
            jobs_processing.clone(),
        );
        registry.register(
            "results_discarded",
            "Final results for records already final or deleted",
            results_discarded.clone(),
        );
        Self {
            registry,
            uploads_deduplicated,
            dedup_bytes_saved,
            results_discarded,
            callback_deliveries,
            waiting_requests,
            uploads_accepted,
            uploads_refused,
            jobs_finished,
            jobs_processing,
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
