//! Lossy WebP through libwebp's own encoder (the `libwebp` feature, the library already
//! linked for decoding): `WebPEncodeRGB`/`RGBA` at the variant's quality, libwebp's default
//! method (4) as `cwebp -q` uses it. Alpha is kept (libwebp compresses it losslessly). Grey
//! images are widened to RGB, which WebP's lossy format always is. A profile to embed is
//! added as an `ICCP` chunk by libwebp's mux (which writes the VP8X header it needs).

use image::DynamicImage;
use libwebp_sys::{
    WEBP_MAX_DIMENSION, WEBP_MUX_ABI_VERSION, WebPData, WebPDataClear, WebPEncodeRGB,
    WebPEncodeRGBA, WebPFree, WebPMuxAssemble, WebPMuxCreateInternal, WebPMuxDelete, WebPMuxError,
    WebPMuxSetChunk,
};

use super::Tag;
use crate::error::ThumbnailError;

/// Encodes `image` as lossy WebP at `quality` (1–100), with the profile of `tag` embedded.
pub fn encode_lossy(
    image: &DynamicImage,
    quality: u8,
    tag: Tag<'_>,
) -> Result<Vec<u8>, ThumbnailError> {
    let bytes = encode(image, quality)?;
    match tag {
        Tag::Srgb => Ok(bytes),
        Tag::Icc(icc) => with_profile(&bytes, icc),
    }
}

/// `webp` with an `ICCP` chunk holding `icc`, through libwebp's mux.
fn with_profile(webp: &[u8], icc: &[u8]) -> Result<Vec<u8>, ThumbnailError> {
    let failed = || ThumbnailError::Encode("libwebp could not embed the colour profile".into());
    let image = WebPData {
        bytes: webp.as_ptr(),
        size: webp.len(),
    };
    let profile = WebPData {
        bytes: icc.as_ptr(),
        size: icc.len(),
    };
    // SAFETY: the mux copies both inputs (copy_data = 1), so they need only live across the
    // calls; the assembled data is libwebp's, copied out and then freed with WebPDataClear;
    // the mux is deleted on every path.
    unsafe {
        let mux = WebPMuxCreateInternal(&image, 1, WEBP_MUX_ABI_VERSION as i32);
        if mux.is_null() {
            return Err(failed());
        }
        let mut assembled = WebPData {
            bytes: std::ptr::null(),
            size: 0,
        };
        let ok = WebPMuxSetChunk(mux, c"ICCP".as_ptr(), &profile, 1) == WebPMuxError::WEBP_MUX_OK
            && WebPMuxAssemble(mux, &mut assembled) == WebPMuxError::WEBP_MUX_OK;
        WebPMuxDelete(mux);
        let out = (ok && !assembled.bytes.is_null())
            .then(|| std::slice::from_raw_parts(assembled.bytes, assembled.size).to_vec());
        WebPDataClear(&mut assembled);
        out.ok_or_else(failed)
    }
}

/// Lossy WebP at `quality`, through WebPEncodeRGB(A).
fn encode(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, ThumbnailError> {
    let (width, height) = (image.width(), image.height());
    if width.max(height) > WEBP_MAX_DIMENSION || width == 0 || height == 0 {
        return Err(ThumbnailError::Encode(format!(
            "a WebP image is 1 to {WEBP_MAX_DIMENSION} pixels a side"
        )));
    }
    let alpha = image.color().has_alpha();
    let pixels = match image {
        DynamicImage::ImageRgb8(rgb) => std::borrow::Cow::Borrowed(rgb.as_raw()),
        DynamicImage::ImageRgba8(rgba) => std::borrow::Cow::Borrowed(rgba.as_raw()),
        other if alpha => std::borrow::Cow::Owned(other.to_rgba8().into_raw()),
        other => std::borrow::Cow::Owned(other.to_rgb8().into_raw()),
    };
    let channels = if alpha { 4 } else { 3 };
    // Both sides are at most WEBP_MAX_DIMENSION, so these fit in a C int.
    let (w, h) = (width as i32, height as i32);
    let stride = w * channels;
    let mut output: *mut u8 = std::ptr::null_mut();
    // SAFETY: `pixels` holds `height` rows of `stride` bytes, and lives across the call;
    // libwebp writes a buffer it allocated to `output`, of the returned size, which is copied
    // then given back with WebPFree.
    let bytes = unsafe {
        let size = if alpha {
            WebPEncodeRGBA(
                pixels.as_ptr(),
                w,
                h,
                stride,
                f32::from(quality),
                &mut output,
            )
        } else {
            WebPEncodeRGB(
                pixels.as_ptr(),
                w,
                h,
                stride,
                f32::from(quality),
                &mut output,
            )
        };
        let bytes = (size > 0 && !output.is_null())
            .then(|| std::slice::from_raw_parts(output, size).to_vec());
        if !output.is_null() {
            WebPFree(output.cast());
        }
        bytes
    };
    bytes.ok_or_else(|| ThumbnailError::Encode("libwebp could not encode the image".into()))
}
