//! BMP: uncompressed 24-bit pixels copied straight from the file.
//!
//! Nearly every BMP in the wild is 24-bit `BI_RGB`: rows of blue-green-red bytes, each padded
//! to four bytes, stored bottom-up (or top-down when the height is negative). `image`'s BMP
//! decoder reads such a file one pixel at a time through `Read`, which is four fifths of a BMP
//! thumbnail's time. Here `image` still reads and checks the header (dimensions, pixel and
//! memory limits); then, for that one layout, the rows are turned into RGB in a single pass
//! over the input slice. Every other layout (palettes, RLE, bit fields, 16 and 32 bits, OS/2
//! headers) and any file whose pixel data is not all there decodes through `image`, which
//! also words the errors.

use common::config::LimitsConfig;
use common::media::MediaType;
use image::{DynamicImage, ImageDecoder, RgbImage};

use super::{Decoded, check_alloc, decode_opened, open};
use crate::error::ThumbnailError;

/// Decodes a BMP: 24-bit `BI_RGB` directly, anything else through `image`.
pub fn decode(bytes: &[u8], limits: &LimitsConfig) -> Result<Decoded, ThumbnailError> {
    let decoder = open(bytes, MediaType::Bmp, limits)?;
    let (width, height) = decoder.dimensions();
    let Some(layout) = Layout::read(bytes, width, height) else {
        return decode_opened(decoder, MediaType::Bmp);
    };
    check_alloc(MediaType::Bmp, (width, height), 3, limits)?;
    Ok(Decoded {
        image: DynamicImage::ImageRgb8(layout.to_rgb(bytes)),
        source_width: width,
        source_height: height,
        colour: crate::colour::Description::Unstated,
    })
}

/// Where the rows of a complete 24-bit `BI_RGB` bitmap lie in the file.
#[derive(Debug, PartialEq, Eq)]
struct Layout {
    width: u32,
    height: u32,
    /// Offset of the first stored row.
    offset: usize,
    /// Bytes per stored row, padding included.
    stride: usize,
    /// Rows are stored top row first (negative height in the header).
    top_down: bool,
}

impl Layout {
    /// The layout of `bytes` if it is a 24-bit `BI_RGB` bitmap of `width`×`height` (as `image`
    /// read them) with every row present; `None` for any other file.
    fn read(bytes: &[u8], width: u32, height: u32) -> Option<Layout> {
        let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
        let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
        let offset = usize::try_from(u32_at(10)?).ok()?;
        let info_size = u32_at(14)?;
        let stored_width = u32_at(18)?;
        let stored_height = u32_at(22)? as i32;
        let (bit_count, compression) = (u16_at(28)?, u32_at(30)?);
        // 40 bytes or more: BITMAPINFOHEADER and its successors, whose fields are read above.
        let plain = info_size >= 40 && bit_count == 24 && compression == 0;
        if !plain || stored_width != width || stored_height.unsigned_abs() != height {
            return None;
        }
        let row = usize::try_from(width).ok()? * 3;
        let stride = row.checked_add(3)? & !3;
        // The last stored row needs its pixels, not its padding.
        let last_row = usize::try_from(height).ok()?.checked_sub(1)?;
        let end = offset
            .checked_add(stride.checked_mul(last_row)?)?
            .checked_add(row)?;
        (end <= bytes.len()).then_some(Layout {
            width,
            height,
            offset,
            stride,
            top_down: stored_height < 0,
        })
    }

    /// The pixels, top row first, red-green-blue.
    fn to_rgb(&self, bytes: &[u8]) -> RgbImage {
        let row = self.width as usize * 3;
        let rows = self.height as usize;
        let mut pixels = vec![0; row * rows];
        for (y, out) in pixels.chunks_exact_mut(row).enumerate() {
            let stored = if self.top_down { y } else { rows - 1 - y };
            let start = self.offset + stored * self.stride;
            let source = &bytes[start..start + row];
            for (rgb, bgr) in out.chunks_exact_mut(3).zip(source.chunks_exact(3)) {
                rgb.copy_from_slice(&[bgr[2], bgr[1], bgr[0]]);
            }
        }
        RgbImage::from_raw(self.width, self.height, pixels).expect("buffer sized to the image")
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::{ImageFormat, Rgb};

    use super::*;

    /// A 24-bit bottom-up BMP of a `width`×`height` gradient, as `image` encodes it.
    fn bmp(width: u32, height: u32) -> (Vec<u8>, RgbImage) {
        let pixels = RgbImage::from_fn(width, height, |x, y| {
            Rgb([(x * 7) as u8, (y * 13) as u8, (x + y) as u8])
        });
        let mut bytes = Vec::new();
        DynamicImage::ImageRgb8(pixels.clone())
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Bmp)
            .unwrap();
        (bytes, pixels)
    }

    fn decoded(bytes: &[u8]) -> DynamicImage {
        decode(bytes, &LimitsConfig::default()).unwrap().image
    }

    #[test]
    fn rows_with_padding_come_out_as_image_decodes_them() {
        // 3 px × 3 bytes = 9 bytes per row: three bytes of padding each.
        let (bytes, pixels) = bmp(3, 5);
        assert!(
            Layout::read(&bytes, 3, 5).is_some(),
            "takes the direct path"
        );
        assert_eq!(decoded(&bytes).to_rgb8(), pixels);
        let by_image = image::load_from_memory_with_format(&bytes, ImageFormat::Bmp).unwrap();
        assert_eq!(decoded(&bytes), by_image);
    }

    #[test]
    fn top_down_rows_are_read_in_order() {
        let (mut bytes, pixels) = bmp(5, 4);
        let layout = Layout::read(&bytes, 5, 4).unwrap();
        // Store the rows top row first and say so with a negative height.
        let data = bytes.split_off(layout.offset);
        let mut rows: Vec<&[u8]> = data.chunks(layout.stride).collect();
        rows.reverse();
        bytes.extend(rows.concat());
        bytes[22..26].copy_from_slice(&(-4i32).to_le_bytes());
        assert!(Layout::read(&bytes, 5, 4).unwrap().top_down);
        assert_eq!(decoded(&bytes).to_rgb8(), pixels);
    }

    #[test]
    fn other_layouts_and_short_files_go_through_image() {
        let (bytes, _) = bmp(6, 6);
        // Rows of 18 bytes padded to 20: the final padding may be missing, but not the last
        // byte of pixel data. Then the direct path declines, and `image` reports the
        // truncation.
        assert!(Layout::read(&bytes[..bytes.len() - 2], 6, 6).is_some());
        let short = &bytes[..bytes.len() - 3];
        assert_eq!(Layout::read(short, 6, 6), None);
        let error = decode(short, &LimitsConfig::default()).unwrap_err();
        assert_eq!(error.code(), 422, "{error}");
        // RGBA is stored as 32-bit pixels: `image` decodes it, alpha kept.
        let mut rgba = Vec::new();
        DynamicImage::new_rgba8(4, 4)
            .write_to(&mut Cursor::new(&mut rgba), ImageFormat::Bmp)
            .unwrap();
        assert_eq!(Layout::read(&rgba, 4, 4), None);
        assert!(decoded(&rgba).color().has_alpha());
    }

    #[test]
    fn the_memory_limit_holds() {
        let (bytes, _) = bmp(100, 100);
        let limits = LimitsConfig {
            max_alloc_bytes: 29_999,
            ..LimitsConfig::default()
        };
        let error = decode(&bytes, &limits).unwrap_err();
        assert!(
            matches!(error, ThumbnailError::OverMemoryLimit { .. }),
            "{error}"
        );
    }
}
