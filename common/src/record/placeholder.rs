//! What a client shows while a thumbnail loads: a completed image's placeholders.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A completed image's placeholders (`thumbnail.placeholders` says which), computed from the
/// decoded image in sRGB.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Placeholder {
    /// ThumbHash (evanw.github.io/thumbhash), base64: a blurred preview of the picture,
    /// with its alpha and aspect ratio, in about 25 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbhash: Option<String>,
    /// The dominant colour, `#rrggbb` in sRGB: the mean of the most populous colour bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dominant_color: Option<String>,
    /// BlurHash (blurha.sh), 4×3 components, when `thumbnail.placeholders` asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blurhash: Option<String>,
}
