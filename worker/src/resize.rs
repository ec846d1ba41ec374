//! Resizing: the decoded image to one variant's [`Plan`] (size and crop, from
//! [`crate::geometry`]) with fast_image_resize's SIMD convolution.
//!
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
use crate::geometry::Plan;

/// The SIMD extension fast_image_resize picked for this CPU (`Avx2`, `Sse4_1`, `Neon`, or
/// `None` for plain Rust), for start-up logs and benchmark reports.
pub fn simd() -> String {
    format!("{:?}", Resizer::new().cpu_extensions())
}

/// How many times the thumbnail's size the box pre-reduction leaves for Lanczos3 to finish.
pub const PRE_REDUCTION_GAP: u32 = 2;

/// Resizes the part of `image` that `plan` shows to exactly the plan's size. The image is
/// only read, so that every variant is made from the same decode.
pub fn resize(image: &DynamicImage, plan: &Plan) -> Result<DynamicImage, ThumbnailError> {
    let (width, height) = (plan.width, plan.height);
    let (iw, ih) = (f64::from(image.width()), f64::from(image.height()));
    let crop = plan.crop.map(|crop| {
        (
            crop.left * iw,
            crop.top * ih,
            crop.width * iw,
            crop.height * ih,
        )
    });
    if crop.is_none() && (image.width(), image.height()) == (width, height) {
        return Ok(image.clone());
    }
    // fast_image_resize handles every layout `image` decodes to but 32-bit grey, which no
    // supported format produces; convert it should it ever appear.
    let converted;
    let source = if image.pixel_type().is_some() {
        image
    } else {
        converted = DynamicImage::ImageRgba8(image.to_rgba8());
        &converted
    };
    let region = crop.map_or((image.width(), image.height()), |(_, _, w, h)| {
        (w.round() as u32, h.round() as u32)
    });
    let mut resizer = Resizer::new();
    match pre_reduced_size(region, (width, height)) {
        Some((w, h)) => {
            let reduced = convolve(&mut resizer, source, crop, w, h, FilterType::Box)?;
            convolve(
                &mut resizer,
                &reduced,
                None,
                width,
                height,
                FilterType::Lanczos3,
            )
        }
        None => convolve(
            &mut resizer,
            source,
            crop,
            width,
            height,
            FilterType::Lanczos3,
        ),
    }
}

/// `image` fitted in `side`×`side` (never enlarged), by the resizer.
pub fn fitted(image: &DynamicImage, side: u32) -> DynamicImage {
    let (w, h) = (image.width().max(1), image.height().max(1));
    if w.max(h) <= side {
        return image.clone();
    }
    let scale = f64::from(side) / f64::from(w.max(h));
    let (sw, sh) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    let plan = Plan {
        width: sw,
        height: sh,
        crop: None,
        scaled: (sw, sh),
    };
    resize(image, &plan).unwrap_or_else(|_| image.thumbnail_exact(sw, sh))
}

/// The size the box filter brings a `source`-sized image to before Lanczos3 makes it
/// `target`: [`PRE_REDUCTION_GAP`] × `target`, when the source is at least twice that on both
/// axes; `None` when Lanczos3 alone is cheap enough.
fn pre_reduced_size(source: (u32, u32), target: (u32, u32)) -> Option<(u32, u32)> {
    let gap = (target.0 * PRE_REDUCTION_GAP, target.1 * PRE_REDUCTION_GAP);
    (source.0 >= 2 * gap.0 && source.1 >= 2 * gap.1).then_some(gap)
}

/// `source` (or its `crop`: left, top, width, height in pixels) resized to `width`×`height`
/// by a convolution with `filter`.
fn convolve(
    resizer: &mut Resizer,
    source: &DynamicImage,
    crop: Option<(f64, f64, f64, f64)>,
    width: u32,
    height: u32,
    filter: FilterType,
) -> Result<DynamicImage, ThumbnailError> {
    let mut target = DynamicImage::new(width, height, source.color());
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(filter));
    if let Some((left, top, w, h)) = crop {
        options = options.crop(left, top, w, h);
    }
    resizer
        .resize(source, &mut target, &options)
        .map_err(|error| ThumbnailError::Resize(error.to_string()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(width: u32, height: u32) -> Plan {
        Plan {
            width,
            height,
            crop: None,
            scaled: (width, height),
        }
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
            let out = resize(&source, &plan(30, 20)).unwrap();
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
        let out = resize(&stripes(4000, 400), &plan(100, 10))
            .unwrap()
            .to_rgb8();
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
        let two_step = resize(&source, &plan(100, 50)).unwrap().to_rgb8();
        let one_step = convolve(
            &mut Resizer::new(),
            &source,
            None,
            100,
            50,
            FilterType::Lanczos3,
        )
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
        let out = resize(&DynamicImage::ImageRgba8(source), &plan(20, 1))
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

#[cfg(test)]
mod crop_tests {
    use super::*;
    use crate::geometry::Crop;

    #[test]
    fn a_crop_shows_only_its_region() {
        // Left third red, middle third green, right third blue: the centre square is green.
        let source = DynamicImage::ImageRgb8(image::RgbImage::from_fn(300, 100, |x, _| {
            image::Rgb(match x / 100 {
                0 => [255, 0, 0],
                1 => [0, 255, 0],
                _ => [0, 0, 255],
            })
        }));
        let plan = Plan {
            width: 10,
            height: 10,
            crop: Some(Crop {
                left: 1.0 / 3.0,
                top: 0.0,
                width: 1.0 / 3.0,
                height: 1.0,
            }),
            scaled: (30, 10),
        };
        let out = resize(&source, &plan).unwrap().to_rgb8();
        assert_eq!(out.dimensions(), (10, 10));
        for pixel in out.pixels() {
            assert!(
                pixel[1] > 240 && pixel[0] < 15 && pixel[2] < 15,
                "{pixel:?}"
            );
        }
    }
}
