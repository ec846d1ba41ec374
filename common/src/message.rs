//! The messages that travel on the queue.
//!
//! - A [`Job`] goes from the gateway to a worker: "make the thumbnail of this raw file".
//! - A [`JobResult`] goes from the worker back to the gateway: "I have it" ([`Outcome::Started`]),
//!   then "here is the thumbnail" ([`Outcome::Completed`]) or "it cannot be done"
//!   ([`Outcome::Failed`]).
//!
//! Both are JSON on the wire. Processing is idempotent: the same job done twice writes the same
//! thumbnail, and the gateway ignores results for records that are already final or deleted.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::media::MediaType;
use crate::record::{Placeholder, ThumbnailInfo, VariantFailure, VideoInfo};
use crate::variant::Variant;

/// One variant a job makes, with its place in the record's `thumbnails` (which names the
/// object it is stored as).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobVariant {
    /// Its index in the record's `thumbnails`.
    pub index: u16,
    /// What to make.
    #[serde(flatten)]
    pub variant: Variant,
}

/// One variant a worker made, or could not make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Made {
    /// Its index in the record's `thumbnails`.
    pub index: u16,
    /// Its name.
    pub name: String,
    /// The thumbnail written, if it could be made.
    pub info: Option<ThumbnailInfo>,
    /// Why not, if it could not.
    pub error: Option<VariantFailure>,
}

/// A fetched source, as its bytes say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Its media type, from its magic bytes.
    pub media_type: MediaType,
    /// Its size in bytes.
    pub size: u64,
    /// MD5, hex.
    pub md5: String,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A request to thumbnail one uploaded image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The image's id.
    pub media_id: Uuid,
    /// The raw file's checked media type; `None` for a source the worker fetches first.
    pub media_type: Option<MediaType>,
    /// Where the source is to be fetched from, when the upload gave a URL: the worker
    /// fetches it ([`crate::address`] rules), stores it as the raw file, and goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// The raw file, relative to the data directory (e.g. `raw/<media_id>`), so that workers on
    /// other hosts resolve it against their own mount of the shared volume.
    pub raw_path: String,
    /// The variants to make, from one decode. Empty (a job from before variants existed): the
    /// configured default, as variant 0.
    #[serde(default)]
    pub variants: Vec<JobVariant>,
    /// The upload's trace context (W3C `traceparent`), for the worker to continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// What a worker reports about a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    /// The image's id.
    pub media_id: Uuid,
    /// What happened.
    pub outcome: Outcome,
    /// The worker process that did it (`host:pid`), for the record's history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The worker's trace context (W3C `traceparent`), for the gateway to continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// A worker has taken the job.
    Started,
    /// At least one variant is written to media storage.
    Completed {
        /// The source image's width, after EXIF orientation.
        width: u32,
        /// The source image's height, after EXIF orientation.
        height: u32,
        /// Each variant of the job, made or failed.
        thumbnails: Vec<Made>,
        /// What the fetched source turned out to be, for a job that fetched it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source: Option<Source>,
        /// A video's length in seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration: Option<f64>,
        /// A video's picture stream.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video: Option<VideoInfo>,
        /// The placeholders of the picture.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        placeholder: Option<Box<Placeholder>>,
        /// What the worker noticed but worked around (a colour profile it could not use),
        /// for the record's events.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    /// The job cannot succeed (corrupt image, too many pixels, …).
    Failed {
        /// HTTP-like status: 413 too many pixels, 422 undecodable, 500 internal.
        code: u16,
        /// Why, for people.
        message: String,
    },
}

/// A worker's sign of life, sent every `worker.heartbeat_secs` through the queue back-end in
/// use, so that gateways know the workers of the fleet (the dashboard lists them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Heartbeat {
    /// The worker process: `host:pid`, as in records' histories.
    pub worker: String,
    /// Its host name.
    pub host: String,
    /// Jobs it processes at once.
    pub concurrency: u32,
    /// Jobs it holds now.
    pub in_flight: u32,
    /// Jobs it has finished since it started (completed or failed).
    pub jobs_done: u64,
    /// Of those, the ones that failed.
    pub jobs_failed: u64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it sent this (RFC 3339).
    pub sent_at: String,
    /// Seconds until the next one.
    pub interval_secs: u64,
}

/// This process's name in records' histories: `host:pid`.
pub fn process_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(read_process_name).clone()
}

fn read_process_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{host}:{}", std::process::id())
}

impl Job {
    /// The job making `variants` of an image whose raw file is at the conventional place.
    pub fn new(media_id: Uuid, media_type: MediaType, variants: Vec<JobVariant>) -> Self {
        Self {
            media_id,
            media_type: Some(media_type),
            source_url: None,
            raw_path: crate::files::raw_relative_path(media_id),
            variants,
            traceparent: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_round_trips_as_tagged_json() {
        let result = JobResult {
            media_id: Uuid::now_v7(),
            outcome: Outcome::Failed {
                code: 422,
                message: "corrupt".into(),
            },
            worker: None,
            traceparent: None,
        };
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(json["outcome"]["status"], "failed");
        assert_eq!(json["outcome"]["code"], 422);
        let back: JobResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, result);
    }

    #[test]
    fn job_points_at_the_raw_directory() {
        let id = Uuid::now_v7();
        let job = Job::new(id, MediaType::Png, Vec::new());
        assert_eq!(job.raw_path, format!("raw/{id}"));
    }
}
