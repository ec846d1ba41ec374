//! One variant in a record: what was asked for, how far it has come, what was made.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::media::MediaType;
use crate::variant::{Fit, Variant};

/// Facts about a finished thumbnail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ThumbnailInfo {
    /// The thumbnail's format.
    pub media_type: MediaType,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size of the encoded thumbnail in bytes.
    pub size: u64,
    /// Frames of an animated thumbnail; absent for a still one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
}

/// How far one variant has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VariantState {
    /// Asked for, not made yet.
    Processing,
    /// Made: its facts are filled in.
    Ready,
    /// It could not be made; `error` says why.
    Failed,
}

/// Why a variant could not be made: the shape of every API error's `error` (`code`, a slug;
/// `message`), with the HTTP-like `status` of the failure beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(from = "StoredFailure")]
pub struct VariantFailure {
    /// The failure's slug: `too_large` (413), `unsupported_media_type` (415), `undecodable`
    /// (422), `invalid_source` (400), `raw_gone` (410), `source_failed` (502), `timed_out`
    /// (504), `internal_error` (500 and any other).
    #[schema(example = "undecodable")]
    pub code: String,
    /// The HTTP-like status of the failure, as a record's `code`.
    pub status: u16,
    /// Why, for people.
    pub message: String,
}

impl VariantFailure {
    /// The failure of HTTP-like `status`, with its slug.
    pub fn new(status: u16, message: String) -> Self {
        let code = match status {
            400 => "invalid_source",
            410 => "raw_gone",
            413 => "too_large",
            415 => "unsupported_media_type",
            422 => "undecodable",
            502 => "source_failed",
            504 => "timed_out",
            _ => "internal_error",
        };
        Self {
            code: code.to_owned(),
            status,
            message,
        }
    }
}

/// A failure as stored: records written before failures had slugs carry the status as
/// `code`.
#[derive(Deserialize)]
struct StoredFailure {
    code: StoredCode,
    status: Option<u16>,
    message: String,
}

/// A failure's `code` as stored: the slug, or (older records) the status.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredCode {
    Slug(String),
    Status(u16),
}

impl From<StoredFailure> for VariantFailure {
    fn from(stored: StoredFailure) -> Self {
        match (stored.code, stored.status) {
            (StoredCode::Slug(code), status) => Self {
                code,
                status: status.unwrap_or(500),
                message: stored.message,
            },
            (StoredCode::Status(status), _) => Self::new(status, stored.message),
        }
    }
}

/// One variant in a record: what was asked for, and what was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Thumbnail {
    /// The variant's name, as in `/images/{id}/thumbnails/{name}`.
    pub name: String,
    /// How far it has come.
    pub state: VariantState,
    /// How the image meets the box.
    pub fit: Fit,
    /// Width in pixels, once made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels, once made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Its format, once made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// Size of the encoded thumbnail in bytes, once made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Frames, once made, of an animated thumbnail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u32>,
    /// Where to fetch it.
    pub url: String,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<VariantFailure>,
    /// What was asked for.
    pub request: Variant,
}

impl Thumbnail {
    /// A variant of `media_id` asked for and not made yet.
    pub fn requested(media_id: Uuid, request: Variant) -> Self {
        Self {
            url: format!("/images/{media_id}/thumbnails/{}", request.name),
            name: request.name.clone(),
            state: VariantState::Processing,
            fit: request.fit,
            width: None,
            height: None,
            media_type: None,
            size: None,
            frames: None,
            error: None,
            request,
        }
    }

    /// The facts of the thumbnail made, when it is ready.
    pub fn info(&self) -> Option<ThumbnailInfo> {
        match (
            self.state,
            self.media_type,
            self.width,
            self.height,
            self.size,
        ) {
            (VariantState::Ready, Some(media_type), Some(width), Some(height), Some(size)) => {
                Some(ThumbnailInfo {
                    media_type,
                    width,
                    height,
                    size,
                    frames: self.frames,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_has_the_shape_of_every_error_and_older_records_still_read() {
        let failure = VariantFailure::new(422, "cannot decode".to_owned());
        let json = serde_json::to_value(&failure).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"code": "undecodable", "status": 422, "message": "cannot decode"})
        );
        let read: VariantFailure = serde_json::from_value(json).unwrap();
        assert_eq!(read, failure);
        // As records stored it before slugs.
        let old: VariantFailure =
            serde_json::from_str(r#"{"code": 413, "message": "too many pixels"}"#).unwrap();
        assert_eq!((old.code.as_str(), old.status), ("too_large", 413));
    }
}
