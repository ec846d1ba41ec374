//! GIF: the first frame, straight from its palette indices.
//!
//! The `gif` crate reads the file's blocks and hands over the first frame's LZW data
//! undecoded; [`super::lzw`] decodes it, about twice as fast as the crate's own decoder. A
//! thumbnail needs only the first frame, and most GIF photographs have no transparency: their
//! indices expand straight to RGB, with a quarter less memory and no alpha premultiplication
//! in the resizer. An interlaced frame's rows are put in order as they expand. With a
//! transparent index, or a first frame smaller than the canvas, the result is RGBA and the
//! pixels the frame leaves uncovered are transparent, as `image` makes them.

use std::num::NonZeroU64;

use common::config::LimitsConfig;
use common::media::MediaType;
use gif::{ColorOutput, DecodeOptions, MemoryLimit};
use image::{DynamicImage, RgbImage, Rgba, RgbaImage};

use super::lzw::{self, Dialect};
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
    options.skip_frame_decoding(true);
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
    let colours = colours(palette);
    // The frame may declare more pixels than the canvas: its indices are bounded as well.
    check_pixels(frame.width.into(), frame.height.into(), limits.max_pixels)?;
    check_alloc(
        MediaType::Gif,
        (frame.width.into(), frame.height.into()),
        1,
        limits,
    )?;
    let (frame_width, frame_height) = (usize::from(frame.width), usize::from(frame.height));
    let mut lzw = lzw::Decoder::default();
    let indices = indices(&mut lzw, frame)?;
    let rows = stored_rows(frame_height, frame.interlaced);
    let covers_canvas = (frame.left, frame.top) == (0, 0)
        && (frame_width, frame_height) == (width as usize, height as usize);

    let image = if covers_canvas && frame.transparent.is_none() {
        let mut rgb = vec![0; indices.len() * 3];
        let row_bytes = frame_width * 3;
        for (row, y) in indices.chunks_exact(frame_width.max(1)).zip(rows) {
            let out = &mut rgb[y * row_bytes..(y + 1) * row_bytes];
            for (pixel, &index) in out.chunks_exact_mut(3).zip(row) {
                pixel.copy_from_slice(&colours[usize::from(index)]);
            }
        }
        RgbImage::from_raw(width, height, rgb).map(DynamicImage::ImageRgb8)
    } else {
        let mut canvas = RgbaImage::new(width, height);
        for (row, frame_y) in indices.chunks_exact(frame_width.max(1)).zip(rows) {
            let Some(y) = u32::try_from(frame_y)
                .ok()
                .map(|y| y + u32::from(frame.top))
                .filter(|&y| y < height)
            else {
                continue;
            };
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
        // GIF has no colour description but an ICC application extension, which is rare.
        colour: crate::colour::Description::Unstated,
    })
}

/// The colours of a GIF colour table, as 256 entries (those it lacks: [`MISSING`]).
pub(crate) fn colours(palette: &[u8]) -> [[u8; 3]; 256] {
    let mut colours = [MISSING; 256];
    for (colour, rgb) in colours.iter_mut().zip(palette.chunks_exact(3)) {
        colour.copy_from_slice(rgb);
    }
    colours
}

/// The palette indices of `frame` (read with its LZW data undecoded), in stored row order,
/// decoded by `lzw`; an error if they end before the frame's last pixel.
pub(crate) fn indices<'l>(
    lzw: &'l mut lzw::Decoder,
    frame: &gif::Frame<'_>,
) -> Result<&'l [u8], ThumbnailError> {
    let pixels = usize::from(frame.width) * usize::from(frame.height);
    let (&min_size, data) = frame
        .buffer
        .split_first()
        .ok_or_else(|| decode_error("the frame has no data"))?;
    let indices = lzw
        .decode(Dialect::Gif, min_size, data, pixels)
        .map_err(decode_error)?;
    if indices.len() < pixels {
        return Err(decode_error("the frame's data ends before its last pixel"));
    }
    Ok(&indices[..pixels])
}

/// The row of the frame each stored row is, in the order they are stored: top to bottom, or,
/// interlaced, every 8th row from 0, every 8th from 4, every 4th from 2, every 2nd from 1.
pub(crate) fn stored_rows(height: usize, interlaced: bool) -> Box<dyn Iterator<Item = usize>> {
    if !interlaced {
        return Box::new(0..height);
    }
    let passes = [(0, 8), (4, 8), (2, 4), (1, 2)];
    Box::new(
        passes
            .into_iter()
            .flat_map(move |(first, step)| (first..height).step_by(step)),
    )
}

pub(crate) fn decode_error(error: impl std::fmt::Display) -> ThumbnailError {
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
    fn interlaced_frames_are_put_in_order() {
        // 3×16, every row its own colour, stored interlaced: rows 0 and 8, then 4 and 12,
        // then 2, 6, 10 and 14, then the odd rows.
        let (width, height) = (3u16, 16u16);
        let palette: Vec<u8> = (0..16u8).flat_map(|i| [i * 15, 255 - i * 15, i]).collect();
        let stored = [0u8, 8, 4, 12, 2, 6, 10, 14, 1, 3, 5, 7, 9, 11, 13, 15];
        let indices: Vec<u8> = stored.iter().flat_map(|&y| [y; 3]).collect();
        let mut bytes = Vec::new();
        {
            let mut encoder = gif::Encoder::new(&mut bytes, width, height, &palette).unwrap();
            let mut frame = gif::Frame::from_indexed_pixels(width, height, indices, None);
            frame.interlaced = true;
            frame.palette = None;
            encoder.write_frame(&frame).unwrap();
        }
        let ours = decode(&bytes, &LimitsConfig::default()).unwrap().image;
        let rgb = ours.as_rgb8().expect("RGB");
        for y in 0..u32::from(height) {
            let i = y as u8;
            assert_eq!(rgb.get_pixel(2, y).0, [i * 15, 255 - i * 15, i], "row {y}");
        }
    }

    #[test]
    fn a_frame_cut_short_is_an_error() {
        let bytes = fixture("gif-animated.gif");
        let mut options = DecodeOptions::new();
        options.skip_frame_decoding(true);
        let mut decoder = options.read_info(&bytes[..]).unwrap();
        let (width, height) = (decoder.width(), decoder.height());
        let palette = decoder.global_palette().unwrap().to_vec();
        let mut frame = decoder.read_next_frame().unwrap().unwrap().clone();
        // The same frame, its LZW data ending after a few pixels.
        let mut lzw = lzw::Decoder::default();
        let first = lzw
            .decode(Dialect::Gif, frame.buffer[0], &frame.buffer[1..], 5)
            .unwrap()
            .to_vec();
        let short = weezl::encode::Encoder::new(weezl::BitOrder::Lsb, frame.buffer[0])
            .encode(&first)
            .unwrap();
        let mut buffer = vec![frame.buffer[0]];
        buffer.extend_from_slice(&short);
        frame.buffer = buffer.into();
        let mut cut = Vec::new();
        {
            let mut encoder = gif::Encoder::new(&mut cut, width, height, &palette).unwrap();
            encoder.write_lzw_pre_encoded_frame(&frame).unwrap();
        }
        let error = decode(&cut, &LimitsConfig::default()).unwrap_err();
        assert!(
            error.to_string().contains("ends before its last pixel"),
            "{error}"
        );
    }

    #[test]
    fn a_frame_larger_than_its_canvas_is_bounded() {
        let mut bytes = Vec::new();
        {
            let mut encoder = gif::Encoder::new(&mut bytes, 2, 1, &[0, 0, 0, 255, 0, 0]).unwrap();
            let frame = gif::Frame::from_indexed_pixels(100, 100, vec![1; 10_000], None);
            encoder.write_frame(&frame).unwrap();
        }
        let limits = LimitsConfig {
            max_pixels: 50,
            ..LimitsConfig::default()
        };
        let error = decode(&bytes, &limits).unwrap_err();
        assert!(
            matches!(error, ThumbnailError::TooManyPixels { .. }),
            "{error}"
        );
        // Within the limits, the canvas shows the part of the frame it covers.
        let image = decode(&bytes, &LimitsConfig::default()).unwrap().image;
        assert_eq!(
            image.to_rgba8().into_raw(),
            [255, 0, 0, 255, 255, 0, 0, 255]
        );
    }

    #[test]
    fn damaged_files_never_panic() {
        let bytes = fixture("gif-animated.gif");
        let limits = LimitsConfig::default();
        let mut decoded = 0;
        for damaged in crate::decode::damaged(&bytes, 6, 2000) {
            decoded += usize::from(decode(&damaged, &limits).is_ok());
        }
        for cut in (0..bytes.len()).step_by(7) {
            let _ = decode(&bytes[..cut], &limits);
        }
        // Damage that leaves the codes valid (colour tables, some pixels) still decodes.
        assert!(decoded > 300, "{decoded}");
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
