//! PNG, read with the `png` crate directly so that its metadata stays bounded.
//!
//! Text chunks (`tEXt`, `zTXt`, `iTXt`) are skipped unread, never inflated. The ICC profile
//! (`iCCP`) is read when its chunk is at most half of `limits.max_metadata_bytes`, and
//! inflated under the decoder's byte limit, only so far: a chunk that would inflate past it
//! (a 1 MB chunk that would be a gigabyte) is dropped at the bound, a larger chunk is
//! skipped unread, and either way the image reads as sRGB. The decoder's own allocations (the profile, the `eXIf` chunk it keeps
//! for the orientation, its line buffers) run under `limits.max_metadata_bytes` plus two
//! rows of the widest pixel format; an `eXIf` over the bound refuses the image. The colour
//! description is, by the PNG specification's precedence, `cICP`, then `iCCP`, then `sRGB`,
//! then `gAMA` and `cHRM`. Palette, low bit depths and `tRNS` are expanded
//! to 8-bit grey or RGB, with alpha where the file has any; 16-bit samples stay 16-bit.

use std::io::Cursor;

use common::config::LimitsConfig;
use common::media::MediaType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageBuffer};
use png::{BitDepth, ColorType, DecodingError, Transformations};

use super::{Decoded, check_alloc, check_pixels, upright};
use crate::colour::Description;
use crate::error::ThumbnailError;

/// The most bytes one pixel takes once expanded: RGBA, 16 bits a sample.
const MAX_PIXEL_BYTES: u64 = 8;

/// A reader positioned at the first frame, whose dimensions have passed the pixel limit.
fn open<'a>(
    bytes: &'a [u8],
    limits: &LimitsConfig,
) -> Result<png::Reader<Cursor<&'a [u8]>>, ThumbnailError> {
    // The width is in IHDR, at a fixed place in every valid file; the decoder checks the rest.
    let width = bytes.get(16..20).map_or(0, |field| {
        u32::from_be_bytes(field.try_into().unwrap_or_default())
    });
    let budget = limits
        .max_metadata_bytes
        .saturating_add(2 * u64::from(width) * MAX_PIXEL_BYTES);
    let mut decoder = png::Decoder::new_with_limits(
        Cursor::new(bytes),
        png::Limits {
            bytes: usize::try_from(budget).unwrap_or(usize::MAX),
        },
    );
    decoder.set_ignore_text_chunk(true);
    // An ICC chunk is read (and inflated, up to the decoder's limit) only when it is no more
    // than half the metadata bound as stored: a larger one is skipped unread, and the image
    // reads as sRGB.
    let iccp = super::metadata::png_chunk_length(bytes, *b"iCCP");
    decoder.set_ignore_iccp_chunk(iccp.is_none_or(|length| length > limits.max_metadata_bytes / 2));
    decoder.set_transformations(Transformations::EXPAND);
    let reader = decoder
        .read_info()
        .map_err(|error| map_error(error, limits))?;
    let info = reader.info();
    check_pixels(info.width, info.height, limits.max_pixels)?;
    Ok(reader)
}

/// The EXIF orientation from the `eXIf` chunk; none when absent or unreadable.
fn orientation(reader: &png::Reader<Cursor<&[u8]>>) -> Orientation {
    reader
        .info()
        .exif_metadata
        .as_deref()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms)
}

/// The upright dimensions, from the chunks before the image data.
pub fn probe(bytes: &[u8], limits: &LimitsConfig) -> Result<(u32, u32), ThumbnailError> {
    let reader = open(bytes, limits)?;
    let info = reader.info();
    Ok(upright(info.width, info.height, orientation(&reader)))
}

/// Decodes the image (for an animated PNG, its default image) and turns it upright.
pub fn decode(bytes: &[u8], limits: &LimitsConfig) -> Result<Decoded, ThumbnailError> {
    let mut reader = open(bytes, limits)?;
    let (width, height) = (reader.info().width, reader.info().height);
    let orientation = orientation(&reader);
    let (color, depth) = reader.output_color_type();
    let channels = color.samples() as u64 * if depth == BitDepth::Sixteen { 2 } else { 1 };
    check_alloc(MediaType::Png, (width, height), channels, limits)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| decode_error("the image is too large to address"))?;
    let mut image = if depth == BitDepth::Sixteen {
        let mut samples = vec![0u16; size / 2];
        reader
            .next_frame(bytemuck::cast_slice_mut(&mut samples))
            .map_err(|error| map_error(error, limits))?;
        for sample in &mut samples {
            *sample = u16::from_be(*sample);
        }
        sixteen_bit(color, width, height, samples)
    } else {
        let mut samples = vec![0u8; size];
        reader
            .next_frame(&mut samples)
            .map_err(|error| map_error(error, limits))?;
        eight_bit(color, width, height, samples)
    }
    .ok_or_else(|| decode_error("the decoder returned a short buffer"))?;
    image.apply_orientation(orientation);
    Ok(Decoded::whole(image).described(description(reader.info())))
}

/// What the chunks before the image data say of its colours, by the specification's
/// precedence.
fn description(info: &png::Info<'_>) -> Description {
    if let Some(cicp) = &info.coding_independent_code_points {
        return Description::Cicp {
            primaries: cicp.color_primaries,
            transfer: cicp.transfer_function,
        };
    }
    if let Some(icc) = &info.icc_profile {
        return Description::Icc(icc.to_vec());
    }
    if info.srgb.is_some() {
        return Description::Srgb;
    }
    let gamma = info.source_gamma.map(|g| f64::from(g.into_value()));
    let chromaticities = info.source_chromaticities.map(|c| {
        let v = |f: png::ScaledFloat| f64::from(f.into_value());
        [
            v(c.white.0),
            v(c.white.1),
            v(c.red.0),
            v(c.red.1),
            v(c.green.0),
            v(c.green.1),
            v(c.blue.0),
            v(c.blue.1),
        ]
    });
    if gamma.is_none() && chromaticities.is_none() {
        return Description::Unstated;
    }
    Description::Gamma {
        gamma,
        chromaticities,
    }
}

fn eight_bit(color: ColorType, width: u32, height: u32, samples: Vec<u8>) -> Option<DynamicImage> {
    Some(match color {
        ColorType::Grayscale => {
            DynamicImage::ImageLuma8(ImageBuffer::from_raw(width, height, samples)?)
        }
        ColorType::GrayscaleAlpha => {
            DynamicImage::ImageLumaA8(ImageBuffer::from_raw(width, height, samples)?)
        }
        ColorType::Rgb => DynamicImage::ImageRgb8(ImageBuffer::from_raw(width, height, samples)?),
        ColorType::Rgba => DynamicImage::ImageRgba8(ImageBuffer::from_raw(width, height, samples)?),
        // EXPAND turns palettes into RGB or RGBA.
        ColorType::Indexed => return None,
    })
}

fn sixteen_bit(
    color: ColorType,
    width: u32,
    height: u32,
    samples: Vec<u16>,
) -> Option<DynamicImage> {
    Some(match color {
        ColorType::Grayscale => {
            DynamicImage::ImageLuma16(ImageBuffer::from_raw(width, height, samples)?)
        }
        ColorType::GrayscaleAlpha => {
            DynamicImage::ImageLumaA16(ImageBuffer::from_raw(width, height, samples)?)
        }
        ColorType::Rgb => DynamicImage::ImageRgb16(ImageBuffer::from_raw(width, height, samples)?),
        ColorType::Rgba => {
            DynamicImage::ImageRgba16(ImageBuffer::from_raw(width, height, samples)?)
        }
        ColorType::Indexed => return None,
    })
}

fn decode_error(detail: impl std::fmt::Display) -> ThumbnailError {
    super::decode_error(MediaType::Png, detail)
}

/// Maps the decoder's error to ours: its limit is the metadata bound.
fn map_error(error: DecodingError, limits: &LimitsConfig) -> ThumbnailError {
    match error {
        DecodingError::LimitsExceeded => ThumbnailError::MetadataTooLarge {
            media_type: MediaType::Png.as_str(),
            bytes: limits.max_metadata_bytes.saturating_add(1),
            max: limits.max_metadata_bytes,
        },
        DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            decode_error("the file is truncated")
        }
        other => decode_error(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::fixture;

    #[test]
    fn every_colour_type_decodes_like_image_does() {
        for name in [
            "png-rgb.png",
            "png-rgba.png",
            "png-gray.png",
            "png-gray-alpha.png",
            "png-palette.png",
            "png-interlaced.png",
            "png-16bit-rgb.png",
            "png-16bit-gray.png",
        ] {
            let bytes = fixture(name);
            let ours = decode(&bytes, &LimitsConfig::default()).unwrap().image;
            let theirs =
                image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap();
            assert_eq!(ours.color(), theirs.color(), "{name}");
            assert_eq!(ours.as_bytes(), theirs.as_bytes(), "{name}");
            assert_eq!(
                probe(&bytes, &LimitsConfig::default()).unwrap(),
                (theirs.width(), theirs.height()),
                "{name}"
            );
        }
    }

    #[test]
    fn compressed_metadata_is_never_inflated() {
        for name in [
            "bomb-png-iccp.png",
            "bomb-png-ztxt.png",
            "bomb-png-itxt.png",
        ] {
            let bytes = fixture(name);
            let limits = LimitsConfig {
                max_metadata_bytes: 64 * 1024,
                ..LimitsConfig::default()
            };
            assert_eq!(probe(&bytes, &limits).unwrap(), (10, 10), "{name}");
            let decoded = decode(&bytes, &limits).unwrap();
            assert_eq!(decoded.image.width(), 10, "{name}");
        }
    }
}
