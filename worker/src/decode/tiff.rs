//! TIFF: LZW strips decoded by [`super::lzw`]; every other layout through `image`.
//!
//! LZW is TIFF's common lossless compression, and the `tiff` crate spends most of its time in
//! weezl 0.1's LZW decoder. For the layouts photographs are saved in (8 bits per sample, grey
//! or RGB, with or without an unassociated alpha channel, samples interleaved, in strips,
//! with or without the horizontal predictor) the `tiff` crate only reads the directory here:
//! each strip is decoded by [`super::lzw`] into its buffer (one strip, so it stays in cache),
//! copied to its rows of the image, and the predictor undone there. Any other layout, compression or sample format, and any
//! directory the `tiff` crate cannot read, goes through `image` as before, which also gives
//! the error for a broken file.

use std::io::Cursor;

use common::config::LimitsConfig;
use common::media::MediaType;
use image::metadata::Orientation;
use image::{DynamicImage, GrayAlphaImage, GrayImage, RgbImage, RgbaImage};
use tiff::decoder::Decoder as Directory;
use tiff::tags::Tag;

use super::lzw::{self, Dialect};
use super::{Decoded, check_alloc, check_pixels};
use crate::colour::Description;
use crate::error::ThumbnailError;

/// TIFF's code for LZW compression.
const LZW: u16 = 5;

/// Decodes the first image of a TIFF, upright.
pub fn decode(bytes: &[u8], limits: &LimitsConfig) -> Result<Decoded, ThumbnailError> {
    match Layout::read(bytes) {
        Some(layout) => layout.decode(bytes, limits),
        None => super::decode_full(bytes, MediaType::Tiff, limits),
    }
}

/// The layout of an image this module decodes itself.
#[derive(Debug)]
struct Layout {
    width: u32,
    height: u32,
    /// Samples per pixel: 1 (grey), 2 (grey and alpha), 3 (RGB) or 4 (RGBA).
    samples: usize,
    /// Whether each row holds differences from the pixel before (predictor 2).
    predictor: bool,
    rows_per_strip: usize,
    /// Each strip's offset and length in the file.
    strips: Vec<(u64, u64)>,
    orientation: Orientation,
    /// The ICC profile of tag 34675 (its size already bounded by [`super::metadata`]).
    icc: Option<Vec<u8>>,
}

impl Layout {
    /// The layout of the first image, when it is one this module decodes.
    fn read(bytes: &[u8]) -> Option<Self> {
        let mut directory = Directory::new(Cursor::new(bytes)).ok()?;
        let unsigned = |directory: &mut Directory<_>, tag| {
            directory
                .find_tag_unsigned::<u32>(tag)
                .ok()
                .map(|value| value.unwrap_or(1))
        };
        let samples = unsigned(&mut directory, Tag::SamplesPerPixel)? as usize;
        let photometric = directory
            .find_tag_unsigned::<u16>(Tag::PhotometricInterpretation)
            .ok()??;
        let alpha = match (photometric, samples) {
            (1, 1) | (2, 3) => false,
            (1, 2) | (2, 4) => true,
            _ => return None,
        };
        let all = |directory: &mut Directory<_>, tag, wanted: u16| {
            directory
                .find_tag_unsigned_vec::<u16>(tag)
                .ok()?
                .is_none_or(|values| values.iter().all(|&value| value == wanted))
                .then_some(())
        };
        all(&mut directory, Tag::BitsPerSample, 8)?;
        all(&mut directory, Tag::SampleFormat, 1)?;
        if alpha {
            // Unassociated alpha only: associated (premultiplied) goes through `image`.
            let extra = directory
                .find_tag_unsigned_vec::<u16>(Tag::ExtraSamples)
                .ok()??;
            (extra == [2]).then_some(())?;
        }
        (unsigned(&mut directory, Tag::Compression)? == u32::from(LZW)).then_some(())?;
        (unsigned(&mut directory, Tag::PlanarConfiguration)? == 1).then_some(())?;
        (unsigned(&mut directory, Tag::FillOrder)? == 1).then_some(())?;
        let predictor = match unsigned(&mut directory, Tag::Predictor)? {
            1 => false,
            2 => true,
            _ => return None,
        };
        if directory.find_tag(Tag::TileWidth).ok()?.is_some() {
            return None;
        }
        let (width, height) = directory.dimensions().ok()?;
        let rows_per_strip = directory
            .find_tag_unsigned::<u32>(Tag::RowsPerStrip)
            .ok()?
            .unwrap_or(u32::MAX)
            .clamp(1, height.max(1)) as usize;
        let offsets = directory
            .find_tag_unsigned_vec::<u64>(Tag::StripOffsets)
            .ok()??;
        let lengths = directory
            .find_tag_unsigned_vec::<u64>(Tag::StripByteCounts)
            .ok()??;
        let orientation = directory
            .find_tag_unsigned::<u16>(Tag::Orientation)
            .ok()
            .flatten()
            .and_then(|value| Orientation::from_exif(value.min(255) as u8))
            .unwrap_or(Orientation::NoTransforms);
        let icc = directory.get_tag_u8_vec(Tag::IccProfile).ok();
        Some(Self {
            width,
            height,
            samples,
            predictor,
            rows_per_strip,
            strips: offsets.into_iter().zip(lengths).collect(),
            orientation,
            icc,
        })
    }

    /// Decodes every strip into the image, under the limits.
    fn decode(self, bytes: &[u8], limits: &LimitsConfig) -> Result<Decoded, ThumbnailError> {
        let (width, height) = (self.width, self.height);
        check_pixels(width, height, limits.max_pixels)?;
        check_alloc(
            MediaType::Tiff,
            (width, height),
            self.samples as u64,
            limits,
        )?;
        let row = width as usize * self.samples;
        let strip_bytes = self.rows_per_strip * row;
        let mut pixels = vec![0; row * height as usize];
        if self.strips.len() < pixels.len().div_ceil(strip_bytes.max(1)) {
            return Err(decode_error("fewer strips than the image has rows for"));
        }
        let mut lzw = lzw::Decoder::default();
        for (rows, &(offset, length)) in pixels.chunks_mut(strip_bytes.max(1)).zip(&self.strips) {
            let data = usize::try_from(offset)
                .ok()
                .zip(usize::try_from(length).ok())
                .and_then(|(offset, length)| bytes.get(offset..offset.checked_add(length)?))
                .ok_or_else(|| decode_error("a strip lies outside the file"))?;
            let decoded = lzw
                .decode(Dialect::Tiff, 8, data, rows.len())
                .map_err(decode_error)?;
            if decoded.len() < rows.len() {
                return Err(decode_error("a strip ends before its last row"));
            }
            rows.copy_from_slice(decoded);
            if self.predictor {
                for line in rows.chunks_exact_mut(row) {
                    for at in self.samples..line.len() {
                        line[at] = line[at].wrapping_add(line[at - self.samples]);
                    }
                }
            }
        }
        let image = match self.samples {
            1 => GrayImage::from_raw(width, height, pixels).map(DynamicImage::ImageLuma8),
            2 => GrayAlphaImage::from_raw(width, height, pixels).map(DynamicImage::ImageLumaA8),
            3 => RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8),
            _ => RgbaImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgba8),
        };
        let mut image = image.ok_or_else(|| decode_error("the pixels do not fill the image"))?;
        image.apply_orientation(self.orientation);
        let colour = self.icc.map_or(Description::Unstated, Description::Icc);
        Ok(Decoded::whole(image).described(colour))
    }
}

fn decode_error(error: impl std::fmt::Display) -> ThumbnailError {
    super::decode_error(MediaType::Tiff, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `width`×`height` TIFF of `samples` samples per pixel, LZW in strips of `rows`, with
    /// the predictor or not, written by hand around weezl's encoder (the `tiff` encoder
    /// the workspace builds has no predictor); and its pixels.
    fn tiff(
        width: u32,
        height: u32,
        samples: u16,
        rows: u32,
        predictor: bool,
    ) -> (Vec<u8>, Vec<u8>) {
        let row = (width * u32::from(samples)) as usize;
        let pixels: Vec<u8> = (0..height as usize * row)
            .map(|i| ((i % row) * 7 + (i / row) * 13) as u8)
            .collect();
        let strips: Vec<Vec<u8>> = pixels
            .chunks(rows as usize * row)
            .map(|strip| {
                let mut strip = strip.to_vec();
                if predictor {
                    for line in strip.chunks_exact_mut(row) {
                        for at in (usize::from(samples)..line.len()).rev() {
                            line[at] = line[at].wrapping_sub(line[at - usize::from(samples)]);
                        }
                    }
                }
                weezl::encode::Encoder::with_tiff_size_switch(weezl::BitOrder::Msb, 8)
                    .encode(&strip)
                    .unwrap()
            })
            .collect();
        let mut file = b"II*\0".to_vec();
        let mut data = Vec::new();
        let mut offsets = Vec::new();
        for strip in &strips {
            offsets.push(8 + data.len() as u32);
            data.extend_from_slice(strip);
        }
        let tables = 8 + data.len() as u32;
        let mut extra = Vec::new();
        let mut table = |values: &[u32]| {
            let at = tables + extra.len() as u32;
            for value in values {
                extra.extend_from_slice(&value.to_le_bytes());
            }
            at
        };
        let strip_offsets = table(&offsets);
        let strip_lengths = table(&strips.iter().map(|s| s.len() as u32).collect::<Vec<_>>());
        let bits = tables + extra.len() as u32;
        for _ in 0..samples {
            extra.extend_from_slice(&8u16.to_le_bytes());
        }
        let ifd = tables + extra.len() as u32;
        file.extend_from_slice(&ifd.to_le_bytes());
        file.extend_from_slice(&data);
        file.extend_from_slice(&extra);
        let photometric = if samples >= 3 { 2 } else { 1 };
        let mut entries: Vec<(u16, u16, u32, u32)> = vec![
            (256, 4, 1, width),
            (257, 4, 1, height),
            (
                258,
                3,
                u32::from(samples),
                if samples > 2 { bits } else { 8 | (8 << 16) },
            ),
            (259, 3, 1, u32::from(LZW)),
            (262, 3, 1, photometric),
            (273, 4, strips.len() as u32, strip_offsets),
            (277, 3, 1, u32::from(samples)),
            (278, 4, 1, rows),
            (279, 4, strips.len() as u32, strip_lengths),
            (284, 3, 1, 1),
            (317, 3, 1, if predictor { 2 } else { 1 }),
        ];
        if samples.is_multiple_of(2) {
            entries.push((338, 3, 1, 2));
        }
        entries.sort();
        if strips.len() == 1 {
            // One strip: its offset and length are the values themselves.
            for entry in entries.iter_mut().filter(|e| e.0 == 273 || e.0 == 279) {
                entry.3 = if entry.0 == 273 {
                    offsets[0]
                } else {
                    strips[0].len() as u32
                };
            }
        }
        file.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        for (tag, kind, count, value) in entries {
            file.extend_from_slice(&tag.to_le_bytes());
            file.extend_from_slice(&kind.to_le_bytes());
            file.extend_from_slice(&count.to_le_bytes());
            file.extend_from_slice(&value.to_le_bytes());
        }
        file.extend_from_slice(&0u32.to_le_bytes());
        (file, pixels)
    }

    #[test]
    fn strips_match_image_in_every_layout() {
        for samples in 1..=4 {
            for predictor in [false, true] {
                for rows in [1, 7, 64] {
                    let (bytes, pixels) = tiff(61, 45, samples, rows, predictor);
                    let layout = Layout::read(&bytes).expect("a layout this module decodes");
                    assert_eq!(layout.samples, usize::from(samples));
                    let ours = decode(&bytes, &LimitsConfig::default()).unwrap().image;
                    let case = format!("{samples} samples, predictor {predictor}, {rows} rows");
                    assert_eq!(ours.as_bytes(), pixels, "{case}");
                    assert_eq!(usize::from(ours.color().channel_count()), layout.samples);
                    if samples != 2 {
                        // `image` reads no grey-and-alpha TIFF.
                        let theirs =
                            image::load_from_memory_with_format(&bytes, image::ImageFormat::Tiff)
                                .unwrap();
                        assert_eq!(ours, theirs, "{case}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_fixture_matches_image() {
        let bytes = crate::decode::fixture("tiff-lzw.tiff");
        assert!(Layout::read(&bytes).is_some());
        let ours = decode(&bytes, &LimitsConfig::default()).unwrap().image;
        let theirs = image::load_from_memory_with_format(&bytes, image::ImageFormat::Tiff).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn other_layouts_go_through_image() {
        // Uncompressed, as `image` writes a TIFF.
        let pixels = RgbImage::from_fn(30, 20, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut bytes = Vec::new();
        DynamicImage::ImageRgb8(pixels.clone())
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Tiff)
            .unwrap();
        assert!(Layout::read(&bytes).is_none());
        let ours = decode(&bytes, &LimitsConfig::default()).unwrap().image;
        assert_eq!(ours, DynamicImage::ImageRgb8(pixels));
    }

    #[test]
    fn damaged_files_never_panic() {
        let limits = LimitsConfig::default();
        for samples in [1, 3, 4] {
            let (bytes, _) = tiff(50, 40, samples, 8, samples == 3);
            for damaged in crate::decode::damaged(&bytes, 8, 700) {
                let _ = decode(&damaged, &limits);
            }
            for cut in (0..bytes.len()).step_by(5) {
                let _ = decode(&bytes[..cut], &limits);
            }
        }
    }

    #[test]
    fn broken_strips_are_errors() {
        let (mut bytes, _) = tiff(40, 40, 3, 8, false);
        // The first strip's codes, all ones: code 4095 names nothing yet.
        bytes[8..40].fill(0xFF);
        let error = decode(&bytes, &LimitsConfig::default()).unwrap_err();
        assert!(matches!(error, ThumbnailError::Decode { .. }), "{error}");
        let limits = LimitsConfig {
            max_pixels: 1000,
            ..LimitsConfig::default()
        };
        assert!(matches!(
            decode(&tiff(40, 40, 3, 8, false).0, &limits),
            Err(ThumbnailError::TooManyPixels { .. })
        ));
    }
}
