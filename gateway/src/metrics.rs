//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! Named as Prometheus asks: every name starts `thumbnailify_`, counters end `_total`, and a
//! unit is the last word before it (`_seconds`, `_bytes`). Two histograms: how long jobs take,
//! from the upload's acceptance to its record's final state
//! (`thumbnailify_job_duration_seconds`), and how large accepted uploads are
//! (`thumbnailify_upload_size_bytes`), both by media type. `deploy/grafana-dashboard.json`
//! charts them all.

use std::time::SystemTime;

use common::media::MediaType;
use common::record::Record;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

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

/// The label of the histograms: the upload's media type (`unknown` before it is known, for a
/// URL upload whose fetch failed).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Media {
    /// `image/jpeg`, `video/mp4`, …
    pub media_type: &'static str,
}

impl Media {
    fn of(record: &Record) -> Self {
        Self {
            media_type: record.media_type.map_or("unknown", MediaType::as_str),
        }
    }
}

/// Histograms by media type.
type ByMedia = Family<Media, Histogram, fn() -> Histogram>;

/// Job durations: 10 ms to about 80 s, doubling.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

/// Upload sizes: 1 KiB to 1 GiB, four times larger each bucket.
fn size_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1024.0, 4.0, 11))
}

/// Uploads accepted and jobs finished per [`Rates::BUCKET`], over the last
/// [`Rates::BUCKETS`] of them, as this gateway counted them (the dashboard's rates).
#[derive(Debug, Default)]
pub struct Rates {
    /// (bucket number since the epoch, accepted, finished), oldest first.
    buckets: std::sync::Mutex<std::collections::VecDeque<(u64, u64, u64)>>,
}

/// One bucket of the dashboard's rates.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct RateBucket {
    /// When the bucket starts (seconds since the Unix epoch).
    pub start: u64,
    /// Uploads accepted in it.
    pub accepted: u64,
    /// Jobs finished in it.
    pub finished: u64,
}

impl Rates {
    /// Seconds per bucket.
    pub const BUCKET: u64 = 10;
    /// Buckets kept: ten minutes.
    pub const BUCKETS: usize = 60;

    fn count(&self, accepted: u64, finished: u64) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            / Self::BUCKET;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match buckets.back_mut() {
            Some(last) if last.0 == now => {
                last.1 += accepted;
                last.2 += finished;
            }
            _ => buckets.push_back((now, accepted, finished)),
        }
        while buckets.len() > Self::BUCKETS {
            buckets.pop_front();
        }
    }

    /// Every bucket of the last ten minutes, oldest first, empty ones included.
    pub fn series(&self) -> Vec<RateBucket> {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            / Self::BUCKET;
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        (now + 1 - Self::BUCKETS as u64..=now)
            .map(|number| {
                let (accepted, finished) = buckets
                    .iter()
                    .find(|bucket| bucket.0 == number)
                    .map_or((0, 0), |bucket| (bucket.1, bucket.2));
                RateBucket {
                    start: number * Self::BUCKET,
                    accepted,
                    finished,
                }
            })
            .collect()
    }
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
    /// Mail delivery attempts, by outcome.
    pub email_deliveries: Family<Delivery, Counter>,
    /// Requests waiting (`?wait=`) for a record to become final.
    pub waiting_requests: Gauge,
    /// Uploads of bytes and variants already completed or in flight: no job of their own.
    pub uploads_deduplicated: Counter,
    /// Bytes of deduplicated uploads: neither stored again nor decoded.
    pub dedup_saved_bytes: Counter,
    /// Seconds from acceptance to the final state, by media type.
    job_duration: ByMedia,
    /// Accepted uploads' sizes, by media type.
    upload_size: ByMedia,
    /// Uploads and completions per 10 s, for the dashboard.
    pub rates: Rates,
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
        let email_deliveries = Family::<Delivery, Counter>::default();
        let waiting_requests = Gauge::default();
        let uploads_deduplicated = Counter::default();
        let dedup_saved_bytes = Counter::default();
        let job_duration = ByMedia::new_with_constructor(duration_histogram as fn() -> Histogram);
        let upload_size = ByMedia::new_with_constructor(size_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "job_duration",
            "Time from an upload's acceptance to its record's final state, by media type",
            Unit::Seconds,
            job_duration.clone(),
        );
        registry.register_with_unit(
            "upload_size",
            "Sizes of accepted uploads, by media type",
            Unit::Bytes,
            upload_size.clone(),
        );
        registry.register(
            "uploads_deduplicated",
            "Uploads completed from, or waiting for, an upload of the same bytes and variants",
            uploads_deduplicated.clone(),
        );
        registry.register_with_unit(
            "dedup_saved",
            "Bytes of deduplicated uploads, neither stored again nor decoded",
            Unit::Bytes,
            dedup_saved_bytes.clone(),
        );
        registry.register(
            "callback_deliveries",
            "Callback delivery attempts, by outcome",
            callback_deliveries.clone(),
        );
        registry.register(
            "email_deliveries",
            "Mail delivery attempts (notify_email), by outcome",
            email_deliveries.clone(),
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
            dedup_saved_bytes,
            job_duration,
            upload_size,
            rates: Rates::default(),
            results_discarded,
            callback_deliveries,
            email_deliveries,
            waiting_requests,
            uploads_accepted,
            uploads_refused,
            jobs_finished,
            jobs_processing,
        }
    }

    /// Counts an accepted upload and its size.
    pub fn accepted(&self, record: &Record) {
        self.uploads_accepted.inc();
        self.rates.count(1, 0);
        self.upload_size
            .get_or_create(&Media::of(record))
            .observe(record.size as f64);
    }

    /// Counts a record become final (`completed` or `error`) and how long it took since it
    /// was accepted.
    pub fn finished(&self, record: &Record, state: &'static str) {
        self.jobs_finished.get_or_create(&Finish { state }).inc();
        self.rates.count(0, 1);
        if let Ok(created) = humantime::parse_rfc3339(&record.created_at) {
            let seconds = SystemTime::now()
                .duration_since(created)
                .unwrap_or_default()
                .as_secs_f64();
            self.job_duration
                .get_or_create(&Media::of(record))
                .observe(seconds);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_cover_ten_minutes_with_the_latest_counts_last() {
        let rates = Rates::default();
        rates.count(1, 0);
        rates.count(1, 1);
        let series = rates.series();
        assert_eq!(series.len(), Rates::BUCKETS);
        let last = series.last().unwrap();
        // A bucket boundary may fall between the counts and the read.
        let total: u64 = series.iter().map(|bucket| bucket.accepted).sum();
        assert_eq!(total, 2);
        assert!(last.start + Rates::BUCKET > series[0].start + 590);
        assert!(
            series
                .windows(2)
                .all(|w| w[1].start == w[0].start + Rates::BUCKET)
        );
    }
}
