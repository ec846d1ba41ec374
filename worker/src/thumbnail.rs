//! The thumbnail pipeline for one image: decode → resize → encode, with panics contained.

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::config::{LimitsConfig, ThumbnailConfig};
use common::media::MediaType;
use common::record::ThumbnailInfo;

use crate::error::ThumbnailError;
use crate::{decode, encode, resize};

/// A finished thumbnail.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    /// The encoded thumbnail.
    pub bytes: Vec<u8>,
    /// Its format and size.
    pub info: ThumbnailInfo,
    /// The source's upright width.
    pub source_width: u32,
    /// The source's upright height.
    pub source_height: u32,
}

/// Makes the thumbnail of `bytes`, an image of `media_type`. CPU-bound and blocking: run it on
/// a blocking thread. A panic inside a decoder is caught and reported as
/// [`ThumbnailError::Panic`], so that a hostile file ends as a failed job, not a dead worker.
pub fn make(
    bytes: &[u8],
    media_type: MediaType,
    settings: &ThumbnailConfig,
    limits: &LimitsConfig,
) -> Result<Thumbnail, ThumbnailError> {
    catch_unwind(AssertUnwindSafe(|| {
        make_unguarded(bytes, media_type, settings, limits)
    }))
    .unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        tracing::error!(%media_type, %message, "decoder panicked");
        Err(ThumbnailError::Panic(message))
    })
}

fn make_unguarded(
    bytes: &[u8],
    media_type: MediaType,
    settings: &ThumbnailConfig,
    limits: &LimitsConfig,
) -> Result<Thumbnail, ThumbnailError> {
    let fit_box = (settings.width, settings.height);
    let decode::Decoded {
        image,
        source_width,
        source_height,
    } = decode::decode(bytes, media_type, limits, fit_box)?;
    let (width, height) = resize::fit(source_width, source_height, fit_box.0, fit_box.1);
    let resized = resize::resize(image, width, height)?;
    let (bytes, media_type) = encode::encode(resized, settings.format, settings.jpeg_quality)?;
    Ok(Thumbnail {
        info: ThumbnailInfo {
            media_type,
            width,
            height,
            size: bytes.len() as u64,
        },
        bytes,
        source_width,
        source_height,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::{DynamicImage, ImageFormat};

    use super::*;

    #[test]
    fn makes_a_fitted_jpeg_of_an_opaque_png() {
        let mut png = Vec::new();
        DynamicImage::new_rgb8(400, 200)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let thumbnail = make(
            &png,
            MediaType::Png,
            &ThumbnailConfig::default(),
            &LimitsConfig::default(),
        )
        .unwrap();
        assert_eq!(
            (thumbnail.source_width, thumbnail.source_height),
            (400, 200)
        );
        assert_eq!(thumbnail.info.media_type, MediaType::Jpeg);
        assert_eq!((thumbnail.info.width, thumbnail.info.height), (100, 50));
        let decoded = image::load_from_memory(&thumbnail.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (100, 50));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for media_type in common::media::ALL {
            let error = make(
                b"\0\x01garbage",
                media_type,
                &ThumbnailConfig::default(),
                &LimitsConfig::default(),
            )
            .unwrap_err();
            assert_eq!(error.code(), 422, "{media_type}: {error}");
        }
    }
}
