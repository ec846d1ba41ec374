//! Pixels from a source profile to sRGB, through moxcms, at the image's own depth.
//!
//! 8-bit images convert through 8-bit transforms, 16-bit through 16-bit ones (moxcms keeps
//! 16-bit precision end to end), floating point through 16 bits. Alpha passes through.
//! Grey goes through a grey-to-RGB transform and comes back as grey (the green channel: a
//! neutral stays neutral in sRGB).

use image::{DynamicImage, ImageBuffer};
use moxcms::{ColorProfile, Layout};

use super::profile::options_for;

/// `image` converted from `profile` to sRGB; unchanged (with a log line) if the engine
/// refuses the layout.
pub fn to_srgb(profile: &ColorProfile, image: DynamicImage) -> DynamicImage {
    match convert(profile, &image) {
        Ok(converted) => converted,
        Err(error) => {
            tracing::warn!(%error, "colour conversion refused; the thumbnail keeps its values");
            image
        }
    }
}

fn convert(profile: &ColorProfile, image: &DynamicImage) -> Result<DynamicImage, moxcms::CmsError> {
    let srgb = ColorProfile::new_srgb();
    let options = options_for(profile);
    let (width, height) = (image.width(), image.height());
    let eight = |from: Layout, to: Layout, pixels: &[u8], channels: usize| {
        let transform = profile.create_transform_8bit(from, &srgb, to, options)?;
        let mut out = vec![0u8; width as usize * height as usize * channels];
        transform.transform(pixels, &mut out)?;
        Ok::<_, moxcms::CmsError>(out)
    };
    let sixteen = |from: Layout, to: Layout, pixels: &[u16], channels: usize| {
        let transform = profile.create_transform_16bit(from, &srgb, to, options)?;
        let mut out = vec![0u16; width as usize * height as usize * channels];
        transform.transform(pixels, &mut out)?;
        Ok::<_, moxcms::CmsError>(out)
    };
    let short = || moxcms::CmsError::LaneSizeMismatch;
    Ok(match image {
        DynamicImage::ImageRgb8(rgb) => DynamicImage::ImageRgb8(
            ImageBuffer::from_raw(width, height, eight(Layout::Rgb, Layout::Rgb, rgb, 3)?)
                .ok_or_else(short)?,
        ),
        DynamicImage::ImageRgba8(rgba) => DynamicImage::ImageRgba8(
            ImageBuffer::from_raw(width, height, eight(Layout::Rgba, Layout::Rgba, rgba, 4)?)
                .ok_or_else(short)?,
        ),
        DynamicImage::ImageLuma8(grey) => {
            let rgb = eight(Layout::Gray, Layout::Rgb, grey, 3)?;
            DynamicImage::ImageLuma8(
                ImageBuffer::from_raw(width, height, green(&rgb, 3)).ok_or_else(short)?,
            )
        }
        DynamicImage::ImageLumaA8(grey) => {
            let rgba = eight(Layout::GrayAlpha, Layout::Rgba, grey, 4)?;
            DynamicImage::ImageLumaA8(
                ImageBuffer::from_raw(width, height, green_and_alpha(&rgba)).ok_or_else(short)?,
            )
        }
        DynamicImage::ImageRgb16(rgb) => DynamicImage::ImageRgb16(
            ImageBuffer::from_raw(width, height, sixteen(Layout::Rgb, Layout::Rgb, rgb, 3)?)
                .ok_or_else(short)?,
        ),
        DynamicImage::ImageRgba16(rgba) => DynamicImage::ImageRgba16(
            ImageBuffer::from_raw(width, height, sixteen(Layout::Rgba, Layout::Rgba, rgba, 4)?)
                .ok_or_else(short)?,
        ),
        DynamicImage::ImageLuma16(grey) => {
            let rgb = sixteen(Layout::Gray, Layout::Rgb, grey, 3)?;
            DynamicImage::ImageLuma16(
                ImageBuffer::from_raw(width, height, green(&rgb, 3)).ok_or_else(short)?,
            )
        }
        DynamicImage::ImageLumaA16(grey) => {
            let rgba = sixteen(Layout::GrayAlpha, Layout::Rgba, grey, 4)?;
            DynamicImage::ImageLumaA16(
                ImageBuffer::from_raw(width, height, green_and_alpha(&rgba)).ok_or_else(short)?,
            )
        }
        other if other.color().has_alpha() => {
            return convert(profile, &DynamicImage::ImageRgba16(other.to_rgba16()));
        }
        other => return convert(profile, &DynamicImage::ImageRgb16(other.to_rgb16())),
    })
}

/// The green channel of packed pixels of `channels` samples.
fn green<T: Copy>(pixels: &[T], channels: usize) -> Vec<T> {
    pixels.chunks_exact(channels).map(|p| p[1]).collect()
}

/// Green and alpha of packed RGBA pixels.
fn green_and_alpha<T: Copy>(pixels: &[T]) -> Vec<T> {
    pixels.chunks_exact(4).flat_map(|p| [p[1], p[3]]).collect()
}

/// Packed CMYK pixels (0 = no ink; an Adobe file's inverted values already turned back)
/// converted through their CMYK `profile` to packed 8-bit sRGB. `Err` is the engine's reason:
/// the caller falls back to the plain formula.
pub fn cmyk_to_rgb(cmyk: &[u8], profile: &ColorProfile) -> Result<Vec<u8>, moxcms::CmsError> {
    let transform = profile.create_transform_8bit(
        Layout::Rgba,
        &ColorProfile::new_srgb(),
        Layout::Rgb,
        options_for(profile),
    )?;
    let mut out = vec![0u8; cmyk.len() / 4 * 3];
    transform.transform(cmyk, &mut out)?;
    Ok(out)
}
