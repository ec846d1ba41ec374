//! GIF through the `gif` crate: each frame given whole, with its own palette (the frame's
//! exact colours when it has 256 or fewer, else NeuQuant's 256, as the crate quantises), and
//! one bit of alpha (a pixel under half opaque is transparent). Frames are disposed to the
//! background, so that a transparent pixel shows nothing of the frame before: what is drawn
//! is exactly each frame. A still thumbnail is a GIF of one frame.

use gif::{DisposalMethod, Repeat};
use image::RgbaImage;

use crate::error::ThumbnailError;

/// NeuQuant's sampling: 1 (best) to 30 (fastest); 10 is the crate's own balance.
const QUANTISER_SPEED: i32 = 10;

/// A GIF being written, one frame at a time.
pub struct Encoder {
    encoder: gif::Encoder<Vec<u8>>,
    size: (u16, u16),
}

impl Encoder {
    /// An encoder of `width`×`height` frames played `plays` times (0: forever). GIF counts
    /// the repeats after the first play, in its loop extension; once needs none.
    pub fn new((width, height): (u32, u32), plays: u16) -> Result<Self, ThumbnailError> {
        let side = |side: u32| {
            u16::try_from(side)
                .ok()
                .filter(|&side| side > 0)
                .ok_or_else(|| ThumbnailError::Encode("a GIF is 1 to 65535 pixels a side".into()))
        };
        let size = (side(width)?, side(height)?);
        let mut encoder = gif::Encoder::new(Vec::new(), size.0, size.1, &[]).map_err(failed)?;
        match plays {
            0 => encoder.set_repeat(Repeat::Infinite).map_err(failed)?,
            1 => {}
            plays => encoder
                .set_repeat(Repeat::Finite(plays - 1))
                .map_err(failed)?,
        }
        Ok(Self { encoder, size })
    }

    /// Adds `frame` (the encoder's size) shown for `duration_ms`, rounded to GIF's
    /// hundredths of a second.
    pub fn add(&mut self, frame: RgbaImage, duration_ms: u32) -> Result<(), ThumbnailError> {
        if frame.dimensions() != (u32::from(self.size.0), u32::from(self.size.1)) {
            return Err(ThumbnailError::Encode("a frame of the wrong size".into()));
        }
        let mut pixels = frame.into_raw();
        for pixel in pixels.chunks_exact_mut(4) {
            if pixel[3] < 128 {
                pixel.copy_from_slice(&[0, 0, 0, 0]);
            }
        }
        let mut frame =
            gif::Frame::from_rgba_speed(self.size.0, self.size.1, &mut pixels, QUANTISER_SPEED);
        frame.delay = u16::try_from(duration_ms.saturating_add(5) / 10).unwrap_or(u16::MAX);
        frame.dispose = DisposalMethod::Background;
        self.encoder.write_frame(&frame).map_err(failed)
    }

    /// The GIF's bytes.
    pub fn finish(self) -> Result<Vec<u8>, ThumbnailError> {
        self.encoder.into_inner().map_err(failed)
    }
}

/// A still GIF of `image`.
pub fn still(image: RgbaImage) -> Result<Vec<u8>, ThumbnailError> {
    let mut encoder = Encoder::new(image.dimensions(), 1)?;
    encoder.add(image, 0)?;
    encoder.finish()
}

fn failed(error: impl std::fmt::Display) -> ThumbnailError {
    ThumbnailError::Encode(format!("GIF: {error}"))
}
