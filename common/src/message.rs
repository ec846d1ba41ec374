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
use crate::record::ThumbnailInfo;

/// A request to thumbnail one uploaded image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// The image's id.
    pub media_id: Uuid,
    /// The raw file's checked media type.
    pub media_type: MediaType,
    /// The raw file, relative to the data directory (e.g. `raw/<media_id>`), so that workers on
    /// other hosts resolve it against their own mount of the shared volume.
    pub raw_path: String,
}

/// What a worker reports about a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// The image's id.
    pub media_id: Uuid,
    /// What happened.
    pub outcome: Outcome,
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// A worker has taken the job.
    Started,
    /// The thumbnail is written to the thumbnails directory.
    Completed {
        /// The source image's width, after EXIF orientation.
        width: u32,
        /// The source image's height, after EXIF orientation.
        height: u32,
        /// The thumbnail written.
        thumbnail: ThumbnailInfo,
    },
    /// The job cannot succeed (corrupt image, too many pixels, …).
    Failed {
        /// HTTP-like status: 413 too many pixels, 422 undecodable, 500 internal.
        code: u16,
        /// Why, for people.
        message: String,
    },
}

impl Job {
    /// The job for an image whose raw file is at the conventional place.
    pub fn new(media_id: Uuid, media_type: MediaType) -> Self {
        Self {
            media_id,
            media_type,
            raw_path: crate::files::raw_relative_path(media_id),
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
        let job = Job::new(id, MediaType::Png);
        assert_eq!(job.raw_path, format!("raw/{id}"));
    }
}
