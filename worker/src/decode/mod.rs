//! Decoding: raw bytes of a declared media type to pixels, under limits.
//!
//! The header is read first: its dimensions are checked against `limits.max_pixels` before any
//! pixel buffer exists, so a decompression bomb costs a few bytes of reading. The decoder also
//! runs under `image`'s allocation limit. The EXIF orientation is applied, so that what comes
//! out is upright.
//!
//! Decoding knows the box the thumbnail must fit, so formats that can decode at reduced size do:
//! JPEG decodes its DCT blocks at 1/2, 1/4 or 1/8 scale ([`jpeg`]), and WebP, with the
//! `libwebp` feature, scales while it decodes ([`webp`]). GIF reads its first frame's palette
//! indices itself ([`gif`]), a plain 24-bit BMP is copied row by row ([`bmp`]), and PNG goes
//! through the `png` crate with its text and ICC chunks skipped ([`png`]). JPEG XL decodes
//! through jxl-oxide ([`jxl`]). GIF frames and TIFF's LZW strips are decoded by [`lzw`], a
//! faster LZW than the one the `gif` and `tiff` crates use ([`tiff`]; other TIFF layouts, and
//! WebP without `libwebp`, decode through `image` at full size).
//!
//! Before any of this, [`metadata`] bounds what the file carries beside its pixels: the probe
//! and the decoders never allocate more than `limits.max_metadata_bytes` for metadata, and
//! never inflate it.

use std::io::Cursor;

use common::config::LimitsConfig;
use common::media::MediaType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

use crate::colour::Description;
use crate::error::ThumbnailError;

mod bmp;
pub(crate) mod gif;
#[cfg(feature = "heif")]
mod heif;
mod jpeg;
mod jpeg_scans;
mod jxl;
pub mod lzw;
pub(crate) mod metadata;
mod png;
mod tiff;
#[cfg(feature = "libwebp")]
mod webp;

/// The decoders this build uses for JPEG, WebP, HEIC and AVIF, for start-up logs and
/// benchmark reports.
pub fn backends() -> String {
    let webp = if cfg!(feature = "libwebp") {
        "libwebp, scaled while decoding"
    } else {
        "image-webp, full size"
    };
    let heif = if cfg!(feature = "heif") {
        "libheif"
    } else {
        "off (the heif feature)"
    };
    format!("JPEG: {}; WebP: {webp}; HEIC/AVIF: {heif}", jpeg::BACKEND)
}

/// A decoded image, the size of the source it came from, and what it says of its colours.
#[derive(Debug)]
pub struct Decoded {
    /// The upright pixels: the whole image, or a reduction of it no smaller than twice the
    /// thumbnail (see [`decode`]).
    pub image: DynamicImage,
    /// The source's upright width.
    pub source_width: u32,
    /// The source's upright height.
    pub source_height: u32,
    /// The colour description the decoder read (an ICC profile, CICP, PNG chunks), for
    /// [`crate::colour`].
    pub colour: Description,
}

impl Decoded {
    /// The whole source, already upright, with nothing said of its colours.
    pub(crate) fn whole(image: DynamicImage) -> Self {
        Self {
            source_width: image.width(),
            source_height: image.height(),
            image,
            colour: Description::Unstated,
        }
    }

    /// The same, with the colour description the decoder read.
    pub(crate) fn described(self, colour: Description) -> Self {
        Self { colour, ..self }
    }
}

/// The `image` format that decodes a media type; a video is none (see [`crate::video`]).
fn image_format(media_type: MediaType) -> Result<ImageFormat, ThumbnailError> {
    Ok(match media_type {
        MediaType::Jpeg => ImageFormat::Jpeg,
        MediaType::Png => ImageFormat::Png,
        MediaType::Gif => ImageFormat::Gif,
        MediaType::Webp => ImageFormat::WebP,
        MediaType::Tiff => ImageFormat::Tiff,
        MediaType::Bmp => ImageFormat::Bmp,
        MediaType::Jxl | MediaType::Avif | MediaType::Heic => {
            return Err(decode_error(
                media_type,
                "read by its own decoder, not image",
            ));
        }
        MediaType::Svg | MediaType::Pdf => {
            return Err(decode_error(
                media_type,
                "a document is drawn by its renderer",
            ));
        }
        MediaType::Mp4
        | MediaType::Quicktime
        | MediaType::Webm
        | MediaType::Matroska
        | MediaType::Avi => {
            return Err(decode_error(media_type, "a video has no image decoder"));
        }
    })
}

/// A decoder positioned after the header, whose dimensions have passed the pixel limit.
fn open<'a>(
    bytes: &'a [u8],
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<impl ImageDecoder + 'a, ThumbnailError> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format(media_type)?);
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

/// Refuses a `width`×`height` pixel buffer of `channels` bytes per pixel over
/// `limits.max_alloc_bytes`, before it is allocated.
pub(crate) fn check_alloc(
    media_type: MediaType,
    (width, height): (u32, u32),
    channels: u64,
    limits: &LimitsConfig,
) -> Result<(), ThumbnailError> {
    let needed = u64::from(width) * u64::from(height) * channels;
    if needed > limits.max_alloc_bytes {
        return Err(ThumbnailError::OverMemoryLimit {
            media_type: media_type.as_str(),
            detail: format!(
                "{width}×{height} pixels need {needed} bytes, over limits.max_alloc_bytes ({})",
                limits.max_alloc_bytes
            ),
        });
    }
    Ok(())
}

/// Reads only the header: the upright dimensions (EXIF orientation applied). Refuses images
/// over the pixel limit, and files whose metadata is over its bound. Cheap: no pixel is
/// decoded, nothing is inflated, and the bytes are copied only to drop a JPEG's excess
/// metadata.
pub fn probe(
    bytes: &[u8],
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<(u32, u32), ThumbnailError> {
    let bytes = metadata::bounded(bytes, media_type, limits.max_metadata_bytes)?;
    let bytes = bytes.as_ref();
    match media_type {
        MediaType::Jpeg => {
            let header = jpeg::Header::read(bytes, limits)?;
            return Ok(upright(header.width, header.height, header.orientation));
        }
        MediaType::Png => return png::probe(bytes, limits),
        MediaType::Jxl => return jxl::probe(bytes, limits),
        MediaType::Avif | MediaType::Heic => return heif_probe(bytes, media_type, limits),
        _ => {}
    }
    let mut decoder = open(bytes, media_type, limits)?;
    let (width, height) = decoder.dimensions();
    Ok(upright(width, height, orientation(&mut decoder)))
}

/// The EXIF orientation a decoder reports. A broken EXIF block is no reason to refuse an image
/// that decodes: it is shown as stored.
fn orientation(decoder: &mut impl ImageDecoder) -> Orientation {
    decoder.orientation().unwrap_or(Orientation::NoTransforms)
}

/// The dimensions of a `width`×`height` image once turned upright by `orientation`.
fn upright(width: u32, height: u32, orientation: Orientation) -> (u32, u32) {
    use Orientation::*;
    match orientation {
        Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH => (height, width),
        _ => (width, height),
    }
}

/// What a decode must leave room for: given the source's upright size, the upright size the
/// whole source is scaled to for its largest thumbnail ([`crate::geometry::largest_scaled`]).
pub type Target<'a> = &'a dyn Fn(u32, u32) -> (u32, u32);

/// Decodes the image (for GIF, the first frame) and turns it upright. The result is the whole
/// image, or, for formats that can decode at reduced size, the smallest reduction they offer
/// that is still at least twice the `target` size: the final Lanczos filter keeps real pixels
/// to work with, as in libvips' and Pillow's shrink-on-load.
pub fn decode(
    bytes: &[u8],
    media_type: MediaType,
    limits: &LimitsConfig,
    target: Target<'_>,
) -> Result<Decoded, ThumbnailError> {
    let bytes = metadata::bounded(bytes, media_type, limits.max_metadata_bytes)?;
    let bytes = bytes.as_ref();
    match media_type {
        MediaType::Jpeg => jpeg::decode(bytes, limits, target),
        MediaType::Png => png::decode(bytes, limits),
        MediaType::Gif => gif::decode(bytes, limits),
        MediaType::Tiff => tiff::decode(bytes, limits),
        MediaType::Bmp => bmp::decode(bytes, limits),
        MediaType::Jxl => jxl::decode(bytes, limits),
        MediaType::Avif | MediaType::Heic => heif_decode(bytes, media_type, limits),
        #[cfg(feature = "libwebp")]
        MediaType::Webp => webp::decode(bytes, limits, target),
        _ => decode_full(bytes, media_type, limits),
    }
}

/// HEIC and AVIF sizes: libheif with the `heif` feature; without it, refused (415).
fn heif_probe(
    bytes: &[u8],
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<(u32, u32), ThumbnailError> {
    #[cfg(feature = "heif")]
    return heif::probe(bytes, media_type, limits);
    #[cfg(not(feature = "heif"))]
    {
        let _ = (bytes, limits);
        Err(not_in_this_build(media_type))
    }
}

/// Whether this build decodes images of `media_type` (HEIC and AVIF only with the `heif`
/// feature). Videos are FFmpeg's, whatever the build.
pub fn reads(media_type: MediaType) -> bool {
    !matches!(media_type, MediaType::Heic | MediaType::Avif) || cfg!(feature = "heif")
}

/// HEIC and AVIF pixels: libheif with the `heif` feature; without it, refused (415).
fn heif_decode(
    bytes: &[u8],
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<Decoded, ThumbnailError> {
    #[cfg(feature = "heif")]
    return heif::decode(bytes, media_type, limits);
    #[cfg(not(feature = "heif"))]
    {
        let _ = (bytes, limits);
        Err(not_in_this_build(media_type))
    }
}

#[cfg(not(feature = "heif"))]
fn not_in_this_build(media_type: MediaType) -> ThumbnailError {
    ThumbnailError::NotInThisBuild {
        media_type: media_type.as_str(),
        feature: "heif",
    }
}

/// Decodes the whole image through `image` and turns it upright.
fn decode_full(
    bytes: &[u8],
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<Decoded, ThumbnailError> {
    decode_opened(open(bytes, media_type, limits)?, media_type)
}

/// Decodes the whole image from a decoder [`open`] returned, and turns it upright, with the
/// ICC profile the decoder read (TIFF's tag 34675, WebP's `ICCP`, JPEG's APP2 segments).
fn decode_opened(
    mut decoder: impl ImageDecoder,
    media_type: MediaType,
) -> Result<Decoded, ThumbnailError> {
    let orientation = orientation(&mut decoder);
    let colour = match decoder.icc_profile() {
        Ok(Some(icc)) => Description::Icc(icc),
        _ => Description::Unstated,
    };
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|error| map_error(error, media_type))?;
    image.apply_orientation(orientation);
    Ok(Decoded::whole(image).described(colour))
}

/// The `target` size of a `width`×`height` image as stored: `swapped` says the upright image
/// has them the other way round.
fn stored_target(width: u32, height: u32, swapped: bool, target: Target<'_>) -> (u32, u32) {
    if swapped {
        let (w, h) = target(height, width);
        (h, w)
    } else {
        target(width, height)
    }
}

/// The smallest of the `reductions` (divisors, largest first) that leaves a `width`×`height`
/// image at least twice its `target` size, or 1. `width` and `height` are as stored:
/// `swapped` says the upright image has them the other way round.
fn reduction(
    width: u32,
    height: u32,
    swapped: bool,
    target: Target<'_>,
    reductions: &[u32],
) -> u32 {
    let (target_width, target_height) = stored_target(width, height, swapped, target);
    reductions
        .iter()
        .copied()
        .find(|&r| width.div_ceil(r) >= 2 * target_width && height.div_ceil(r) >= 2 * target_height)
        .unwrap_or(1)
}

/// The error for a `media_type` file that its decoder could not read, in the decoder's words.
pub(crate) fn decode_error(
    media_type: MediaType,
    detail: impl std::fmt::Display,
) -> ThumbnailError {
    ThumbnailError::Decode {
        media_type: media_type.as_str(),
        detail: detail.to_string(),
    }
}

/// The target of the default thumbnail: fitted in 100×100.
#[cfg(test)]
fn fit_100(width: u32, height: u32) -> (u32, u32) {
    let variant =
        common::variant::Variant::default_for(&common::config::ThumbnailConfig::default());
    crate::geometry::plan(&variant, width, height, 4096).scaled
}

/// The bytes of a file in `tests/fixtures`.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    std::fs::read(path.join(name)).unwrap()
}

/// `count` copies of `bytes`, each with four bytes past the first `keep` set to xorshift
/// noise: damaged files, the same on every run.
#[cfg(test)]
fn damaged(bytes: &[u8], keep: usize, count: usize) -> impl Iterator<Item = Vec<u8>> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..count).map(move |_| {
        let mut damaged = bytes.to_vec();
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = keep + (state % (bytes.len() - keep) as u64) as usize;
            damaged[at] = (state >> 32) as u8;
        }
        damaged
    })
}

/// Maps a decoder error to ours.
fn map_error(error: ImageError, media_type: MediaType) -> ThumbnailError {
    match error {
        ImageError::Limits(limit) => ThumbnailError::OverMemoryLimit {
            media_type: media_type.as_str(),
            detail: limit.to_string(),
        },
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            decode_error(media_type, "the file is truncated")
        }
        other => decode_error(media_type, other),
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
        let decoded = decode(&bytes, MediaType::Png, &limits, &fit_100).unwrap();
        assert_eq!((decoded.image.width(), decoded.image.height()), (30, 20));
    }

    #[test]
    fn refuses_too_many_pixels_from_the_header() {
        let bytes = png(30, 20);
        let limits = LimitsConfig {
            max_pixels: 599,
            ..LimitsConfig::default()
        };
        let error = decode(&bytes, MediaType::Png, &limits, &fit_100).unwrap_err();
        assert!(matches!(
            error,
            ThumbnailError::TooManyPixels { pixels: 600, .. }
        ));
        assert_eq!(error.code(), 413);
    }

    #[test]
    fn bombs_of_every_format_are_refused_from_the_header() {
        for (name, media_type) in [
            ("bomb-png.png", MediaType::Png),
            ("bomb-jpeg.jpg", MediaType::Jpeg),
            ("bomb-gif.gif", MediaType::Gif),
            ("bomb-webp.webp", MediaType::Webp),
            ("bomb-tiff.tiff", MediaType::Tiff),
            ("bomb-bmp.bmp", MediaType::Bmp),
            ("bomb-jxl.jxl", MediaType::Jxl),
        ] {
            let bytes = fixture(name);
            let error = decode(&bytes, media_type, &LimitsConfig::default(), &fit_100).unwrap_err();
            assert!(
                matches!(error, ThumbnailError::TooManyPixels { .. }),
                "{name}: {error}"
            );
            assert_eq!(error.code(), 413);
        }
    }

    #[test]
    fn metadata_bombs_are_bounded_in_every_format() {
        let limits = LimitsConfig {
            max_metadata_bytes: 256 * 1024,
            ..LimitsConfig::default()
        };
        // Compressed metadata is skipped, and a JPEG's excess metadata dropped: these decode.
        for (name, media_type, upright) in [
            ("bomb-png-iccp.png", MediaType::Png, (10, 10)),
            ("bomb-png-ztxt.png", MediaType::Png, (10, 10)),
            ("bomb-png-itxt.png", MediaType::Png, (10, 10)),
            ("bomb-meta-jpeg-icc.jpg", MediaType::Jpeg, (300, 400)),
        ] {
            let bytes = fixture(name);
            assert_eq!(
                probe(&bytes, media_type, &limits).unwrap(),
                upright,
                "{name}"
            );
            let decoded = decode(&bytes, media_type, &limits, &fit_100).unwrap();
            assert_eq!(
                (decoded.source_width, decoded.source_height),
                upright,
                "{name}"
            );
        }
        // Metadata that would have to be kept: refused from the probe on.
        for (name, media_type) in [
            ("bomb-meta-png-exif.png", MediaType::Png),
            ("bomb-meta-gif-comment.gif", MediaType::Gif),
            ("bomb-meta-webp-exif.webp", MediaType::Webp),
            ("bomb-meta-tiff-count.tiff", MediaType::Tiff),
        ] {
            let bytes = fixture(name);
            for error in [
                probe(&bytes, media_type, &limits).unwrap_err(),
                decode(&bytes, media_type, &limits, &fit_100).unwrap_err(),
            ] {
                assert!(
                    matches!(error, ThumbnailError::MetadataTooLarge { .. }),
                    "{name}: {error}"
                );
                assert_eq!(error.code(), 413);
            }
        }
    }

    #[test]
    fn truncated_data_is_a_decode_error() {
        let bytes = png(30, 20);
        let error = decode(
            &bytes[..40],
            MediaType::Png,
            &LimitsConfig::default(),
            &fit_100,
        )
        .unwrap_err();
        assert_eq!(error.code(), 422, "{error}");
    }
}
