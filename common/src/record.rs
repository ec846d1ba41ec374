//! The record of one uploaded image: what the gateway stores and what the API returns.
//!
//! Field names follow the original Thumbnailify design so that its clients keep working:
//! `media_id`, `media_type`, `service`, `state`, `message`, `code`. A record is created
//! [`State::Processing`] by the gateway and becomes final ([`State::Completed`] or
//! [`State::Error`]) once, when the worker's result arrives. A final record never changes again.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::media::MediaType;
use crate::time::now_rfc3339;

/// Which part of the system holds the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// Accepted and queued, waiting for a worker.
    Gateway,
    /// A worker has taken the job (or finished it).
    Worker,
}

/// How far the job has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// Accepted, not finished yet.
    Processing,
    /// The thumbnail is ready.
    Completed,
    /// The job failed for good; `message` says why.
    Error,
}

/// The `code` of a record still processing (HTTP 102 Processing).
pub const CODE_PROCESSING: u16 = 102;
/// The `code` of a completed record.
pub const CODE_COMPLETED: u16 = 200;

/// Facts about a finished thumbnail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThumbnailInfo {
    /// The thumbnail's format.
    pub media_type: MediaType,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size of the encoded thumbnail in bytes.
    pub size: u64,
}

/// The record of one uploaded image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The image's id: a UUID v7, so ids sort by upload time.
    pub media_id: Uuid,
    /// The uploaded image's media type (checked against its magic bytes).
    pub media_type: MediaType,
    /// The client's name for the file, if it gave one. Never used as a path.
    pub name: Option<String>,
    /// Which part of the system holds the job.
    pub service: Service,
    /// How far the job has come.
    pub state: State,
    /// A human-readable account of the state; on failure, why.
    pub message: String,
    /// The HTTP-like status of the outcome: 102 while processing, 200 when done, 4xx/5xx on
    /// failure.
    pub code: u16,
    /// Size of the raw image in bytes.
    pub size: u64,
    /// MD5 of the raw image, hex.
    pub md5: String,
    /// SHA-256 of the raw image, hex.
    pub sha256: String,
    /// The source image's width, once known (after orientation is applied).
    pub width: Option<u32>,
    /// The source image's height, once known (after orientation is applied).
    pub height: Option<u32>,
    /// When the upload was accepted (RFC 3339).
    pub created_at: String,
    /// When the record last changed (RFC 3339).
    pub updated_at: String,
    /// The thumbnail, once completed.
    pub thumbnail: Option<ThumbnailInfo>,
    /// How many times the job has been queued (more than once when it got stuck).
    #[serde(default = "one")]
    pub attempts: u32,
}

fn one() -> u32 {
    1
}

/// What the gateway knows of an upload when it accepts it.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// The id to give the record.
    pub media_id: Uuid,
    /// The checked media type.
    pub media_type: MediaType,
    /// The client's file name, if any.
    pub name: Option<String>,
    /// Size of the raw bytes.
    pub size: u64,
    /// MD5 of the raw bytes, hex.
    pub md5: String,
    /// SHA-256 of the raw bytes, hex.
    pub sha256: String,
    /// Dimensions read from the header at upload, when readable there.
    pub dimensions: Option<(u32, u32)>,
}

impl Record {
    /// A fresh record in [`State::Processing`], held by the gateway.
    pub fn new(upload: NewUpload) -> Self {
        let now = now_rfc3339();
        Self {
            media_id: upload.media_id,
            media_type: upload.media_type,
            name: upload.name,
            service: Service::Gateway,
            state: State::Processing,
            message: "queued, waiting for a worker".to_owned(),
            code: CODE_PROCESSING,
            size: upload.size,
            md5: upload.md5,
            sha256: upload.sha256,
            width: upload.dimensions.map(|(w, _)| w),
            height: upload.dimensions.map(|(_, h)| h),
            created_at: now.clone(),
            updated_at: now,
            thumbnail: None,
            attempts: 1,
        }
    }

    /// Whether the record has reached a final state.
    pub fn is_final(&self) -> bool {
        self.state != State::Processing
    }
}
