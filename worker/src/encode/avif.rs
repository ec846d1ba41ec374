//! AVIF output through libheif and libaom (the `heif` feature; libheif finds the system's
//! libaom, Debian's `libaom-dev`, when it is built).
//!
//! Thumbnails are small and many, so the encoder is set for speed: libaom at its fastest
//! still-image speed (9), one thread per encode (the worker already runs one job per core),
//! 4:2:0 chroma. The variant's quality (1–100) is libheif's quality scale, which it maps to
//! libaom's quantizer. Alpha is kept, as its own AV1 image. sRGB is tagged by the CICP code
//! points libheif writes by default (BT.709 primaries, sRGB transfer); a kept profile is
//! embedded as a `colr` box of type `prof`.

use image::DynamicImage;
use libheif_rs::{
    Channel, ColorProfileRaw, ColorSpace, CompressionFormat, EncoderParameterValue, EncoderQuality,
    HeifContext, Image, LibHeif, RgbChroma, color_profile_types,
};

use super::Tag;
use crate::error::ThumbnailError;

/// Whether libheif was built with an AV1 encoder (it finds libaom when it is built; without
/// it, libheif still decodes AVIF with dav1d but cannot write it). Asked once.
pub fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        LibHeif::new()
            .encoder_for_format(CompressionFormat::Av1)
            .is_ok()
    })
}

/// libaom's `cpu-used`: 9 is the fastest its still-image mode offers.
const SPEED: i32 = 9;

/// Encodes an 8-bit image (grey, grey with alpha, RGB or RGBA) as AVIF, tagged with `tag`.
pub fn encode(image: &DynamicImage, quality: u8, tag: Tag<'_>) -> Result<Vec<u8>, ThumbnailError> {
    let failed = |error: libheif_rs::HeifError| ThumbnailError::Encode(format!("AVIF: {error}"));
    let (width, height) = (image.width(), image.height());
    let (chroma, channels, bytes) = if image.color().has_alpha() {
        (RgbChroma::Rgba, 4, image.to_rgba8().into_raw())
    } else {
        (RgbChroma::Rgb, 3, image.to_rgb8().into_raw())
    };
    let mut heif_image = Image::new(width, height, ColorSpace::Rgb(chroma)).map_err(failed)?;
    heif_image
        .create_plane(Channel::Interleaved, width, height, 8)
        .map_err(failed)?;
    let planes = heif_image.planes_mut();
    let plane = planes
        .interleaved
        .ok_or_else(|| ThumbnailError::Encode("AVIF: no interleaved plane".into()))?;
    let row = width as usize * channels;
    for (target, source) in plane.data.chunks_mut(plane.stride).zip(bytes.chunks(row)) {
        target[..row].copy_from_slice(source);
    }
    if let Tag::Icc(icc) = tag {
        heif_image
            .set_color_profile_raw(&ColorProfileRaw::new(
                color_profile_types::PROF,
                icc.to_vec(),
            ))
            .map_err(failed)?;
    }

    let lib = LibHeif::new();
    let mut encoder = lib
        .encoder_for_format(CompressionFormat::Av1)
        .map_err(failed)?;
    encoder
        .set_quality(EncoderQuality::Lossy(quality.min(100)))
        .map_err(failed)?;
    encoder
        .set_parameter_value("speed", EncoderParameterValue::Int(SPEED))
        .map_err(failed)?;
    encoder
        .set_parameter_value("threads", EncoderParameterValue::Int(1))
        .map_err(failed)?;
    encoder
        .set_parameter_value("chroma", EncoderParameterValue::String("420".into()))
        .map_err(failed)?;
    let mut context = HeifContext::new().map_err(failed)?;
    context
        .encode_image(&heif_image, &mut encoder, None)
        .map_err(failed)?;
    context.write_to_bytes().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::config::LimitsConfig;
    use common::media::{MediaType, Sniffed, sniff};

    /// A smooth gradient (what photographs mostly are), with alpha falling from left to right.
    fn gradient(width: u32, height: u32) -> image::RgbaImage {
        image::RgbaImage::from_fn(width, height, |x, y| {
            image::Rgba([
                (x * 255 / width) as u8,
                (y * 255 / height) as u8,
                128,
                255 - (x * 200 / width) as u8,
            ])
        })
    }

    /// Peak signal-to-noise ratio over every channel, in dB.
    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        let squares: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum();
        10.0 * (255.0_f64.powi(2) / (squares / a.len() as f64)).log10()
    }

    #[test]
    fn decodes_back_close_to_the_source_with_its_alpha() {
        let source = gradient(400, 300);
        let bytes = encode(&DynamicImage::ImageRgba8(source.clone()), 80, Tag::Srgb).unwrap();
        assert_eq!(sniff(&bytes), Sniffed::Media(MediaType::Avif));
        let decoded = crate::decode::decode(
            &bytes,
            MediaType::Avif,
            &LimitsConfig::default(),
            &|w, h| (w, h),
        )
        .unwrap();
        let back = decoded.image.to_rgba8();
        assert_eq!(back.dimensions(), (400, 300));
        let quality = psnr(source.as_raw(), back.as_raw());
        assert!(quality > 35.0, "PSNR {quality:.1} dB");
    }

    #[test]
    fn lower_quality_makes_smaller_files() {
        let source =
            DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(gradient(256, 256)).to_rgb8());
        let small = encode(&source, 20, Tag::Srgb).unwrap();
        let large = encode(&source, 95, Tag::Srgb).unwrap();
        assert!(
            small.len() < large.len(),
            "{} vs {}",
            small.len(),
            large.len()
        );
    }
}
