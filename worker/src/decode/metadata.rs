//! Metadata under a bound: what a file carries beside its pixels may cost at most
//! `limits.max_metadata_bytes` of memory, whatever it declares.
//!
//! A 10×10 image passes the pixel limit, yet its metadata can be a bomb: a PNG `iCCP` chunk
//! that inflates to a gigabyte, a JPEG whose ICC profile is spread over hundreds of APP2
//! segments, a WebP with a huge `EXIF` chunk, a GIF with endless extension blocks, a TIFF whose
//! strip table declares millions of entries. Thumbnails need two things from metadata, the
//! EXIF orientation and the colour profile, so the rule is: nothing is inflated past the bound
//! (PNG's text chunks are skipped, its ICC profile inflated only up to the bound, by
//! [`super::png`]), and before any decoder sees a file its container is walked here, without
//! allocating, to count the metadata bytes the decoder would keep:
//!
//! | format | counted | over the bound |
//! |---|---|---|
//! | JPEG | APP1–APP13, APP15 and COM segments, before and between scans | decoded from a copy without them (so without its ICC profile: sRGB), but for the first EXIF segment (at most 64 KiB) |
//! | GIF | extension blocks before the first frame | refused |
//! | WebP | `ICCP`, `EXIF`, `XMP ` and unknown chunks | refused |
//! | TIFF | the first directory's entries, and the values of the tags the decoder reads | refused |
//! | PNG, BMP | nothing here: PNG is bounded by its decoder's limits, BMP's is not read | — |
//!
//! The walk reads only the structure (lengths and markers), so a malformed file is passed on
//! unchanged: its decoder reports what is wrong with it.

use std::borrow::Cow;

use common::media::MediaType;

use crate::error::ThumbnailError;

/// `bytes` with its metadata within `max` bytes: borrowed when it already is, a copy without
/// the metadata where the format allows it (JPEG), otherwise refused.
pub fn bounded(
    bytes: &[u8],
    media_type: MediaType,
    max: u64,
) -> Result<Cow<'_, [u8]>, ThumbnailError> {
    let counted = match media_type {
        MediaType::Jpeg => {
            let segments = jpeg_metadata_segments(bytes);
            let total: u64 = segments.iter().map(|range| range.len() as u64).sum();
            if total <= max {
                return Ok(Cow::Borrowed(bytes));
            }
            tracing::debug!(
                total,
                max,
                "JPEG metadata over the bound: decoding without it"
            );
            return Ok(Cow::Owned(super::jpeg_scans::without(bytes, &segments)));
        }
        MediaType::Gif => gif_extension_bytes(bytes),
        MediaType::Webp => webp_metadata_bytes(bytes),
        MediaType::Tiff => tiff_metadata_bytes(bytes),
        // PNG text and ICC chunks are skipped by its decoder; a video is not read here.
        _ => 0,
    };
    if counted > max {
        return Err(ThumbnailError::MetadataTooLarge {
            media_type: media_type.as_str(),
            bytes: counted,
            max,
        });
    }
    Ok(Cow::Borrowed(bytes))
}

/// The byte ranges of the JPEG segments that are metadata (APP1–APP13, APP15, COM), in file
/// order, except the first EXIF segment, which is kept for the orientation. Entropy-coded
/// data is stepped over, to the markers between the scans of a progressive file.
fn jpeg_metadata_segments(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut segments = Vec::new();
    let mut exif_kept = false;
    for marker in super::jpeg_scans::markers(bytes) {
        if !matches!(marker.code, 0xE1..=0xED | 0xEF | 0xFE) {
            continue;
        }
        let is_exif = marker.code == 0xE1
            && bytes
                .get(marker.range.start + 4..marker.range.end)
                .is_some_and(|body| body.starts_with(b"Exif\0\0"));
        if is_exif && !exif_kept {
            exif_kept = true;
        } else {
            segments.push(marker.range);
        }
    }
    segments
}

/// The bytes of the extension blocks (comments, application data, XMP, ICC) a GIF carries
/// before its first image.
fn gif_extension_bytes(bytes: &[u8]) -> u64 {
    let Some(&packed) = bytes.get(10) else {
        return 0;
    };
    let mut at = 13;
    if packed & 0x80 != 0 {
        at += 3 << ((packed & 0x07) + 1);
    }
    let mut total = 0u64;
    while bytes.get(at) == Some(&0x21) {
        // Introducer, label, then sub-blocks each led by its length, ended by a 0.
        at += 2;
        while let Some(&length) = bytes.get(at) {
            at += 1 + usize::from(length);
            total += u64::from(length);
            if length == 0 {
                break;
            }
        }
    }
    total
}

/// The bytes of a WebP's chunks that are not image data: `ICCP`, `EXIF`, `XMP ` and any
/// chunk of unknown kind.
fn webp_metadata_bytes(bytes: &[u8]) -> u64 {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return 0;
    }
    let mut total = 0u64;
    let mut at = 12usize;
    while let Some(header) = bytes.get(at..at + 8) {
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if !matches!(
            &header[..4],
            b"VP8 " | b"VP8L" | b"VP8X" | b"ALPH" | b"ANIM" | b"ANMF"
        ) {
            total += u64::from(size);
        }
        // Chunks are padded to an even size.
        at = at
            .saturating_add(8)
            .saturating_add(size as usize)
            .saturating_add(size as usize & 1);
    }
    total
}

/// The length of a PNG's first chunk of `kind` before the image data, if it has one.
pub fn png_chunk_length(bytes: &[u8], kind: [u8; 4]) -> Option<u64> {
    let mut at = 8usize;
    while let Some(header) = bytes.get(at..at.checked_add(8)?) {
        let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        match &header[4..8] {
            found if found == kind => return Some(u64::from(length)),
            b"IDAT" | b"IEND" => return None,
            _ => at = at.checked_add(12)?.checked_add(length as usize)?,
        }
    }
    None
}

/// The body of a WebP's first chunk of `kind` (`ICCP` for the ICC profile), if it has one
/// that lies whole inside the file.
pub fn webp_chunk(bytes: &[u8], kind: [u8; 4]) -> Option<&[u8]> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return None;
    }
    let mut at = 12usize;
    while let Some(header) = bytes.get(at..at.checked_add(8)?) {
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let body = at + 8;
        if header[..4] == kind {
            return bytes.get(body..body.checked_add(size)?);
        }
        at = body.checked_add(size)?.checked_add(size & 1)?;
    }
    None
}

/// The tags whose values a TIFF decoder reads (others are skipped unread): layout, strip and
/// tile tables, sample description, palette, JPEG tables, orientation, ICC profile.
const TIFF_TAGS_READ: [u16; 21] = [
    256, 257, 258, 259, 262, 273, 274, 277, 278, 279, 284, 317, 320, 322, 323, 324, 325, 338, 339,
    347, 34675,
];

/// The bytes of a TIFF's first directory (its entries) and of the values of the tags a
/// decoder reads, as declared: a strip table declaring a billion entries counts a billion.
fn tiff_metadata_bytes(bytes: &[u8]) -> u64 {
    let little = match bytes.get(..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return 0,
    };
    let read = |at: usize, width: usize| -> Option<u64> {
        let field = bytes.get(at..at.checked_add(width)?)?;
        let mut value = 0u64;
        for i in 0..width {
            let byte = if little {
                field[width - 1 - i]
            } else {
                field[i]
            };
            value = value << 8 | u64::from(byte);
        }
        Some(value)
    };
    let Some(version) = read(2, 2) else { return 0 };
    // Classic TIFF: 2-byte entry count, 12-byte entries, 4-byte counts and offsets.
    // BigTIFF: 8-byte count, 20-byte entries, 8-byte counts and offsets.
    let (big, ifd_at) = match version {
        42 => (false, read(4, 4)),
        43 => (true, read(8, 8)),
        _ => return 0,
    };
    let Some(ifd_at) = ifd_at.and_then(|at| usize::try_from(at).ok()) else {
        return 0;
    };
    let (count_width, entry_width, field_width) = if big { (8, 20, 8) } else { (2, 12, 4) };
    let Some(entries) = read(ifd_at, count_width) else {
        return 0;
    };
    let mut total = entries.saturating_mul(entry_width as u64);
    let first = ifd_at + count_width;
    // Entries past the end of the file cannot be read: the decoder fails on the first.
    let present = (bytes.len().saturating_sub(first) / entry_width) as u64;
    for index in 0..entries.min(present) as usize {
        let entry = first + index * entry_width;
        let (Some(tag), Some(kind), Some(count)) = (
            read(entry, 2),
            read(entry + 2, 2),
            read(entry + 4, field_width),
        ) else {
            break;
        };
        if TIFF_TAGS_READ.contains(&(tag as u16)) {
            let size: u64 = match kind {
                1 | 2 | 6 | 7 => 1,
                3 | 8 => 2,
                4 | 9 | 11 | 13 => 4,
                _ => 8,
            };
            total = total.saturating_add(count.saturating_mul(size));
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::fixture;

    /// `jpeg` with `count` APP2 ICC segments of `size` bytes each inserted after its SOI.
    fn with_icc_segments(jpeg: &[u8], count: usize, size: usize) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        for seq in 0..count {
            out.extend_from_slice(&[0xFF, 0xE2]);
            out.extend_from_slice(&u16::try_from(size + 2).unwrap().to_be_bytes());
            out.extend_from_slice(b"ICC_PROFILE\0");
            out.extend_from_slice(&[(seq % 255 + 1) as u8, 255]);
            out.resize(out.len() + size - 14, 0x42);
        }
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn jpeg_metadata_within_the_bound_is_left_alone() {
        let jpeg = fixture("jpeg-exif-orientation-6.jpg");
        let bounded = bounded(&jpeg, MediaType::Jpeg, 1 << 20).unwrap();
        assert!(matches!(bounded, Cow::Borrowed(_)));
    }

    /// The metadata bytes `jpeg` is counted to have.
    fn counted(jpeg: &[u8]) -> usize {
        jpeg_metadata_segments(jpeg)
            .iter()
            .map(|range| range.len())
            .sum()
    }

    #[test]
    fn jpeg_metadata_over_the_bound_is_dropped_but_the_exif_kept() {
        let jpeg = fixture("jpeg-exif-orientation-6.jpg");
        let bomb = with_icc_segments(&jpeg, 100, 60_000);
        assert_eq!(counted(&bomb), counted(&jpeg) + 100 * 60_004);
        let bounded = bounded(&bomb, MediaType::Jpeg, 1 << 20).unwrap();
        // What is left is the original without metadata, but for its EXIF segment.
        assert!(bounded.len() <= jpeg.len());
        assert_eq!(counted(&bounded), 0);
        let header = super::super::jpeg::Header::read(&bounded, &Default::default()).unwrap();
        assert_eq!(header.orientation, image::metadata::Orientation::Rotate90);
    }

    #[test]
    fn jpeg_segments_between_progressive_scans_are_counted() {
        let jpeg = fixture("jpeg-progressive.jpg");
        // Put the segments just before the EOI: after every scan's entropy-coded data.
        let end = jpeg.len() - 2;
        let mut bomb = jpeg[..end].to_vec();
        let segments = with_icc_segments(&[0xFF, 0xD8], 20, 60_000);
        bomb.extend_from_slice(&segments[2..]);
        bomb.extend_from_slice(&jpeg[end..]);
        assert_eq!(counted(&bomb), counted(&jpeg) + 20 * 60_004);
        let bounded = bounded(&bomb, MediaType::Jpeg, 1 << 20).unwrap();
        assert_eq!(counted(&bounded), 0);
        assert!(bounded.len() <= jpeg.len());
    }

    #[test]
    fn gif_extensions_over_the_bound_are_refused() {
        let gif = fixture("gif-animated.gif");
        // Insert a comment extension of 5000 full sub-blocks after the colour table.
        let packed = gif[10];
        let table_end = 13
            + if packed & 0x80 != 0 {
                3 << ((packed & 7) + 1)
            } else {
                0
            };
        let mut bomb = gif[..table_end].to_vec();
        bomb.extend_from_slice(&[0x21, 0xFE]);
        for _ in 0..5000 {
            bomb.push(255);
            bomb.extend_from_slice(&[b'x'; 255]);
        }
        bomb.push(0);
        bomb.extend_from_slice(&gif[table_end..]);
        assert!(gif_extension_bytes(&bomb) >= 5000 * 255);
        let error = bounded(&bomb, MediaType::Gif, 1 << 20).unwrap_err();
        assert_eq!(error.code(), 413, "{error}");
        assert!(bounded(&gif, MediaType::Gif, 1 << 20).is_ok());
    }

    #[test]
    fn webp_metadata_chunks_are_counted() {
        let webp = fixture("webp-lossy.webp");
        let mut bomb = webp.clone();
        bomb.extend_from_slice(b"EXIF");
        bomb.extend_from_slice(&2_000_001u32.to_le_bytes());
        bomb.resize(bomb.len() + 2_000_002, 0);
        let size = u32::try_from(bomb.len() - 8).unwrap();
        bomb[4..8].copy_from_slice(&size.to_le_bytes());
        assert_eq!(webp_metadata_bytes(&bomb), 2_000_001);
        assert!(bounded(&bomb, MediaType::Webp, 1 << 20).is_err());
        assert!(bounded(&webp, MediaType::Webp, 1 << 20).is_ok());
    }

    #[test]
    fn tiff_tables_are_counted_as_declared() {
        let tiff = fixture("tiff-lzw.tiff");
        let real = tiff_metadata_bytes(&tiff);
        assert!(real > 0 && real < 64 * 1024, "{real}");
        // Declare a billion strip offsets in the first directory.
        let little = &tiff[..2] == b"II";
        let read16 = |at: usize| {
            let pair = [tiff[at], tiff[at + 1]];
            if little {
                u16::from_le_bytes(pair)
            } else {
                u16::from_be_bytes(pair)
            }
        };
        let read32 = |at: usize| {
            let quad = [tiff[at], tiff[at + 1], tiff[at + 2], tiff[at + 3]];
            if little {
                u32::from_le_bytes(quad)
            } else {
                u32::from_be_bytes(quad)
            }
        };
        let ifd = read32(4) as usize;
        let mut bomb = tiff.clone();
        let entry = (0..usize::from(read16(ifd)))
            .map(|i| ifd + 2 + i * 12)
            .find(|&entry| read16(entry) == 273)
            .unwrap();
        let billion = 1_000_000_000u32;
        let count = if little {
            billion.to_le_bytes()
        } else {
            billion.to_be_bytes()
        };
        bomb[entry + 4..entry + 8].copy_from_slice(&count);
        assert!(tiff_metadata_bytes(&bomb) >= 4_000_000_000);
        assert_eq!(
            bounded(&bomb, MediaType::Tiff, 1 << 20).unwrap_err().code(),
            413
        );
    }

    #[test]
    fn malformed_containers_count_nothing_and_never_panic() {
        for bytes in [
            &b""[..],
            b"\xff\xd8\xff",
            b"\xff\xd8\xff\xe1\xff\xff",
            b"GIF89a\x01\x00\x01\x00\xff",
            b"RIFF\xff\xff\xff\xffWEBPEXIF\xff\xff\xff\xff",
            b"II*\0\xff\xff\xff\xff",
            b"II+\0\x08\0\0\0\x10\0\0\0\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff",
        ] {
            for media_type in [
                MediaType::Jpeg,
                MediaType::Gif,
                MediaType::Webp,
                MediaType::Tiff,
            ] {
                let _ = bounded(bytes, media_type, 1024);
            }
        }
    }
}
