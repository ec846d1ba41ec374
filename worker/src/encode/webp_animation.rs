//! Animated WebP through libwebp's `WebPAnimEncoder` (the `libwebp` feature), as `img2webp`
//! and `gif2webp` write them: each frame is given whole, at its start time, and the encoder
//! finds the rectangle that changed, chooses blending and disposal for it, and keeps only
//! the compressed frames. The thumbnail's frames are lossy at the variant's quality, or
//! lossless.

use std::ffi::c_int;

use libwebp_sys::{
    WEBP_MAX_DIMENSION, WEBP_MUX_ABI_VERSION, WebPAnimEncoder, WebPAnimEncoderAdd,
    WebPAnimEncoderAssemble, WebPAnimEncoderDelete, WebPAnimEncoderNewInternal,
    WebPAnimEncoderOptions, WebPAnimEncoderOptionsInitInternal, WebPConfig, WebPData,
    WebPDataClear, WebPPicture, WebPPictureFree, WebPPictureImportRGBA, WebPValidateConfig,
};

use crate::error::ThumbnailError;

/// An animated WebP being written, one frame at a time.
pub struct Encoder {
    encoder: *mut WebPAnimEncoder,
    config: WebPConfig,
    size: (u32, u32),
    /// When the next frame starts, in milliseconds.
    elapsed: c_int,
}

// SAFETY: the encoder is libwebp's own state, touched only through `&mut self`; nothing in it
// is tied to the thread that made it.
unsafe impl Send for Encoder {}

impl Encoder {
    /// An encoder of `width`×`height` frames, lossy at `quality` or lossless, played
    /// `loops` times (0: forever).
    pub fn new(
        (width, height): (u32, u32),
        quality: u8,
        lossless: bool,
        loops: u16,
    ) -> Result<Self, ThumbnailError> {
        if width.max(height) > WEBP_MAX_DIMENSION || width == 0 || height == 0 {
            return Err(ThumbnailError::Encode(format!(
                "a WebP image is 1 to {WEBP_MAX_DIMENSION} pixels a side"
            )));
        }
        let mut config = WebPConfig::new().map_err(|()| failed("its configuration"))?;
        config.quality = f32::from(quality);
        config.lossless = c_int::from(lossless);
        // SAFETY: `config` is initialised; libwebp only reads it.
        if unsafe { WebPValidateConfig(&config) } == 0 {
            return Err(failed("its configuration"));
        }
        // SAFETY: `options` is plain data that the init call fills in; the encoder copies the
        // options, and is deleted in `Drop`.
        let encoder = unsafe {
            let mut options: WebPAnimEncoderOptions = std::mem::zeroed();
            if WebPAnimEncoderOptionsInitInternal(&mut options, WEBP_MUX_ABI_VERSION as c_int) == 0
            {
                return Err(failed("its options"));
            }
            options.anim_params.loop_count = c_int::from(loops);
            // Fully transparent, as the frames' own background is.
            options.anim_params.bgcolor = 0;
            WebPAnimEncoderNewInternal(
                width as c_int,
                height as c_int,
                &options,
                WEBP_MUX_ABI_VERSION as c_int,
            )
        };
        if encoder.is_null() {
            return Err(failed("the encoder"));
        }
        Ok(Self {
            encoder,
            config,
            size: (width, height),
            elapsed: 0,
        })
    }

    /// Adds a frame of RGBA pixels (the encoder's size) shown for `duration_ms`.
    pub fn add(&mut self, rgba: &[u8], duration_ms: u32) -> Result<(), ThumbnailError> {
        let (width, height) = self.size;
        if rgba.len() != width as usize * height as usize * 4 {
            return Err(ThumbnailError::Encode("a frame of the wrong size".into()));
        }
        let mut picture = WebPPicture::new().map_err(|()| failed("a picture"))?;
        picture.use_argb = 1;
        picture.width = width as c_int;
        picture.height = height as c_int;
        // SAFETY: `rgba` holds `height` rows of `width × 4` bytes and lives across the import,
        // which copies it into the picture's own buffer; the picture is freed on every path.
        let added = unsafe {
            let imported = WebPPictureImportRGBA(&mut picture, rgba.as_ptr(), width as c_int * 4);
            let added = imported != 0
                && WebPAnimEncoderAdd(self.encoder, &mut picture, self.elapsed, &self.config) != 0;
            WebPPictureFree(&mut picture);
            added
        };
        if !added {
            return Err(failed("a frame"));
        }
        let duration = c_int::try_from(duration_ms).unwrap_or(c_int::MAX);
        self.elapsed = self.elapsed.saturating_add(duration);
        Ok(())
    }

    /// The animation's bytes.
    pub fn finish(self) -> Result<Vec<u8>, ThumbnailError> {
        let mut data = WebPData::default();
        // SAFETY: a null frame marks the end (its timestamp the last frame's end); the
        // assembled data is libwebp's, copied out and then freed with WebPDataClear.
        unsafe {
            let ended = WebPAnimEncoderAdd(
                self.encoder,
                std::ptr::null_mut(),
                self.elapsed,
                std::ptr::null(),
            ) != 0;
            let assembled = ended && WebPAnimEncoderAssemble(self.encoder, &mut data) != 0;
            let out = (assembled && !data.bytes.is_null())
                .then(|| std::slice::from_raw_parts(data.bytes, data.size).to_vec());
            WebPDataClear(&mut data);
            out.ok_or_else(|| failed("the animation"))
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: the encoder was made by WebPAnimEncoderNew and is deleted only here.
        unsafe { WebPAnimEncoderDelete(self.encoder) };
    }
}

fn failed(what: &str) -> ThumbnailError {
    ThumbnailError::Encode(format!("libwebp could not make {what} of an animated WebP"))
}
