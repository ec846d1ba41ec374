//! An animated thumbnail being written, frame after frame: WebP (for `webp` and `auto`,
//! through libwebp's animation encoder, the `libwebp` feature) or GIF (for `gif`). Frames
//! come in sRGB; an animation carries no profile.

use common::config::OutputFormat;
use common::media::MediaType;
use image::DynamicImage;

use crate::error::ThumbnailError;

/// An animation being written.
pub enum Animation {
    /// Animated WebP.
    #[cfg(feature = "libwebp")]
    Webp(super::webp_animation::Encoder),
    /// Animated GIF.
    Gif(super::gif::Encoder),
}

/// How an animation repeats: the times it plays (0: forever).
pub type Loops = u16;

impl Animation {
    /// An animation of `size` frames in `format` (`auto` is WebP), lossy WebP at `quality`
    /// unless `lossless`, played `loops` times.
    pub fn new(
        format: OutputFormat,
        size: (u32, u32),
        quality: u8,
        lossless: bool,
        loops: Loops,
    ) -> Result<Self, ThumbnailError> {
        match format {
            OutputFormat::Gif => Ok(Self::Gif(super::gif::Encoder::new(size, loops)?)),
            #[cfg(feature = "libwebp")]
            OutputFormat::Auto | OutputFormat::Webp => Ok(Self::Webp(
                super::webp_animation::Encoder::new(size, quality, lossless, loops)?,
            )),
            _ => {
                let _ = (quality, lossless);
                Err(ThumbnailError::Encode(format!(
                    "no animated {} in this build",
                    format.as_str()
                )))
            }
        }
    }

    /// The media type written.
    pub fn media_type(&self) -> MediaType {
        match self {
            #[cfg(feature = "libwebp")]
            Self::Webp(_) => MediaType::Webp,
            Self::Gif(_) => MediaType::Gif,
        }
    }

    /// Adds a frame, shown for `duration_ms`.
    pub fn add(&mut self, frame: DynamicImage, duration_ms: u32) -> Result<(), ThumbnailError> {
        let frame = frame.into_rgba8();
        match self {
            #[cfg(feature = "libwebp")]
            Self::Webp(encoder) => encoder.add(frame.as_raw(), duration_ms),
            Self::Gif(encoder) => encoder.add(frame, duration_ms),
        }
    }

    /// The animation's bytes.
    pub fn finish(self) -> Result<Vec<u8>, ThumbnailError> {
        match self {
            #[cfg(feature = "libwebp")]
            Self::Webp(encoder) => encoder.finish(),
            Self::Gif(encoder) => encoder.finish(),
        }
    }
}
