//! GIF: the first frame, straight from its palette indices.
//!
//! `image` decodes a GIF frame to RGBA and composes it on an RGBA canvas. A thumbnail needs only
//! the first frame, and most GIF photographs have no transparency: their indices expand
//! straight to RGB, with a quarter less memory and no alpha premultiplication in the resizer.
//! With a transparent index, or a first frame smaller than the canvas, the result is RGBA and
//! the pixels the frame leaves uncovered are transparent, as `image` makes them.

use std::num::NonZeroU64;

use common::config::LimitsConfig;
use common::media::MediaType;
use gif::{ColorOutput, DecodeOptions, MemoryLimit};
use image::{DynamicImage, RgbImage, Rgba, RgbaImage};

use super::{Decoded, check_alloc, check_pixels};
use crate::error::ThumbnailError;

/// The colour an index outside the palette shows (a corrupt file): opaque black.
const MISSING: [u8; 3] = [0, 0, 0];

/// Decodes the first frame of a GIF.
pub fn decode(bytes: &[u8], limits: &LimitsConfig) -> Result<Decoded, ThumbnailError> {
    let mut options = DecodeOptions::new();
    options.set_color_output(ColorOutput::Indexed);
    options.set_memory_limit(
        NonZeroU64::new(limits.max_alloc_bytes).map_or(MemoryLimit::Unlimited, MemoryLimit::Bytes),
    );
    let mut decoder = options.read_info(bytes).map_err(decode_error)?;
    let (width, height) = (u32::from(decoder.width()), u32::from(decoder.height()));
    check_pixels(width, height, limits.max_pixels)?;
    check_alloc(MediaType::Gif, (width, height), 4, limits)?;
    let global = decoder.global_palette().map(<[u8]>::to_vec);
    let frame = decoder
        .read_next_frame()
        .map_err(decode_error)?
        .ok_or_else(|| decode_error("no image in the file"))?;
    let palette = frame
        .palette
        .as_deref()
        .or(global.as_deref())
        .ok_or_else(|| decode_error("no colour table"))?;
    let mut colours = [MISSING; 256];
    for (colour, rgb) in colours.iter_mut().zip(palette.chunks_exact(3)) {
        colour.copy_from_slice(rgb);
    }
    let covers_canvas = (frame.left, frame.top) == (0, 0)
        && (u32::from(frame.width), u32::from(frame.height)) == (width, height);

    let image = if covers_canvas && frame.transparent.is_none() {
        let mut rgb = vec![0; frame.buffer.len() * 3];
        for (pixel, &index) in rgb.chunks_exact_mut(3).zip(frame.buffer.iter()) {
            pixel.copy_from_slice(&colours[usize::from(index)]);
        }
        RgbImage::from_raw(width, height, rgb).map(DynamicImage::ImageRgb8)
    } else {
        let mut canvas = RgbaImage::new(width, height);
        let rows = frame.buffer.chunks_exact(usize::from(frame.width).max(1));
        for (y, row) in (u32::from(frame.top)..height).zip(rows) {
            for (x, &index) in (u32::from(frame.left)..width).zip(row) {
                if frame.transparent != Some(index) {
                    let [r, g, b] = colours[usize::from(index)];
                    canvas.put_pixel(x, y, Rgba([r, g, b, 255]));
                }
            }
        }
        Some(DynamicImage::ImageRgba8(canvas))
    };
    let image = image.ok_or_else(|| decode_error("the frame is shorter than its size"))?;
    Ok(Decoded {
        image,
        source_width: width,
        source_height: height,
    })
}

fn decode_error(error: impl std::fmt::Display) -> ThumbnailError {
    super::decode_error(MediaType::Gif, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::fixture;

    #[test]
    fn matches_image_on_the_first_frame() {
        let bytes = fixture("gif-animated.gif");
        let ours = decode(&bytes, &LimitsConfig::default()).unwrap().image;
        let theirs = image::load_from_memory_with_format(&bytes, image::ImageFormat::Gif).unwrap();
        assert_eq!(ours.to_rgba8(), theirs.to_rgba8());
    }

    #[test]
    fn transparency_gives_rgba() {
        // 2×1: index 0 transparent, index 1 red.
        let mut bytes = Vec::new();
        {
            let mut encoder = gif::Encoder::new(&mut bytes, 2, 1, &[0, 0, 0, 255, 0, 0]).unwrap();
            let mut frame = gif::Frame::from_indexed_pixels(2, 1, vec![0, 1], Some(0));
            frame.palette = None;
            encoder.write_frame(&frame).unwrap();
        }
        let image = decode(&bytes, &LimitsConfig::default()).unwrap().image;
        let rgba = image.as_rgba8().expect("RGBA");
        assert_eq!(rgba.get_pixel(0, 0)[3], 0);
        assert_eq!(rgba.get_pixel(1, 0).0, [255, 0, 0, 255]);
    }
}
