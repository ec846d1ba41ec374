//! WebP through libwebp (the `libwebp` feature), scaled while decoding.
//!
//! libwebp can run its area-averaging rescaler on each row as it leaves the VP8/VP8L decoder,
//! so the full-size picture never exists: the image comes out at twice the thumbnail's size,
//! for the resizer to finish. The header (dimensions, pixel limit, EXIF orientation) is read by
//! `image`'s WebP decoder first, without decoding pixels. Animated WebPs take `image`'s path,
//! which decodes their first frame.

use std::ffi::c_int;

use common::config::LimitsConfig;
use common::media::MediaType;
use image::{DynamicImage, ImageDecoder, RgbImage, RgbaImage};
use libwebp_sys::{
    VP8StatusCode, WEBP_CSP_MODE, WebPDecode, WebPDecoderConfig, WebPFreeDecBuffer, WebPGetFeatures,
};

use super::{Decoded, Target, check_alloc, decode_full, open, orientation, stored_target, upright};
use crate::colour::Description;
use crate::error::ThumbnailError;

/// Decodes a WebP scaled to about twice its `target` size, upright.
pub fn decode(
    bytes: &[u8],
    limits: &LimitsConfig,
    target: Target<'_>,
) -> Result<Decoded, ThumbnailError> {
    let mut header = open(bytes, MediaType::Webp, limits)?;
    let orientation = orientation(&mut header);
    let (width, height) = header.dimensions();
    drop(header);

    let mut config = WebPDecoderConfig::new().map_err(|()| decode_error("libwebp: bad ABI"))?;
    // SAFETY: `bytes` is a live slice of `bytes.len()` bytes; `config.input` is a valid place.
    let status = unsafe { WebPGetFeatures(bytes.as_ptr(), bytes.len(), &mut config.input) };
    check(status)?;
    if config.input.has_animation != 0 {
        return decode_full(bytes, MediaType::Webp, limits);
    }

    let (source_width, source_height) = upright(width, height, orientation);
    let (target_width, target_height) = stored_target(width, height, source_width != width, target);
    let (out_width, out_height) = if width >= 2 * target_width && height >= 2 * target_height {
        (2 * target_width, 2 * target_height)
    } else {
        (width, height)
    };
    let alpha = config.input.has_alpha != 0;
    let channels: u32 = if alpha { 4 } else { 3 };
    let stride = out_width * channels;
    check_alloc(
        MediaType::Webp,
        (out_width, out_height),
        u64::from(channels),
        limits,
    )?;
    let mut pixels = vec![0u8; stride as usize * out_height as usize];

    // libwebp's own second thread finishes rows (reconstruction, rescaling, colour conversion)
    // while the first parses the next ones, as libvips has it do.
    config.options.use_threads = 1;
    if (out_width, out_height) != (width, height) {
        // At half size or less, the in-loop deblocking filter and the smooth chroma upsampling
        // change nothing the rescaler's averaging leaves visible: skip both.
        config.options.bypass_filtering = 1;
        config.options.no_fancy_upsampling = 1;
        config.options.use_scaling = 1;
        config.options.scaled_width = to_c(out_width)?;
        config.options.scaled_height = to_c(out_height)?;
    }
    config.output.colorspace = if alpha {
        WEBP_CSP_MODE::MODE_RGBA
    } else {
        WEBP_CSP_MODE::MODE_RGB
    };
    config.output.is_external_memory = 1;
    config.output.u.RGBA.rgba = pixels.as_mut_ptr();
    config.output.u.RGBA.stride = to_c(stride)?;
    config.output.u.RGBA.size = pixels.len();
    // SAFETY: `bytes` is live for the call; the output buffer points at `pixels`, which holds
    // `stride × out_height` bytes and outlives the call; libwebp writes only inside it.
    let status = unsafe { WebPDecode(bytes.as_ptr(), bytes.len(), &mut config) };
    // SAFETY: frees only what libwebp allocated itself (nothing, with external memory).
    unsafe { WebPFreeDecBuffer(&mut config.output) };
    check(status)?;

    let image = if alpha {
        RgbaImage::from_raw(out_width, out_height, pixels).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(out_width, out_height, pixels).map(DynamicImage::ImageRgb8)
    };
    let mut image = image.ok_or_else(|| decode_error("short pixel buffer"))?;
    image.apply_orientation(orientation);
    Ok(Decoded {
        image,
        source_width,
        source_height,
        colour: super::metadata::webp_chunk(bytes, *b"ICCP")
            .map_or(Description::Unstated, |icc| Description::Icc(icc.to_vec())),
    })
}

fn to_c(value: u32) -> Result<c_int, ThumbnailError> {
    c_int::try_from(value).map_err(|_| decode_error("dimension out of range"))
}

fn check(status: VP8StatusCode) -> Result<(), ThumbnailError> {
    match status {
        VP8StatusCode::VP8_STATUS_OK => Ok(()),
        VP8StatusCode::VP8_STATUS_NOT_ENOUGH_DATA => Err(decode_error("the file is truncated")),
        VP8StatusCode::VP8_STATUS_OUT_OF_MEMORY => Err(ThumbnailError::OverMemoryLimit {
            media_type: MediaType::Webp.as_str(),
            detail: "libwebp ran out of memory".to_owned(),
        }),
        other => Err(decode_error(format!("libwebp: {other:?}"))),
    }
}

fn decode_error(error: impl std::fmt::Display) -> ThumbnailError {
    super::decode_error(MediaType::Webp, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::fixture;

    #[test]
    fn scales_to_twice_the_thumbnail_while_decoding() {
        let limits = LimitsConfig::default();
        let lossy = decode(
            &fixture("webp-lossy.webp"),
            &limits,
            &crate::decode::fit_100,
        )
        .unwrap();
        assert_eq!((lossy.source_width, lossy.source_height), (600, 375));
        assert_eq!((lossy.image.width(), lossy.image.height()), (200, 126));
        assert!(matches!(lossy.image, DynamicImage::ImageRgb8(_)));
        let alpha = decode(
            &fixture("webp-alpha.webp"),
            &limits,
            &crate::decode::fit_100,
        )
        .unwrap();
        assert!(matches!(alpha.image, DynamicImage::ImageRgba8(_)));
    }

    #[test]
    fn truncated_is_a_decode_error() {
        let bytes = fixture("webp-lossy.webp");
        let error = decode(
            &bytes[..bytes.len() / 2],
            &LimitsConfig::default(),
            &crate::decode::fit_100,
        )
        .unwrap_err();
        assert_eq!(error.code(), 422, "{error}");
    }
}
