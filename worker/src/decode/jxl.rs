//! JPEG XL through jxl-oxide, the pure-Rust decoder (its `image` integration): the header is
//! read first and checked against the pixel limit and against the memory its rendering takes
//! (jxl-oxide renders every channel as 32-bit floats: a file of a few kilobytes can declare
//! more than `limits.max_alloc_bytes` of them, refused as 413 before anything is rendered).
//! A file must hold its whole first frame: jxl-oxide would render a cut one as far as it
//! goes, a grey and blocky picture, so a cut file is a decode error as in every other
//! format. Then the first frame is rendered under the allocation limit. jxl-oxide applies
//! the codestream's orientation itself, so the EXIF box is never read (its orientation would
//! turn the image a second time). 8- and 16-bit, float, grey and alpha images come out as
//! `image` buffers of the matching type.

use std::io::Cursor;

use common::config::LimitsConfig;
use common::media::MediaType;
use image::{DynamicImage, ImageDecoder};
use jxl_oxide::JxlImage;
use jxl_oxide::integration::JxlDecoder;

use super::{Decoded, check_alloc, check_pixels, decode_error, map_error};
use crate::error::ThumbnailError;

/// Bytes per channel of each pixel jxl-oxide renders (32-bit floats).
const RENDER_BYTES: u64 = 4;

/// A decoder past the header, whose upright size has passed the pixel limit and whose
/// rendering fits the allocation limit.
fn open<'a>(
    bytes: &'a [u8],
    limits: &LimitsConfig,
) -> Result<JxlDecoder<Cursor<&'a [u8]>>, ThumbnailError> {
    let decoder =
        JxlDecoder::new(Cursor::new(bytes)).map_err(|error| map_error(error, MediaType::Jxl))?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits.max_pixels)?;
    // Colour is rendered in three channels whatever comes out (XYB is three), and alpha
    // beside them: grey images are counted as colour, on the safe side.
    let channels = u64::from(decoder.color_type().channel_count()).max(3);
    check_alloc(
        MediaType::Jxl,
        (width, height),
        channels * RENDER_BYTES,
        limits,
    )?;
    Ok(decoder)
}

/// Refuses a file that ends before its first frame does.
fn check_whole(bytes: &[u8]) -> Result<(), ThumbnailError> {
    let image = JxlImage::builder()
        .read(Cursor::new(bytes))
        .map_err(|error| decode_error(MediaType::Jxl, error))?;
    if image.num_loaded_keyframes() == 0 {
        return Err(decode_error(
            MediaType::Jxl,
            "the file ends before its first frame is complete",
        ));
    }
    Ok(())
}

/// The upright size, from the header.
pub fn probe(bytes: &[u8], limits: &LimitsConfig) -> Result<(u32, u32), ThumbnailError> {
    Ok(open(bytes, limits)?.dimensions())
}

/// Decodes the first frame, upright.
pub fn decode(bytes: &[u8], limits: &LimitsConfig) -> Result<Decoded, ThumbnailError> {
    let mut decoder = open(bytes, limits)?;
    check_whole(bytes)?;
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc_bytes);
    decoder
        .set_limits(image_limits)
        .map_err(|error| map_error(error, MediaType::Jxl))?;
    // The profile of the pixels jxl-oxide renders: the file's own colour encoding (an XYB
    // file renders to it), as ICC.
    let colour = match decoder.icc_profile() {
        Ok(Some(icc)) => crate::colour::Description::Icc(icc),
        _ => crate::colour::Description::Unstated,
    };
    let image =
        DynamicImage::from_decoder(decoder).map_err(|error| map_error(error, MediaType::Jxl))?;
    Ok(Decoded::whole(image).described(colour))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::fixture;

    #[test]
    fn the_codestream_orientation_is_applied_once() {
        // A JPEG with EXIF orientation 6, transcoded: stored 400×300, upright 300×400, and
        // the EXIF box still says 6.
        let bytes = fixture("jxl-orientation-6.jxl");
        let limits = LimitsConfig::default();
        assert_eq!(probe(&bytes, &limits).unwrap(), (300, 400));
        let decoded = decode(&bytes, &limits).unwrap();
        assert_eq!((decoded.image.width(), decoded.image.height()), (300, 400));
    }

    #[test]
    fn a_bomb_is_refused_from_the_header() {
        // 10240×10240 of one colour in a few kilobytes.
        let error = decode(&fixture("bomb-jxl.jxl"), &LimitsConfig::default()).unwrap_err();
        assert!(
            matches!(error, ThumbnailError::TooManyPixels { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_cut_file_is_an_error_not_a_partial_picture() {
        let whole = fixture("jxl-lossy.jxl");
        for cut in [3_000, whole.len() / 2, whole.len() - 100] {
            let error = decode(&whole[..cut], &LimitsConfig::default()).unwrap_err();
            assert_eq!(error.code(), 422, "{cut}: {error}");
        }
        decode(&whole, &LimitsConfig::default()).unwrap();
    }

    #[test]
    fn rendering_over_the_memory_limit_is_refused_from_the_header() {
        // The bomb's 105 million pixels pass a raised pixel limit; their rendering (three
        // channels of floats, 1.26 GB) does not pass the default 1 GiB allocation limit.
        let limits = LimitsConfig {
            max_pixels: 200_000_000,
            ..LimitsConfig::default()
        };
        let error = probe(&fixture("bomb-jxl.jxl"), &limits).unwrap_err();
        assert!(
            matches!(error, ThumbnailError::OverMemoryLimit { .. }),
            "{error}"
        );
        assert_eq!(error.code(), 413);
        assert!(error.to_string().contains("1258291200 bytes"), "{error}");
    }

    #[test]
    fn bit_depths_and_alpha_come_out_as_they_are() {
        let limits = LimitsConfig::default();
        let alpha = decode(&fixture("jxl-alpha.jxl"), &limits).unwrap();
        assert!(alpha.image.color().has_alpha());
        let deep = decode(&fixture("jxl-16bit.jxl"), &limits).unwrap();
        assert_eq!(deep.image.color(), image::ColorType::Rgb16);
    }
}
