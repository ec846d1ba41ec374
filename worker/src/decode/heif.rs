//! HEIC and AVIF through libheif (the `heif` feature: libheif built from the source bundled
//! in libheif-sys, with the system's libde265 for HEVC and dav1d for AV1).
//!
//! The container is parsed first and the primary image's size (after its `irot`/`imir`
//! transformations) checked against the pixel limit, and its decoded buffer against the
//! allocation limit, before anything is decoded; libheif's own security limits stay on. The
//! decode applies the transformations, so the image comes out upright (the EXIF orientation
//! of such files describes the same turn and is not applied again). Alpha is kept; 10- and
//! 12-bit images are decoded at 16 bits per sample.

use common::config::LimitsConfig;
use common::media::MediaType;
use image::{DynamicImage, ImageBuffer, Rgb, Rgba};
use libheif_rs::{ColorSpace, HeifContext, ImageHandle, LibHeif, RgbChroma};

use super::{Decoded, check_alloc, check_pixels, decode_error};
use crate::colour::Description;
use crate::error::ThumbnailError;

/// The primary image's handle, its upright size checked against the pixel limit.
fn primary(
    context: &HeifContext<'_>,
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<ImageHandle, ThumbnailError> {
    let handle = context
        .primary_image_handle()
        .map_err(|error| decode_error(media_type, error))?;
    check_pixels(handle.width(), handle.height(), limits.max_pixels)?;
    Ok(handle)
}

fn context(bytes: &[u8], media_type: MediaType) -> Result<HeifContext<'_>, ThumbnailError> {
    HeifContext::read_from_bytes(bytes).map_err(|error| decode_error(media_type, error))
}

/// The upright size, from the container.
pub fn probe(
    bytes: &[u8],
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<(u32, u32), ThumbnailError> {
    let context = context(bytes, media_type)?;
    let handle = primary(&context, media_type, limits)?;
    Ok((handle.width(), handle.height()))
}

/// Decodes the primary image, upright.
pub fn decode(
    bytes: &[u8],
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<Decoded, ThumbnailError> {
    let context = context(bytes, media_type)?;
    let handle = primary(&context, media_type, limits)?;
    let (width, height) = (handle.width(), handle.height());
    let alpha = handle.has_alpha_channel();
    let deep = handle.luma_bits_per_pixel() > 8;
    let channels = if alpha { 4 } else { 3 };
    check_alloc(
        media_type,
        (width, height),
        channels * if deep { 2 } else { 1 },
        limits,
    )?;
    let chroma = match (alpha, deep) {
        (false, false) => RgbChroma::Rgb,
        (true, false) => RgbChroma::Rgba,
        (false, true) => RgbChroma::HdrRgbLe,
        (true, true) => RgbChroma::HdrRgbaLe,
    };
    let decoded = LibHeif::new()
        .decode(&handle, ColorSpace::Rgb(chroma), None)
        .map_err(|error| decode_error(media_type, error))?;
    let planes = decoded.planes();
    let plane = planes
        .interleaved
        .ok_or_else(|| decode_error(media_type, "no interleaved RGB plane"))?;
    let (plane_width, plane_height) = (plane.width, plane.height);
    let row = plane_width as usize * channels as usize * if deep { 2 } else { 1 };
    let rows = plane.data.chunks(plane.stride).take(plane_height as usize);
    let image = if deep {
        // Samples of `bits` bits in 16-bit little-endian words, widened to the full range.
        let bits = u32::from(plane.bits_per_pixel).clamp(9, 16);
        let widen = |word: u16| (word << (16 - bits)) | (word >> (2 * bits - 16));
        let samples: Vec<u16> = rows
            .flat_map(|line| line[..row].chunks_exact(2))
            .map(|pair| widen(u16::from_le_bytes([pair[0], pair[1]])))
            .collect();
        if alpha {
            ImageBuffer::<Rgba<u16>, _>::from_raw(plane_width, plane_height, samples)
                .map(DynamicImage::ImageRgba16)
        } else {
            ImageBuffer::<Rgb<u16>, _>::from_raw(plane_width, plane_height, samples)
                .map(DynamicImage::ImageRgb16)
        }
    } else {
        let samples: Vec<u8> = rows.flat_map(|line| &line[..row]).copied().collect();
        if alpha {
            ImageBuffer::<Rgba<u8>, _>::from_raw(plane_width, plane_height, samples)
                .map(DynamicImage::ImageRgba8)
        } else {
            ImageBuffer::<Rgb<u8>, _>::from_raw(plane_width, plane_height, samples)
                .map(DynamicImage::ImageRgb8)
        }
    }
    .ok_or_else(|| decode_error(media_type, "the decoded plane is shorter than its size"))?;
    Ok(Decoded::whole(image).described(colour(&handle, limits)))
}

/// The primary image's `colr` box: an ICC profile (no larger than
/// `limits.max_metadata_bytes`; a larger one is left unread, as sRGB), else its CICP code
/// points.
fn colour(handle: &ImageHandle, limits: &LimitsConfig) -> Description {
    if let Some(raw) = handle.color_profile_raw() {
        if raw.data.len() as u64 <= limits.max_metadata_bytes {
            return Description::Icc(raw.data);
        }
        return Description::Unstated;
    }
    match handle.color_profile_nclx() {
        Some(nclx) => Description::Cicp {
            primaries: nclx.color_primaries() as u8,
            transfer: nclx.transfer_characteristics() as u8,
        },
        None => Description::Unstated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::fixture;

    #[test]
    fn an_irot_turn_is_applied() {
        // Stored 600×375, displayed a quarter turn anticlockwise.
        let bytes = fixture("avif-irot.avif");
        let limits = LimitsConfig::default();
        assert_eq!(probe(&bytes, MediaType::Avif, &limits).unwrap(), (375, 600));
        let decoded = decode(&bytes, MediaType::Avif, &limits).unwrap();
        assert_eq!((decoded.image.width(), decoded.image.height()), (375, 600));
    }

    #[test]
    fn alpha_and_depth_come_out_as_they_are() {
        let limits = LimitsConfig::default();
        let alpha = decode(&fixture("heic-alpha.heic"), MediaType::Heic, &limits).unwrap();
        assert!(alpha.image.color().has_alpha());
        for (name, media_type, bits) in [
            ("avif-10bit.avif", MediaType::Avif, 10),
            ("avif-12bit.avif", MediaType::Avif, 12),
            ("heic-12bit.heic", MediaType::Heic, 12),
        ] {
            let bytes = fixture(name);
            let stored = context(&bytes, media_type).unwrap();
            let handle = primary(&stored, media_type, &limits).unwrap();
            assert_eq!(handle.luma_bits_per_pixel(), bits, "{name}");
            let deep = decode(&bytes, media_type, &limits).unwrap();
            assert_eq!(deep.image.color(), image::ColorType::Rgb16, "{name}");
        }
    }

    #[test]
    fn bombs_are_refused_from_the_container() {
        for (name, media_type) in [
            ("bomb-heic.heic", MediaType::Heic),
            ("bomb-avif.avif", MediaType::Avif),
        ] {
            let error = decode(&fixture(name), media_type, &LimitsConfig::default()).unwrap_err();
            assert!(
                matches!(error, ThumbnailError::TooManyPixels { .. }),
                "{name}: {error}"
            );
        }
    }
}
