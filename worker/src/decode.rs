//! Decoding: raw bytes of a declared media type to pixels, under limits.
//!
//! The header is read first: its dimensions are checked against `limits.max_pixels` before any
//! pixel buffer exists, so a decompression bomb costs a few bytes of reading. The decoder also
//! runs under `image`'s allocation limit. The EXIF orientation is applied, so that what comes
//! out is upright.

use std::io::Cursor;

use common::config::LimitsConfig;
use common::media::MediaType;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

use crate::error::ThumbnailError;

/// The decoders this build uses for JPEG and WebP.
pub const BACKENDS: &str = "JPEG: zune-jpeg (full size); WebP: image-webp";

/// The `image` format that decodes a media type.
fn image_format(media_type: MediaType) -> ImageFormat {
    match media_type {
        MediaType::Jpeg => ImageFormat::Jpeg,
        MediaType::Png => ImageFormat::Png,
        MediaType::Gif => ImageFormat::Gif,
        MediaType::Webp => ImageFormat::WebP,
        MediaType::Tiff => ImageFormat::Tiff,
        MediaType::Bmp => ImageFormat::Bmp,
    }
}

/// A decoder positioned after the header, whose dimensions have passed the pixel limit.
fn open<'a>(
    bytes: &'a [u8],
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<impl ImageDecoder + 'a, ThumbnailError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format(media_type));
    let mut image_limits = image::Limits::default();
    let side = u32::try_from(limits.max_pixels).unwrap_or(u32::MAX);
    image_limits.max_image_width = Some(side);
    image_limits.max_image_height = Some(side);
    image_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(image_limits);
    let decoder = reader
        .into_decoder()
        .map_err(|error| map_error(error, media_type))?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits.max_pixels)?;
    Ok(decoder)
}

/// Refuses dimensions whose product is over `max_pixels`.
pub fn check_pixels(width: u32, height: u32, max_pixels: u64) -> Result<(), ThumbnailError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(ThumbnailError::TooManyPixels {
            width,
            height,
            pixels,
            max: max_pixels,
        });
    }
    Ok(())
}

/// Reads only the header: the upright dimensions (EXIF orientation applied). Refuses images
/// over the pixel limit. Cheap: no pixel is decoded.
pub fn probe(
    bytes: &[u8],
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<(u32, u32), ThumbnailError> {
    let mut decoder = open(bytes, media_type, limits)?;
    let (width, height) = decoder.dimensions();
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    Ok(if swaps_axes(orientation) {
        (height, width)
    } else {
        (width, height)
    })
}

/// Whether an orientation turns the image by 90° (so width and height swap).
fn swaps_axes(orientation: image::metadata::Orientation) -> bool {
    use image::metadata::Orientation::*;
    matches!(
        orientation,
        Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH
    )
}

/// Decodes the whole image (for GIF, the first frame) and turns it upright.
pub fn decode(
    bytes: &[u8],
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<DynamicImage, ThumbnailError> {
    let mut decoder = open(bytes, media_type, limits)?;
    // A broken EXIF block is no reason to refuse an image that decodes: show it as stored.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|error| map_error(error, media_type))?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// Maps a decoder error to ours.
fn map_error(error: ImageError, media_type: MediaType) -> ThumbnailError {
    let media_type = media_type.as_str();
    match error {
        ImageError::Limits(limit) => ThumbnailError::OverMemoryLimit {
            media_type,
            detail: limit.to_string(),
        },
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            ThumbnailError::Decode {
                media_type,
                detail: "the file is truncated".to_owned(),
            }
        }
        other => ThumbnailError::Decode {
            media_type,
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut out = Vec::new();
        DynamicImage::new_rgb8(width, height)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn probes_and_decodes() {
        let bytes = png(30, 20);
        let limits = LimitsConfig::default();
        assert_eq!(probe(&bytes, MediaType::Png, &limits).unwrap(), (30, 20));
        let image = decode(&bytes, MediaType::Png, &limits).unwrap();
        assert_eq!((image.width(), image.height()), (30, 20));
    }

    #[test]
    fn refuses_too_many_pixels_from_the_header() {
        let bytes = png(30, 20);
        let limits = LimitsConfig {
            max_pixels: 599,
            ..LimitsConfig::default()
        };
        let error = decode(&bytes, MediaType::Png, &limits).unwrap_err();
        assert!(matches!(
            error,
            ThumbnailError::TooManyPixels { pixels: 600, .. }
        ));
        assert_eq!(error.code(), 413);
    }

    #[test]
    fn bombs_of_every_format_are_refused_from_the_header() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        for (name, media_type) in [
            ("bomb-png.png", MediaType::Png),
            ("bomb-jpeg.jpg", MediaType::Jpeg),
            ("bomb-gif.gif", MediaType::Gif),
            ("bomb-webp.webp", MediaType::Webp),
            ("bomb-tiff.tiff", MediaType::Tiff),
            ("bomb-bmp.bmp", MediaType::Bmp),
        ] {
            let bytes = std::fs::read(fixtures.join(name)).unwrap();
            let error = decode(&bytes, media_type, &LimitsConfig::default()).unwrap_err();
            assert!(
                matches!(error, ThumbnailError::TooManyPixels { .. }),
                "{name}: {error}"
            );
            assert_eq!(error.code(), 413);
        }
    }

    #[test]
    fn truncated_data_is_a_decode_error() {
        let bytes = png(30, 20);
        let error = decode(&bytes[..40], MediaType::Png, &LimitsConfig::default()).unwrap_err();
        assert_eq!(error.code(), 422, "{error}");
    }
}
