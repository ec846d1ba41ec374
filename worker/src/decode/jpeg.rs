//! JPEG, with shrink-on-load.
//!
//! A JPEG stores 8×8 blocks of DCT coefficients, and an inverse DCT can produce each block at
//! 1/2, 1/4 or 1/8 of its size for a fraction of the work: a 24-megapixel photograph whose
//! thumbnail is 100 px wide decodes straight to 750×500, never to 6000×4000. The reduction is
//! the largest that leaves at least twice the thumbnail's size ([`super::reduction`]); the
//! resizer does the rest.
//!
//! Two back-ends, chosen at build time:
//! - with the `turbojpeg` feature, libjpeg-turbo 3 (the turbojpeg crate, built from its bundled
//!   source with cmake and nasm): SIMD Huffman decoding, IDCT and colour conversion, at every
//!   scale;
//! - otherwise pure Rust: jpeg-decoder's scaled IDCT when a reduction applies, and `image`'s
//!   zune-jpeg, the faster full-size decoder, when none does.
//!
//! At 1/8 scale, a progressive JPEG's scans that only the discarded detail needs are dropped
//! before decoding ([`jpeg_scans`]): the same pixels for a fraction of the entropy decoding.
//!
//! Either way the header is read first, by jpeg-decoder straight from the borrowed bytes: the
//! dimensions pass the pixel limit and the EXIF orientation is known before any pixel buffer
//! exists. CMYK and 12-bit JPEGs, which are rare, take `image`'s full-size path.

use common::config::LimitsConfig;
use common::media::MediaType;
use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};

use super::{
    Decoded, Target, check_alloc, check_pixels, decode_full, jpeg_scans, reduction, upright,
};
use crate::colour::Description;
use crate::error::ThumbnailError;

/// The JPEG decoder this build uses, for benchmark reports.
#[cfg(feature = "turbojpeg")]
pub const BACKEND: &str = "libjpeg-turbo (turbojpeg), DCT-scaled";
/// The JPEG decoder this build uses, for benchmark reports.
#[cfg(not(feature = "turbojpeg"))]
pub const BACKEND: &str = "jpeg-decoder, DCT-scaled; zune-jpeg at full size";

/// The reductions a JPEG decoder offers, largest first.
const REDUCTIONS: [u32; 3] = [8, 4, 2];

/// What the header of a JPEG says.
#[derive(Debug, Clone)]
pub struct Header {
    /// Stored width.
    pub width: u32,
    /// Stored height.
    pub height: u32,
    /// EXIF orientation (none when absent or unreadable).
    pub orientation: Orientation,
    /// Whether the pixels are 8-bit RGB or grey, which the scaled paths handle.
    scalable: bool,
    /// Whether the pixels are grey (one component).
    grey: bool,
    /// Whether the pixels are CMYK (four components).
    cmyk: bool,
    /// The ICC profile of the APP2 segments before the frame, joined in order.
    icc: Option<Vec<u8>>,
}

impl Header {
    /// Reads the header (every marker up to the first scan), refusing images over the pixel
    /// limit. Reads from the borrowed bytes: nothing is copied.
    pub fn read(bytes: &[u8], limits: &LimitsConfig) -> Result<Header, ThumbnailError> {
        let mut decoder = jpeg_decoder::Decoder::new(bytes);
        decoder.read_info().map_err(decode_error)?;
        let info = decoder
            .info()
            .ok_or_else(|| decode_error("no frame header"))?;
        let (width, height) = (u32::from(info.width), u32::from(info.height));
        check_pixels(width, height, limits.max_pixels)?;
        let orientation = decoder
            .exif_data()
            .and_then(Orientation::from_exif_chunk)
            .unwrap_or(Orientation::NoTransforms);
        let scalable = matches!(
            info.pixel_format,
            jpeg_decoder::PixelFormat::RGB24 | jpeg_decoder::PixelFormat::L8
        );
        Ok(Header {
            width,
            height,
            orientation,
            scalable,
            grey: info.pixel_format == jpeg_decoder::PixelFormat::L8,
            cmyk: info.pixel_format == jpeg_decoder::PixelFormat::CMYK32,
            icc: decoder.icc_profile(),
        })
    }
}

/// Decodes a JPEG at the largest useful DCT reduction for the `target` size, upright.
pub fn decode(
    bytes: &[u8],
    limits: &LimitsConfig,
    target: Target<'_>,
) -> Result<Decoded, ThumbnailError> {
    let header = Header::read(bytes, limits)?;
    let colour = header
        .icc
        .clone()
        .map_or(Description::Unstated, Description::Icc);
    if header.cmyk
        && let Some(profile) = header.icc.as_deref().and_then(cmyk_profile)
    {
        return decode_cmyk(bytes, &header, &profile, limits, target);
    }
    if !header.scalable {
        return Ok(decode_full(bytes, MediaType::Jpeg, limits)?.described(colour));
    }
    let (source_width, source_height) = upright(header.width, header.height, header.orientation);
    let swapped = source_width != header.width;
    let reduction = reduction(header.width, header.height, swapped, target, &REDUCTIONS);
    let (width, height) = (
        header.width.div_ceil(reduction),
        header.height.div_ceil(reduction),
    );
    let grey = header.grey;
    let channels = if grey { 1 } else { 3 };
    check_alloc(MediaType::Jpeg, (width, height), channels, limits)?;
    // At 1/8 a progressive file's luma AC scans are never read: skip their decoding.
    let needed = (reduction == 8)
        .then(|| jpeg_scans::for_eighth_scale(bytes))
        .flatten();
    let input = needed.as_deref().unwrap_or(bytes);
    let Some(pixels) = decode_scaled(input, reduction, grey, limits)? else {
        return Ok(decode_full(bytes, MediaType::Jpeg, limits)?.described(colour));
    };
    let image = if grey {
        GrayImage::from_raw(width, height, pixels).map(DynamicImage::ImageLuma8)
    } else {
        RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8)
    };
    let mut image = image.ok_or_else(|| decode_error("the decoder returned a short buffer"))?;
    image.apply_orientation(header.orientation);
    Ok(Decoded {
        image,
        source_width,
        source_height,
        colour,
    })
}

/// A CMYK ICC profile that parses, for a CMYK JPEG.
fn cmyk_profile(icc: &[u8]) -> Option<moxcms::ColorProfile> {
    let profile = moxcms::ColorProfile::new_from_slice(icc).ok()?;
    (profile.color_space == moxcms::DataColorSpace::Cmyk).then_some(profile)
}

/// Whether a JPEG has Adobe's APP14 segment, whose CMYK values are stored inverted
/// (Photoshop's convention, which libjpeg, Pillow and libvips follow).
fn is_adobe(bytes: &[u8]) -> bool {
    jpeg_scans::markers(bytes).any(|marker| {
        marker.code == 0xEE
            && bytes
                .get(marker.range.start + 4..marker.range.end)
                .is_some_and(|body| body.starts_with(b"Adobe"))
    })
}

/// A CMYK (or YCCK) JPEG with a CMYK profile: decoded at the largest useful DCT reduction to
/// its ink values, converted through the profile to sRGB, upright. Without a profile, or
/// when the profile has no usable transform, a CMYK JPEG goes the plain way
/// ([`decode_full`]: `image`'s formula).
fn decode_cmyk(
    bytes: &[u8],
    header: &Header,
    profile: &moxcms::ColorProfile,
    limits: &LimitsConfig,
    target: Target<'_>,
) -> Result<Decoded, ThumbnailError> {
    let (source_width, source_height) = upright(header.width, header.height, header.orientation);
    let swapped = source_width != header.width;
    let reduction = reduction(header.width, header.height, swapped, target, &REDUCTIONS);
    let (width, height) = (
        header.width.div_ceil(reduction),
        header.height.div_ceil(reduction),
    );
    check_alloc(MediaType::Jpeg, (width, height), 7, limits)?;
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(
        usize::try_from(limits.max_alloc_bytes).unwrap_or(usize::MAX),
    );
    decoder.read_info().map_err(decode_error)?;
    let side = |full: u32| u16::try_from(full.div_ceil(reduction)).unwrap_or(u16::MAX);
    if reduction > 1 {
        decoder
            .scale(side(header.width), side(header.height))
            .map_err(decode_error)?;
    }
    let mut cmyk = decoder.decode().map_err(decode_error)?;
    let info = decoder
        .info()
        .ok_or_else(|| decode_error("no frame header"))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    // jpeg-decoder hands over 255 − the stored value: ink for Adobe's inverted files, its
    // complement for plain ones.
    if !is_adobe(bytes) {
        cmyk.iter_mut().for_each(|value| *value = 255 - *value);
    }
    let Ok(rgb) = crate::colour::cmyk_to_rgb(&cmyk, profile) else {
        return decode_full(bytes, MediaType::Jpeg, limits);
    };
    let mut image = RgbImage::from_raw(width, height, rgb)
        .map(DynamicImage::ImageRgb8)
        .ok_or_else(|| decode_error("the decoder returned a short buffer"))?;
    image.apply_orientation(header.orientation);
    Ok(Decoded {
        image,
        source_width,
        source_height,
        colour: Description::Unstated,
    })
}

/// Decodes at 1/`reduction` scale to packed 8-bit RGB (or grey). `None` sends the image to the
/// full-size path: with the pure-Rust back-end, that is when there is no reduction to make.
#[cfg(not(feature = "turbojpeg"))]
fn decode_scaled(
    bytes: &[u8],
    reduction: u32,
    _grey: bool,
    limits: &LimitsConfig,
) -> Result<Option<Vec<u8>>, ThumbnailError> {
    if reduction == 1 {
        return Ok(None);
    }
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(
        usize::try_from(limits.max_alloc_bytes).unwrap_or(usize::MAX),
    );
    decoder.read_info().map_err(decode_error)?;
    let info = decoder
        .info()
        .ok_or_else(|| decode_error("no frame header"))?;
    let side = |full: u16| u16::try_from(u32::from(full).div_ceil(reduction)).unwrap_or(u16::MAX);
    decoder
        .scale(side(info.width), side(info.height))
        .map_err(decode_error)?;
    decoder.decode().map(Some).map_err(decode_error)
}

/// Decodes at 1/`reduction` scale to packed 8-bit RGB (or grey) with libjpeg-turbo.
#[cfg(feature = "turbojpeg")]
fn decode_scaled(
    bytes: &[u8],
    reduction: u32,
    grey: bool,
    _limits: &LimitsConfig,
) -> Result<Option<Vec<u8>>, ThumbnailError> {
    use turbojpeg::{Decompressor, Image, PixelFormat, ScalingFactor};

    let mut decompressor = Decompressor::new().map_err(decode_error)?;
    let scaling = ScalingFactor::new(1, reduction as usize);
    decompressor
        .set_scaling_factor(scaling)
        .map_err(decode_error)?;
    let header = decompressor
        .read_header(bytes)
        .map_err(decode_error)?
        .scaled(scaling);
    let format = if grey {
        PixelFormat::GRAY
    } else {
        PixelFormat::RGB
    };
    let pitch = header.width * format.size();
    let mut pixels = vec![0; pitch * header.height];
    let image = Image {
        pixels: pixels.as_mut_slice(),
        width: header.width,
        pitch,
        height: header.height,
        format,
    };
    decompressor
        .decompress(bytes, image)
        .map_err(decode_error)?;
    Ok(Some(pixels))
}

fn decode_error(error: impl std::fmt::Display) -> ThumbnailError {
    super::decode_error(MediaType::Jpeg, error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::fixture;

    #[test]
    fn decodes_at_the_smallest_reduction_twice_the_thumbnail() {
        // 800×500 to a 100×63 thumbnail: 1/2 gives 400×250; 1/4 would give 125 rows, short of
        // twice 63.
        let decoded = decode(
            &fixture("jpeg-baseline.jpg"),
            &LimitsConfig::default(),
            &crate::decode::fit_100,
        )
        .unwrap();
        assert_eq!((decoded.source_width, decoded.source_height), (800, 500));
        assert_eq!((decoded.image.width(), decoded.image.height()), (400, 250));
        // A box as large as the image: no reduction.
        let decoded = decode(
            &fixture("jpeg-baseline.jpg"),
            &LimitsConfig::default(),
            &|w, h| (w, h),
        )
        .unwrap();
        assert_eq!((decoded.image.width(), decoded.image.height()), (800, 500));
    }

    #[test]
    fn reduces_by_the_upright_box_and_turns_upright() {
        let bytes = fixture("jpeg-exif-orientation-6.jpg");
        let header = Header::read(&bytes, &LimitsConfig::default()).unwrap();
        assert_eq!(header.orientation, Orientation::Rotate90);
        let decoded = decode(&bytes, &LimitsConfig::default(), &crate::decode::fit_100).unwrap();
        assert_eq!(
            (decoded.source_width, decoded.source_height),
            (header.height, header.width)
        );
        assert!(decoded.image.height() > decoded.image.width());
    }

    #[test]
    fn dropping_the_scans_an_eighth_scale_decode_does_not_read_changes_no_pixel() {
        let limits = LimitsConfig::default();
        for (name, grey, drops) in [
            ("jpeg-progressive.jpg", false, true),
            ("jpeg-progressive-444.jpg", false, true),
            ("jpeg-progressive-grey.jpg", true, true),
            ("jpeg-progressive-scans.jpg", false, true),
            // No luma AC to drop: the file is decoded as it is.
            ("jpeg-progressive-no-luma-ac.jpg", false, false),
        ] {
            let bytes = fixture(name);
            let Some(kept) = jpeg_scans::for_eighth_scale(&bytes) else {
                assert!(!drops, "{name}: nothing dropped");
                continue;
            };
            assert!(drops, "{name}: scans dropped");
            assert!(kept.len() < bytes.len() * 2 / 3, "{name}: {}", kept.len());
            let whole = decode_scaled(&bytes, 8, grey, &limits).unwrap().unwrap();
            let fewer = decode_scaled(&kept, 8, grey, &limits).unwrap().unwrap();
            assert_eq!(whole.len(), fewer.len(), "{name}");
            assert!(whole == fewer, "{name}: pixels differ");
        }
        // And through `decode`, which drops them itself.
        let bytes = fixture("jpeg-progressive-444.jpg");
        let decoded = decode(&bytes, &limits, &|_, _| (20, 20)).unwrap();
        let whole = decode_scaled(&bytes, 8, false, &limits).unwrap().unwrap();
        assert_eq!(decoded.image.as_bytes(), whole.as_slice());
    }

    #[test]
    fn grey_and_cmyk_decode() {
        let grey = decode(
            &fixture("jpeg-grayscale.jpg"),
            &LimitsConfig::default(),
            &|_, _| (20, 20),
        )
        .unwrap();
        assert!(matches!(grey.image, DynamicImage::ImageLuma8(_)));
        let cmyk = decode(
            &fixture("jpeg-cmyk.jpg"),
            &LimitsConfig::default(),
            &|_, _| (20, 20),
        )
        .unwrap();
        assert_eq!((cmyk.source_width, cmyk.source_height), (400, 250));
    }
}
