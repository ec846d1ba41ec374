//! Animated WebP frames. The facts come from the container's chunk headers (`image-webp`
//! reads them without decoding a frame). The frames are composed by libwebp's
//! `WebPAnimDecoder` with the `libwebp` feature, the reference composition (blending,
//! disposal to transparent) that `anim_dump` and browsers use; without it, by `image-webp`,
//! its background set to transparent as libwebp's is.

use std::io::Cursor;

use common::config::LimitsConfig;
use common::media::MediaType;
use image_webp::{LoopCount, WebPDecoder};

use super::{Facts, Frames};
use crate::error::ThumbnailError;

/// The canvas size, frame count and loops of a WebP, from its chunk headers.
pub fn facts(bytes: &[u8]) -> Result<Facts, ThumbnailError> {
    let decoder = WebPDecoder::new(Cursor::new(bytes)).map_err(decode_error)?;
    let frames = if decoder.is_animated() {
        decoder.num_frames()
    } else {
        1
    };
    let loops = match decoder.loop_count() {
        LoopCount::Forever => 0,
        LoopCount::Times(times) => times.get(),
    };
    Ok(Facts {
        size: decoder.dimensions(),
        frames,
        loops,
    })
}

/// The frames of an animated WebP, whose facts have been checked.
pub fn frames<'a>(
    bytes: &'a [u8],
    limits: &LimitsConfig,
) -> Result<Box<dyn Frames + 'a>, ThumbnailError> {
    let (width, height) = facts(bytes)?.size;
    // The canvas, the frame given out, and libwebp's copy of the previous canvas.
    crate::decode::check_alloc(MediaType::Webp, (width, height), 12, limits)?;
    #[cfg(feature = "libwebp")]
    return Ok(Box::new(libwebp::LibwebpFrames::new(bytes)?));
    #[cfg(not(feature = "libwebp"))]
    return Ok(Box::new(pure::PureFrames::new(bytes)?));
}

fn decode_error(error: impl std::fmt::Display) -> ThumbnailError {
    crate::decode::decode_error(MediaType::Webp, error)
}

#[cfg(feature = "libwebp")]
mod libwebp {
    use std::ffi::c_int;
    use std::marker::PhantomData;

    use image::{DynamicImage, RgbaImage};
    use libwebp_sys::{
        WEBP_CSP_MODE, WebPAnimDecoder, WebPAnimDecoderDelete, WebPAnimDecoderGetInfo,
        WebPAnimDecoderGetNext, WebPAnimDecoderHasMoreFrames, WebPAnimDecoderNew,
        WebPAnimDecoderOptions, WebPAnimDecoderOptionsInit, WebPAnimInfo, WebPData,
    };

    use super::{Frames, decode_error};
    use crate::error::ThumbnailError;

    /// libwebp's animation decoder over borrowed bytes.
    pub struct LibwebpFrames<'a> {
        decoder: *mut WebPAnimDecoder,
        canvas: DynamicImage,
        /// When the last frame ended, in milliseconds.
        ended: c_int,
        bytes: PhantomData<&'a [u8]>,
    }

    impl<'a> LibwebpFrames<'a> {
        pub fn new(bytes: &'a [u8]) -> Result<Self, ThumbnailError> {
            let data = WebPData {
                bytes: bytes.as_ptr(),
                size: bytes.len(),
            };
            let mut info = WebPAnimInfo::default();
            // SAFETY: the options are plain data the init call fills in; the decoder reads
            // `bytes` (borrowed for 'a, which `PhantomData` ties it to) and is deleted in
            // `Drop`; `info` is written by GetInfo.
            let decoder = unsafe {
                let mut options: WebPAnimDecoderOptions = std::mem::zeroed();
                if WebPAnimDecoderOptionsInit(&mut options) == 0 {
                    return Err(decode_error("libwebp: bad ABI"));
                }
                options.color_mode = WEBP_CSP_MODE::MODE_RGBA;
                options.use_threads = 0;
                let decoder = WebPAnimDecoderNew(&data, &options);
                if decoder.is_null() {
                    return Err(decode_error("libwebp cannot read the animation"));
                }
                if WebPAnimDecoderGetInfo(decoder, &mut info) == 0 {
                    WebPAnimDecoderDelete(decoder);
                    return Err(decode_error("libwebp cannot read the animation"));
                }
                decoder
            };
            Ok(Self {
                decoder,
                canvas: DynamicImage::ImageRgba8(RgbaImage::new(
                    info.canvas_width,
                    info.canvas_height,
                )),
                ended: 0,
                bytes: PhantomData,
            })
        }
    }

    impl Frames for LibwebpFrames<'_> {
        fn next(&mut self) -> Result<Option<(&DynamicImage, u32)>, ThumbnailError> {
            // SAFETY: the decoder is live; GetNext points `buffer` at its own canvas of
            // width × height × 4 bytes, valid until the next call, copied out at once.
            let timestamp = unsafe {
                if WebPAnimDecoderHasMoreFrames(self.decoder) == 0 {
                    return Ok(None);
                }
                let mut buffer: *mut u8 = std::ptr::null_mut();
                let mut timestamp: c_int = 0;
                if WebPAnimDecoderGetNext(self.decoder, &mut buffer, &mut timestamp) == 0
                    || buffer.is_null()
                {
                    return Err(decode_error("libwebp cannot decode a frame"));
                }
                let DynamicImage::ImageRgba8(canvas) = &mut self.canvas else {
                    unreachable!("the canvas is RGBA");
                };
                let len = canvas.as_raw().len();
                canvas.copy_from_slice(std::slice::from_raw_parts(buffer, len));
                timestamp
            };
            let duration = u32::try_from(timestamp - self.ended).unwrap_or(0);
            self.ended = timestamp;
            Ok(Some((&self.canvas, duration)))
        }
    }

    impl Drop for LibwebpFrames<'_> {
        fn drop(&mut self) {
            // SAFETY: made by WebPAnimDecoderNew, deleted only here.
            unsafe { WebPAnimDecoderDelete(self.decoder) };
        }
    }
}

#[cfg(not(feature = "libwebp"))]
mod pure {
    use std::io::Cursor;

    use image::{DynamicImage, RgbImage, RgbaImage};
    use image_webp::WebPDecoder;

    use super::{Frames, decode_error};
    use crate::error::ThumbnailError;

    /// image-webp's animation decoder.
    pub struct PureFrames<'a> {
        decoder: WebPDecoder<Cursor<&'a [u8]>>,
        canvas: DynamicImage,
    }

    impl<'a> PureFrames<'a> {
        pub fn new(bytes: &'a [u8]) -> Result<Self, ThumbnailError> {
            let mut decoder = WebPDecoder::new(Cursor::new(bytes)).map_err(decode_error)?;
            // Disposed frames are cleared to transparent, as libwebp and browsers do.
            decoder
                .set_background_color([0, 0, 0, 0])
                .map_err(decode_error)?;
            let (width, height) = decoder.dimensions();
            let canvas = if decoder.has_alpha() {
                DynamicImage::ImageRgba8(RgbaImage::new(width, height))
            } else {
                DynamicImage::ImageRgb8(RgbImage::new(width, height))
            };
            Ok(Self { decoder, canvas })
        }
    }

    impl Frames for PureFrames<'_> {
        fn next(&mut self) -> Result<Option<(&DynamicImage, u32)>, ThumbnailError> {
            let buffer = match &mut self.canvas {
                DynamicImage::ImageRgba8(canvas) => &mut **canvas,
                DynamicImage::ImageRgb8(canvas) => &mut **canvas,
                _ => unreachable!("the canvas is RGB or RGBA"),
            };
            match self.decoder.read_frame(buffer) {
                Ok(duration) => Ok(Some((&self.canvas, duration))),
                Err(image_webp::DecodingError::NoMoreFrames) => Ok(None),
                Err(error) => Err(decode_error(error)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::animation::tests::{compare, reference};
    use crate::decode::fixture;

    #[test]
    fn frames_are_composed_as_libwebp_composes_them() {
        // With libwebp, its own decoder: exactly. Without, image-webp: its VP8 upsampling
        // and blending round differently.
        let (lossy, lossless) = if cfg!(feature = "libwebp") {
            ((0, 0.0), (0, 0.0))
        } else {
            ((24, 1.5), (2, 0.2))
        };
        for (name, (tolerance, mean)) in [("anim-photo", lossy), ("anim-alpha", lossless)] {
            let bytes = fixture(&format!("{name}.webp"));
            let mut frames = frames(&bytes, &LimitsConfig::default()).unwrap();
            compare(&mut *frames, &reference(name), tolerance, mean);
        }
    }

    #[test]
    fn frames_keep_their_durations() {
        let bytes = fixture("anim-photo.webp");
        let mut frames = frames(&bytes, &LimitsConfig::default()).unwrap();
        let mut durations = Vec::new();
        while let Some((_, duration)) = frames.next().unwrap() {
            durations.push(duration);
        }
        assert_eq!(durations, [60, 80, 100, 60, 80, 100, 60, 80]);
    }
}
