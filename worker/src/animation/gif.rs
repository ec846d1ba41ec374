//! GIF frames, composed as FFmpeg and libvips compose them: the canvas starts transparent;
//! each frame is drawn over it (its transparent index leaves what is there); after it is
//! shown, its disposal applies to its rectangle: kept; restored to the background colour
//! (`Background`: the global table's background entry, or transparent when the frame had a
//! transparent index or there is no global table, as the specification and those two
//! readers have it; browsers clear to transparent always); or put back as it was before the
//! frame was drawn (`Previous`). The
//! frames' LZW data is read by the `gif` crate undecoded and decoded by [`crate::decode::lzw`],
//! as for a still GIF.

use std::num::NonZeroU64;

use common::config::LimitsConfig;
use common::media::MediaType;
use gif::{ColorOutput, DecodeOptions, DisposalMethod, MemoryLimit, Repeat};
use image::{DynamicImage, RgbaImage};

use super::{Facts, Frames};
use crate::decode::gif::{colours, decode_error, indices, stored_rows};
use crate::decode::lzw;
use crate::error::ThumbnailError;

/// A GIF decoder reading frames' LZW data undecoded, under the allocation limit.
fn decoder<'a>(
    bytes: &'a [u8],
    limits: &LimitsConfig,
) -> Result<gif::Decoder<&'a [u8]>, ThumbnailError> {
    let mut options = DecodeOptions::new();
    options.set_color_output(ColorOutput::Indexed);
    options.set_memory_limit(
        NonZeroU64::new(limits.max_alloc_bytes).map_or(MemoryLimit::Unlimited, MemoryLimit::Bytes),
    );
    options.skip_frame_decoding(true);
    options.read_info(bytes).map_err(decode_error)
}

/// The canvas size, frame count and loops of a GIF, from a walk over its blocks that
/// decodes no pixel; the walk stops once there are more than `limits.max_frames` frames.
pub fn facts(bytes: &[u8], limits: &LimitsConfig) -> Result<Facts, ThumbnailError> {
    let mut decoder = decoder(bytes, limits)?;
    let size = (u32::from(decoder.width()), u32::from(decoder.height()));
    let mut frames = 0u32;
    while decoder.read_next_frame().map_err(decode_error)?.is_some() {
        frames += 1;
        if frames > limits.max_frames {
            break;
        }
    }
    let loops = match decoder.repeat() {
        Repeat::Infinite => 0,
        // The count is of repeats after the first play; none is one play.
        Repeat::Finite(repeats) => repeats.saturating_add(1),
    };
    Ok(Facts {
        size,
        frames,
        loops,
    })
}

/// A rectangle of the canvas: left, top, width, height, already clipped to it.
type Rect = (u32, u32, u32, u32);

/// The frames of a GIF, one canvas at a time.
pub struct GifFrames<'a> {
    decoder: gif::Decoder<&'a [u8]>,
    global: Option<Vec<u8>>,
    lzw: lzw::Decoder,
    canvas: DynamicImage,
    /// The colour `Background` disposal restores an opaque frame's rectangle to.
    background: [u8; 4],
    /// The last frame's rectangle and disposal, and whether it had a transparent index,
    /// applied before the next is drawn.
    disposal: Option<(Rect, DisposalMethod, bool)>,
    /// The pixels under the last frame's rectangle before it was drawn (`Previous`).
    saved: Vec<u8>,
}

impl<'a> GifFrames<'a> {
    /// The frames of `bytes`, whose canvas size [`facts`] has checked.
    pub fn new(bytes: &'a [u8], limits: &LimitsConfig) -> Result<Self, ThumbnailError> {
        let decoder = decoder(bytes, limits)?;
        let (width, height) = (u32::from(decoder.width()), u32::from(decoder.height()));
        crate::decode::check_alloc(MediaType::Gif, (width, height), 8, limits)?;
        let global = decoder.global_palette().map(<[u8]>::to_vec);
        let background = match (&global, decoder.bg_color()) {
            (Some(palette), Some(index)) => palette
                .get(index * 3..index * 3 + 3)
                .map_or([0; 4], |rgb| [rgb[0], rgb[1], rgb[2], 255]),
            _ => [0; 4],
        };
        Ok(Self {
            global,
            background,
            decoder,
            lzw: lzw::Decoder::default(),
            canvas: DynamicImage::ImageRgba8(RgbaImage::new(width, height)),
            disposal: None,
            saved: Vec::new(),
        })
    }
}

/// The part of a `width`×`height` frame at (`left`, `top`) that lies on a canvas of
/// `cw`×`ch`.
fn clip((cw, ch): (u32, u32), left: u16, top: u16, width: u16, height: u16) -> Rect {
    let (left, top) = (u32::from(left).min(cw), u32::from(top).min(ch));
    (
        left,
        top,
        u32::from(width).min(cw - left),
        u32::from(height).min(ch - top),
    )
}

/// The byte range of row `y` of `rect` in a canvas `stride` bytes wide.
fn row(rect: Rect, y: u32, stride: usize) -> std::ops::Range<usize> {
    let (left, top, width, _) = rect;
    let start = (top + y) as usize * stride + left as usize * 4;
    start..start + width as usize * 4
}

impl Frames for GifFrames<'_> {
    fn next(&mut self) -> Result<Option<(&DynamicImage, u32)>, ThumbnailError> {
        let DynamicImage::ImageRgba8(canvas) = &mut self.canvas else {
            unreachable!("the canvas is RGBA");
        };
        let stride = canvas.width() as usize * 4;
        let dimensions = canvas.dimensions();
        let canvas: &mut [u8] = canvas;
        if let Some((rect, disposal, transparent)) = self.disposal.take() {
            match disposal {
                DisposalMethod::Background => {
                    let colour = if transparent { [0; 4] } else { self.background };
                    for y in 0..rect.3 {
                        for pixel in canvas[row(rect, y, stride)].chunks_exact_mut(4) {
                            pixel.copy_from_slice(&colour);
                        }
                    }
                }
                DisposalMethod::Previous => {
                    let width = rect.2 as usize * 4;
                    for (y, saved) in (0..rect.3).zip(self.saved.chunks_exact(width.max(1))) {
                        canvas[row(rect, y, stride)].copy_from_slice(saved);
                    }
                }
                _ => {}
            }
        }
        let Some(frame) = self.decoder.read_next_frame().map_err(decode_error)? else {
            return Ok(None);
        };
        let palette = frame
            .palette
            .as_deref()
            .or(self.global.as_deref())
            .ok_or_else(|| decode_error("no colour table"))?;
        let colours = colours(palette);
        let rect = clip(dimensions, frame.left, frame.top, frame.width, frame.height);
        if frame.dispose == DisposalMethod::Previous {
            self.saved.clear();
            for y in 0..rect.3 {
                self.saved.extend_from_slice(&canvas[row(rect, y, stride)]);
            }
        }
        let frame_width = usize::from(frame.width).max(1);
        let indices = indices(&mut self.lzw, frame)?;
        let rows = stored_rows(usize::from(frame.height), frame.interlaced);
        for (stored, frame_y) in indices.chunks_exact(frame_width).zip(rows) {
            let Ok(y) = u32::try_from(frame_y) else {
                continue;
            };
            if y >= rect.3 {
                continue;
            }
            let out = &mut canvas[row(rect, y, stride)];
            for (pixel, &index) in out.chunks_exact_mut(4).zip(stored) {
                if frame.transparent != Some(index) {
                    let [r, g, b] = colours[usize::from(index)];
                    pixel.copy_from_slice(&[r, g, b, 255]);
                }
            }
        }
        self.disposal = Some((rect, frame.dispose, frame.transparent.is_some()));
        // GIF counts in hundredths of a second.
        let duration = u32::from(frame.delay) * 10;
        Ok(Some((&self.canvas, duration)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::animation::tests::{compare, reference};
    use crate::decode::fixture;

    #[test]
    fn frames_are_composed_as_ffmpeg_composes_them() {
        let bytes = fixture("anim-disposal.gif");
        let mut frames = GifFrames::new(&bytes, &LimitsConfig::default()).unwrap();
        compare(&mut frames, &reference("anim-disposal"), 0, 0.0);
    }

    #[test]
    fn frames_keep_their_delays() {
        let bytes = fixture("anim-disposal.gif");
        let mut frames = GifFrames::new(&bytes, &LimitsConfig::default()).unwrap();
        let mut delays = Vec::new();
        while let Some((_, delay)) = frames.next().unwrap() {
            delays.push(delay);
        }
        assert_eq!(delays, [100, 200, 50, 250, 120, 0, 80, 150, 200]);
    }

    #[test]
    fn a_frame_outside_the_canvas_is_clipped() {
        let mut bytes = Vec::new();
        {
            let palette = [0, 0, 0, 255, 0, 0];
            let mut encoder = gif::Encoder::new(&mut bytes, 4, 4, &palette).unwrap();
            for (left, top) in [(0, 0), (3, 3), (60_000, 2)] {
                let mut frame = gif::Frame::from_indexed_pixels(5, 5, vec![1; 25], None);
                (frame.left, frame.top) = (left, top);
                encoder.write_frame(&frame).unwrap();
            }
        }
        let mut frames = GifFrames::new(&bytes, &LimitsConfig::default()).unwrap();
        let mut count = 0;
        while let Some((frame, _)) = frames.next().unwrap() {
            assert_eq!((frame.width(), frame.height()), (4, 4));
            count += 1;
        }
        assert_eq!(count, 3);
    }
}
