//! Encoding: the resized pixels to the thumbnail's format.
//!
//! `auto` keeps alpha: PNG when some pixel of the thumbnail is not opaque, JPEG otherwise (an
//! alpha channel that is opaque everywhere, as every GIF decodes to, is no reason for PNG).
//! JPEG output of an image with alpha is composed over white. Thumbnails are 8 bits per
//! channel whatever the source depth. WebP is lossy at the variant's quality (libwebp, the
//! `libwebp` feature, see [`webp`]) unless the variant asks `lossless`; the pure-Rust build
//! writes lossless WebP only. AVIF (the `heif` feature, see [`avif`]) is lossy at the
//! variant's quality. WebP and AVIF keep alpha. GIF ([`gif`]) has 256 colours and one bit of
//! alpha. Animations are written frame by frame ([`animation`]).
//!
//! Each thumbnail carries its colours' [`Tag`]. sRGB is tagged as each format says it
//! cheapest: PNG with its `sRGB` chunk, AVIF with CICP code points (BT.709 primaries, sRGB
//! transfer), JPEG and WebP by carrying no profile, which both define as sRGB (WebP's
//! container specification, and JPEG by the Exif convention every viewer follows): a 3 KB
//! thumbnail does not grow by a 500-byte profile to say what is already assumed. A kept
//! source profile is embedded whole: JPEG APP2 segments, PNG `iCCP`, WebP `ICCP` (in a VP8X
//! container), AVIF `colr`. GIF is left untagged, read as sRGB.

use common::config::OutputFormat;
use common::media::MediaType;
use common::variant::Variant;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ImageEncoder};

use crate::error::ThumbnailError;

pub mod animation;
#[cfg(feature = "heif")]
mod avif;
mod gif;
#[cfg(feature = "libwebp")]
mod webp;
#[cfg(feature = "libwebp")]
mod webp_animation;

/// Whether this build can write `format`: AVIF needs the `heif` feature (and libheif built
/// with libaom), every other format is always there (WebP at least lossless).
pub fn supports(format: OutputFormat) -> bool {
    #[cfg(feature = "heif")]
    let avif = avif::available();
    #[cfg(not(feature = "heif"))]
    let avif = false;
    format != OutputFormat::Avif || avif
}

/// Whether this build can write `variant`: its format ([`supports`]), and lossy WebP and
/// animated WebP only with libwebp (the `libwebp` feature).
pub fn writes(variant: &Variant) -> Result<(), &'static str> {
    if !supports(variant.format) {
        return Err("is not in this build (the heif feature)");
    }
    if variant.animated && variant.format != OutputFormat::Gif && !cfg!(feature = "libwebp") {
        return Err(
            "is not animated in this build (animated WebP needs the libwebp feature): ask \
                    format=gif",
        );
    }
    if variant.format == OutputFormat::Webp && !variant.lossless && !cfg!(feature = "libwebp") {
        return Err(
            "is lossless only in this build (lossy needs the libwebp feature): ask \
                    lossless=true",
        );
    }
    Ok(())
}

/// What a thumbnail says of its colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag<'a> {
    /// sRGB.
    Srgb,
    /// The colours of this ICC profile, embedded.
    Icc(&'a [u8]),
}

/// Encodes `image` as the configured format (WebP lossless or not), tagged with its colours;
/// returns the bytes and their media type.
pub fn encode(
    image: DynamicImage,
    format: OutputFormat,
    quality: u8,
    lossless: bool,
    tag: Tag<'_>,
) -> Result<(Vec<u8>, MediaType), ThumbnailError> {
    let image = to_8_bit(image);
    let media_type = match format {
        OutputFormat::Auto if uses_alpha(&image) => MediaType::Png,
        OutputFormat::Auto | OutputFormat::Jpeg => MediaType::Jpeg,
        OutputFormat::Png => MediaType::Png,
        OutputFormat::Webp => MediaType::Webp,
        OutputFormat::Avif => MediaType::Avif,
        OutputFormat::Gif => MediaType::Gif,
    };
    let image = if media_type == MediaType::Jpeg {
        flatten(image)
    } else {
        image
    };
    let mut out = Vec::new();
    let (width, height, color) = (image.width(), image.height(), image.color().into());
    let icc = match tag {
        Tag::Srgb => None,
        Tag::Icc(icc) => Some(icc.to_vec()),
    };
    let failed = |error: image::ImageError| ThumbnailError::Encode(error.to_string());
    match media_type {
        MediaType::Avif => return avif_encode(&image, quality, tag).map(|out| (out, media_type)),
        MediaType::Gif => return gif::still(image.into_rgba8()).map(|out| (out, media_type)),
        MediaType::Jpeg => {
            let mut encoder = JpegEncoder::new_with_quality(&mut out, quality);
            if let Some(icc) = icc {
                encoder.set_icc_profile(icc).map_err(|_| unsupported())?;
            }
            encoder
                .write_image(image.as_bytes(), width, height, color)
                .map_err(failed)?;
        }
        MediaType::Webp if !lossless => {
            return webp_lossy(&image, quality, tag).map(|out| (out, media_type));
        }
        MediaType::Webp => {
            let mut encoder = WebPEncoder::new_lossless(&mut out);
            if let Some(icc) = icc {
                encoder.set_icc_profile(icc).map_err(|_| unsupported())?;
            }
            encoder
                .write_image(image.as_bytes(), width, height, color)
                .map_err(failed)?;
        }
        _ => out = png(&image, tag)?,
    }
    Ok((out, media_type))
}

fn unsupported() -> ThumbnailError {
    ThumbnailError::Encode("the encoder cannot embed the colour profile".into())
}

/// PNG through the `png` crate (balanced compression, adaptive filters, as `image` sets
/// them), with the `sRGB` chunk or the profile as `iCCP`.
fn png(image: &DynamicImage, tag: Tag<'_>) -> Result<Vec<u8>, ThumbnailError> {
    let failed = |error: png::EncodingError| ThumbnailError::Encode(format!("PNG: {error}"));
    let color = match image {
        DynamicImage::ImageLuma8(_) => png::ColorType::Grayscale,
        DynamicImage::ImageLumaA8(_) => png::ColorType::GrayscaleAlpha,
        DynamicImage::ImageRgb8(_) => png::ColorType::Rgb,
        DynamicImage::ImageRgba8(_) => png::ColorType::Rgba,
        _ => return Err(ThumbnailError::Encode("PNG: not an 8-bit image".into())),
    };
    let mut info = png::Info::with_size(image.width(), image.height());
    info.color_type = color;
    info.bit_depth = png::BitDepth::Eight;
    match tag {
        Tag::Srgb => info.srgb = Some(png::SrgbRenderingIntent::Perceptual),
        Tag::Icc(icc) => info.icc_profile = Some(std::borrow::Cow::Borrowed(icc)),
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::with_info(&mut out, info).map_err(failed)?;
    encoder.set_compression(png::Compression::Balanced);
    encoder.set_filter(png::Filter::Adaptive);
    let mut writer = encoder.write_header().map_err(failed)?;
    writer.write_image_data(image.as_bytes()).map_err(failed)?;
    writer.finish().map_err(failed)?;
    Ok(out)
}

/// AVIF with the `heif` feature; without it, refused (the gateway refuses such variants
/// at the door, so a job reaches this only from a gateway built with the feature).
fn avif_encode(image: &DynamicImage, quality: u8, tag: Tag<'_>) -> Result<Vec<u8>, ThumbnailError> {
    #[cfg(feature = "heif")]
    return avif::encode(image, quality, tag);
    #[cfg(not(feature = "heif"))]
    {
        let _ = (image, quality, tag);
        Err(ThumbnailError::Encode(
            "AVIF output is not in this build (the heif feature)".into(),
        ))
    }
}

/// Lossy WebP with the `libwebp` feature; without it, refused (the gateway refuses such
/// variants at the door).
fn webp_lossy(image: &DynamicImage, quality: u8, tag: Tag<'_>) -> Result<Vec<u8>, ThumbnailError> {
    #[cfg(feature = "libwebp")]
    return webp::encode_lossy(image, quality, tag);
    #[cfg(not(feature = "libwebp"))]
    {
        let _ = (image, quality, tag);
        Err(ThumbnailError::Encode(
            "lossy WebP output is not in this build (the libwebp feature)".into(),
        ))
    }
}

/// The same image at 8 bits per channel, keeping grey and alpha.
fn to_8_bit(image: DynamicImage) -> DynamicImage {
    match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_) => image,
        DynamicImage::ImageLuma16(_) => DynamicImage::ImageLuma8(image.to_luma8()),
        DynamicImage::ImageLumaA16(_) => DynamicImage::ImageLumaA8(image.to_luma_alpha8()),
        other if other.color().has_alpha() => DynamicImage::ImageRgba8(other.to_rgba8()),
        other => DynamicImage::ImageRgb8(other.to_rgb8()),
    }
}

/// Whether some pixel of an 8-bit image is not fully opaque.
fn uses_alpha(image: &DynamicImage) -> bool {
    match image {
        DynamicImage::ImageLumaA8(grey) => grey.pixels().any(|p| p[1] < u8::MAX),
        DynamicImage::ImageRgba8(rgba) => rgba.pixels().any(|p| p[3] < u8::MAX),
        _ => false,
    }
}

/// Composes an image with alpha over white, for formats without alpha.
fn flatten(image: DynamicImage) -> DynamicImage {
    let over_white = |value: u8, alpha: u8| {
        let (value, alpha) = (u32::from(value), u32::from(alpha));
        // (v·a + 255·(255 − a)) / 255, rounded; at most 255.
        ((value * alpha + 255 * (255 - alpha) + 127) / 255) as u8
    };
    match image {
        DynamicImage::ImageLumaA8(grey) => {
            let mut out = image::GrayImage::new(grey.width(), grey.height());
            for (target, source) in out.pixels_mut().zip(grey.pixels()) {
                target[0] = over_white(source[0], source[1]);
            }
            DynamicImage::ImageLuma8(out)
        }
        DynamicImage::ImageRgba8(rgba) => {
            let mut out = image::RgbImage::new(rgba.width(), rgba.height());
            for (target, source) in out.pixels_mut().zip(rgba.pixels()) {
                for channel in 0..3 {
                    target[channel] = over_white(source[channel], source[3]);
                }
            }
            DynamicImage::ImageRgb8(out)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> DynamicImage {
        image::load_from_memory(bytes).unwrap()
    }

    #[test]
    fn auto_keeps_alpha_as_png_and_opaque_as_jpeg() {
        let (bytes, media_type) = encode(
            DynamicImage::new_rgba8(4, 3),
            OutputFormat::Auto,
            85,
            false,
            Tag::Srgb,
        )
        .unwrap();
        assert_eq!(media_type, MediaType::Png);
        assert!(decode(&bytes).color().has_alpha());

        let opaque = image::RgbaImage::from_pixel(4, 3, image::Rgba([9, 9, 9, 255]));
        let (bytes, media_type) = encode(
            DynamicImage::ImageRgba8(opaque),
            OutputFormat::Auto,
            85,
            false,
            Tag::Srgb,
        )
        .unwrap();
        assert_eq!(media_type, MediaType::Jpeg, "opaque alpha is no alpha");
        assert_eq!(decode(&bytes).color(), image::ColorType::Rgb8);

        let (bytes, media_type) = encode(
            DynamicImage::new_rgb16(4, 3),
            OutputFormat::Auto,
            85,
            false,
            Tag::Srgb,
        )
        .unwrap();
        assert_eq!(media_type, MediaType::Jpeg);
        assert_eq!(decode(&bytes).color(), image::ColorType::Rgb8);

        let (bytes, media_type) = encode(
            DynamicImage::new_luma16(4, 3),
            OutputFormat::Auto,
            85,
            false,
            Tag::Srgb,
        )
        .unwrap();
        assert_eq!(media_type, MediaType::Jpeg);
        assert_eq!(decode(&bytes).color(), image::ColorType::L8);
    }

    #[test]
    fn jpeg_composes_alpha_over_white() {
        let transparent = DynamicImage::new_rgba8(8, 8); // all (0,0,0,0)
        let (bytes, media_type) =
            encode(transparent, OutputFormat::Jpeg, 90, false, Tag::Srgb).unwrap();
        assert_eq!(media_type, MediaType::Jpeg);
        let pixel = decode(&bytes).to_rgb8().get_pixel(4, 4).0;
        assert!(pixel.iter().all(|&c| c > 245), "{pixel:?}");
    }

    #[test]
    fn png_and_webp_on_request() {
        for (format, media_type) in [
            (OutputFormat::Png, MediaType::Png),
            (OutputFormat::Webp, MediaType::Webp),
        ] {
            let (bytes, got) =
                encode(DynamicImage::new_rgb8(5, 7), format, 85, true, Tag::Srgb).unwrap();
            assert_eq!(got, media_type);
            let image = decode(&bytes);
            assert_eq!((image.width(), image.height()), (5, 7));
        }
    }

    /// A photograph-like gradient with noise: lossy WebP is a fraction of lossless, keeps
    /// the picture, and keeps alpha.
    #[test]
    fn webp_is_lossy_at_its_quality_unless_lossless() {
        let mut seed = 7u32;
        let photo = image::RgbaImage::from_fn(160, 120, |x, y| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let noise = (seed >> 24) as u8 / 16;
            let alpha = if x < 8 { 0 } else { 255 };
            image::Rgba([
                (x + u32::from(noise)) as u8,
                (y * 2) as u8,
                noise * 8,
                alpha,
            ])
        });
        let photo = DynamicImage::ImageRgba8(photo);
        let (lossless, _) = encode(photo.clone(), OutputFormat::Webp, 80, true, Tag::Srgb).unwrap();
        let lossy = encode(photo.clone(), OutputFormat::Webp, 80, false, Tag::Srgb);
        assert_eq!(lossy.is_ok(), cfg!(feature = "libwebp"), "{lossy:?}");
        if let Ok((lossy, media_type)) = lossy {
            assert_eq!(media_type, MediaType::Webp);
            assert!(
                lossy.len() * 3 < lossless.len(),
                "{} vs {}",
                lossy.len(),
                lossless.len()
            );
            let (low, _) = encode(photo.clone(), OutputFormat::Webp, 20, false, Tag::Srgb).unwrap();
            assert!(low.len() < lossy.len(), "quality has its effect");
            let decoded = decode(&lossy).to_rgba8();
            assert_eq!(decoded.get_pixel(2, 50)[3], 0, "alpha kept");
            let (a, b) = (
                decoded.get_pixel(100, 60),
                photo.to_rgba8().get_pixel(100, 60).0,
            );
            for channel in 0..3 {
                assert!(a[channel].abs_diff(b[channel]) < 24, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn avif_only_with_the_heif_feature() {
        assert_eq!(supports(OutputFormat::Avif), cfg!(feature = "heif"));
        assert!(supports(OutputFormat::Webp));
        let result = encode(
            DynamicImage::new_rgb8(5, 7),
            OutputFormat::Avif,
            60,
            false,
            Tag::Srgb,
        );
        assert_eq!(result.is_ok(), cfg!(feature = "heif"), "{result:?}");
    }
}
