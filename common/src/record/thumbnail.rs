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

/// Why a variant could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VariantFailure {
    /// HTTP-like status, as a record's `code`.
    pub code: u16,
    /// Why, for people.
    pub message: String,
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
                })
            }
            _ => None,
        }
    }
}
