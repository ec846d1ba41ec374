//! GIF through the `gif` crate: each frame given whole, with its own palette (the frame's
//! exact colours when it has 255 or fewer, else NeuQuant's 255, through `color_quant`, the
//! quantiser the `gif` and `image` crates use), and one bit of alpha (a pixel under half
//! opaque is transparent). Every frame is disposed to the background and declares a
//! transparent index, the palette's last entry, even when no pixel uses it: readers that
//! restore an opaque frame's background to the background colour (FFmpeg, libvips, as the
//! specification says) then clear it to transparent as browsers do, so a transparent pixel
//! of the next frame shows nothing of the frame before, in every reader. A still thumbnail
//! is a GIF of one frame.

use std::collections::HashMap;

use color_quant::NeuQuant;
use gif::{DisposalMethod, Repeat};
use image::RgbaImage;

use crate::error::ThumbnailError;

/// NeuQuant's sampling: 1 (best) to 30 (fastest); 10 is the `gif` crate's own balance.
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
        let (palette, indices, transparent) = quantise(&frame.into_raw());
        let mut frame = gif::Frame {
            width: self.size.0,
            height: self.size.1,
            buffer: indices.into(),
            palette: Some(palette),
            transparent: Some(transparent),
            ..gif::Frame::default()
        };
        frame.delay = u16::try_from(duration_ms.saturating_add(5) / 10).unwrap_or(u16::MAX);
        frame.dispose = DisposalMethod::Background;
        self.encoder.write_frame(&frame).map_err(failed)
    }

    /// The GIF's bytes.
    pub fn finish(self) -> Result<Vec<u8>, ThumbnailError> {
        self.encoder.into_inner().map_err(failed)
    }
}

/// A frame's palette (RGB), its pixels' indices, and the transparent index (after the
/// colours): the exact colours of its opaque pixels when they are 255 or fewer, else
/// NeuQuant's 255 trained on them.
fn quantise(rgba: &[u8]) -> (Vec<u8>, Vec<u8>, u8) {
    let opaque = |pixel: &[u8]| pixel[3] >= 128;
    let mut exact: HashMap<[u8; 3], u8> = HashMap::new();
    let mut palette = Vec::new();
    let mut overflowed = false;
    for pixel in rgba.chunks_exact(4).filter(|p| opaque(p)) {
        let rgb = [pixel[0], pixel[1], pixel[2]];
        if !exact.contains_key(&rgb) {
            if exact.len() == 255 {
                overflowed = true;
                break;
            }
            exact.insert(rgb, exact.len() as u8);
            palette.extend_from_slice(&rgb);
        }
    }
    if !overflowed {
        let transparent = exact.len() as u8;
        let indices = rgba
            .chunks_exact(4)
            .map(|p| {
                if opaque(p) {
                    exact[&[p[0], p[1], p[2]]]
                } else {
                    transparent
                }
            })
            .collect();
        palette.extend_from_slice(&[0, 0, 0]);
        return (palette, indices, transparent);
    }
    let samples: Vec<u8> = rgba
        .chunks_exact(4)
        .filter(|p| opaque(p))
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    let quantiser = NeuQuant::new(QUANTISER_SPEED, 255, &samples);
    let indices = rgba
        .chunks_exact(4)
        .map(|p| {
            if opaque(p) {
                quantiser.index_of(&[p[0], p[1], p[2], 255]) as u8
            } else {
                255
            }
        })
        .collect();
    let mut palette = quantiser.color_map_rgb();
    palette.extend_from_slice(&[0, 0, 0]);
    (palette, indices, 255)
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
