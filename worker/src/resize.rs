//! Resizing: fit the image in the thumbnail box with fast_image_resize's SIMD convolution.
//!
//! The aspect ratio is kept, the image is never enlarged, and each side is at least 1 px.
//! Resizing runs at the source's own bit depth and is alpha-aware (colour is multiplied by
//! alpha before filtering and divided after), so transparent pixels do not bleed dark fringes.
//!
//! A Lanczos3 kernel spans six source pixels per thumbnail pixel on each axis, so for large
//! shrink factors its cost grows with the factor. Beyond [`PRE_REDUCTION_GAP`] × 2 the image
//! is first brought down to [`PRE_REDUCTION_GAP`] × the thumbnail by a box filter (an area
//! average: one tap per source pixel, no aliasing), then Lanczos3 finishes, as libvips'
//! shrink-then-reduce and Pillow's `reducing_gap` do.

use fast_image_resize::{FilterType, IntoImageView, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;

use crate::error::ThumbnailError;

/// The size of an image of `width`×`height` fitted in a `box_width`×`box_height` box: aspect
/// ratio kept, never larger than the source, at least 1 px per side.
pub fn fit(width: u32, height: u32, box_width: u32, box_height: u32) -> (u32, u32) {
    if width <= box_width && height <= box_height {
        return (width.max(1), height.max(1));
    }
    let scale = f64::min(
        f64::from(box_width) / f64::from(width),
        f64::from(box_height) / f64::from(height),
    );
    let side = |source: u32, bound: u32| {
        // The rounded value lies in 1..=bound, so the conversion is exact.
        (f64::from(source) * scale)
            .round()
            .clamp(1.0, f64::from(bound)) as u32
    };
    (side(width, box_width), side(height, box_height))
}

/// The SIMD extension fast_image_resize picked for this CPU (`Avx2`, `Sse4_1`, `Neon`, or
/// `None` for plain Rust), for start-up logs and benchmark reports.
pub fn simd() -> String {
    format!("{:?}", Resizer::new().cpu_extensions())
}

/// How many times the thumbnail's size the box pre-reduction leaves for Lanczos3 to finish.
pub const PRE_REDUCTION_GAP: u32 = 2;

/// Resizes `image` to exactly `width`×`height`. An image already that size is returned as is.
pub fn resize(
    image: DynamicImage,
    width: u32,
    height: u32,
) -> Result<DynamicImage, ThumbnailError> {
    if (image.width(), image.height()) == (width, height) {
        return Ok(image);
    }
    // fast_image_resize handles every layout `image` decodes to but 32-bit grey, which no
    // supported format produces; convert it should it ever appear.
    let source = if image.pixel_type().is_some() {
        image
    } else {
        DynamicImage::ImageRgba8(image.to_rgba8())
    };
    let mut resizer = Resizer::new();
    let source = match pre_reduced_size((source.width(), source.height()), (width, height)) {
        Some((w, h)) => convolve(&mut resizer, &source, w, h, FilterType::Box)?,
        None => source,
    };
    convolve(&mut resizer, &source, width, height, FilterType::Lanczos3)
}

/// The size the box filter brings a `source`-sized image to before Lanczos3 makes it
/// `target`: [`PRE_REDUCTION_GAP`] × `target`, when the source is at least twice that on both
/// axes; `None` when Lanczos3 alone is cheap enough.
fn pre_reduced_size(source: (u32, u32), target: (u32, u32)) -> Option<(u32, u32)> {
    let gap = (target.0 * PRE_REDUCTION_GAP, target.1 * PRE_REDUCTION_GAP);
    (source.0 >= 2 * gap.0 && source.1 >= 2 * gap.1).then_some(gap)
}

/// `source` resized to `width`×`height` by a convolution with `filter`.
fn convolve(
    resizer: &mut Resizer,
    source: &DynamicImage,
    width: u32,
    height: u32,
    filter: FilterType,
) -> Result<DynamicImage, ThumbnailError> {
    let mut target = DynamicImage::new(width, height, source.color());
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    resizer
        .resize(source, &mut target, &options)
        .map_err(|error| ThumbnailError::Resize(error.to_string()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_keeping_aspect_and_never_upscaling() {
        assert_eq!(fit(4000, 3000, 100, 100), (100, 75));
        assert_eq!(fit(3000, 4000, 100, 100), (75, 100));
        assert_eq!(fit(50, 20, 100, 100), (50, 20));
        assert_eq!(fit(100, 100, 100, 100), (100, 100));
        assert_eq!(fit(10_000, 1, 100, 100), (100, 1));
        assert_eq!(fit(1, 10_000, 100, 100), (1, 100));
        assert_eq!(fit(200, 50, 100, 40), (100, 25));
    }

    #[test]
    fn resizes_every_layout() {
        let sources = [
            DynamicImage::new_luma8(300, 200),
            DynamicImage::new_luma_a8(300, 200),
            DynamicImage::new_rgb8(300, 200),
            DynamicImage::new_rgba8(300, 200),
            DynamicImage::new_rgb16(300, 200),
            DynamicImage::new_rgba16(300, 200),
            DynamicImage::new_rgb32f(300, 200),
        ];
        for source in sources {
            let color = source.color();
            let out = resize(source, 30, 20).unwrap();
            assert_eq!((out.width(), out.height(), out.color()), (30, 20, color));
        }
    }

    /// Vertical stripes one pixel wide, alternately black and white.
    fn stripes(width: u32, height: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(image::RgbImage::from_fn(width, height, |x, _| {
            image::Rgb([if x % 2 == 0 { 0 } else { 255 }; 3])
        }))
    }

    #[test]
    fn pre_reduces_only_beyond_four_times_the_thumbnail() {
        assert_eq!(pre_reduced_size((3840, 2160), (100, 56)), Some((200, 112)));
        assert_eq!(pre_reduced_size((400, 224), (100, 56)), Some((200, 112)));
        assert_eq!(pre_reduced_size((399, 224), (100, 56)), None);
        assert_eq!(pre_reduced_size((800, 223), (100, 56)), None);
    }

    #[test]
    fn large_reductions_average_every_source_pixel() {
        // 40× smaller: pre-reduced by the box filter. Point sampling would keep one phase
        // of the stripes (all black or all white); averaging gives mid-grey everywhere.
        let out = resize(stripes(4000, 400), 100, 10).unwrap().to_rgb8();
        for pixel in out.pixels() {
            assert!(pixel[0].abs_diff(128) <= 2, "not mid-grey: {pixel:?}");
        }
    }

    #[test]
    fn pre_reduction_stays_close_to_lanczos_alone() {
        // A smooth gradient with a sharp edge: the two-step result must match the one-step
        // Lanczos3 result within a few levels.
        let source = DynamicImage::ImageRgb8(image::RgbImage::from_fn(2000, 1000, |x, y| {
            let edge = if x < 1000 { 0 } else { 80 };
            image::Rgb([(x / 8) as u8, (y / 4) as u8, edge as u8])
        }));
        let two_step = resize(source.clone(), 100, 50).unwrap().to_rgb8();
        let one_step = convolve(&mut Resizer::new(), &source, 100, 50, FilterType::Lanczos3)
            .unwrap()
            .to_rgb8();
        let worst = two_step
            .as_raw()
            .iter()
            .zip(one_step.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 6, "differs by {worst} levels");
    }

    #[test]
    fn alpha_does_not_darken_edges() {
        // Left half opaque white, right half fully transparent black.
        let mut source = image::RgbaImage::new(200, 10);
        for (x, _, pixel) in source.enumerate_pixels_mut() {
            *pixel = if x < 100 {
                image::Rgba([255, 255, 255, 255])
            } else {
                image::Rgba([0, 0, 0, 0])
            };
        }
        let out = resize(DynamicImage::ImageRgba8(source), 20, 1)
            .unwrap()
            .to_rgba8();
        for pixel in out.pixels().filter(|p| p[3] > 0) {
            assert!(
                pixel[0] >= 250,
                "premultiplied resize keeps white white: {pixel:?}"
            );
        }
    }
}
