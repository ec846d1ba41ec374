//! Placeholders: what a client shows while the thumbnail loads, computed from the decoded
//! image (no second decode).
//!
//! The decoded image is brought down to at most 100×100 (ThumbHash's own limit, and plenty
//! for a 4×3 BlurHash or a colour) by the resizer, converted to sRGB like the thumbnails,
//! and then:
//! - ThumbHash through the `thumbhash` crate (Evan Wallace's reference algorithm, ported),
//!   base64;
//! - the dominant colour: pixels bucketed by their top four bits per channel (transparent
//!   ones left out), the mean colour of the fullest bucket, `#rrggbb`;
//! - BlurHash (4×3 components) through the `blurhash` crate, when asked.

use base64::Engine;
use common::config::PlaceholderKind;
use common::record::Placeholder;
use image::{DynamicImage, RgbaImage};

use crate::colour::Colour;

/// The longest side of the image placeholders are computed from.
const SIDE: u32 = 100;

/// The placeholders of `kinds` for a decoded `image` whose colours are `colour`; none when
/// no kind is asked for.
pub fn make(
    image: &DynamicImage,
    colour: &Colour,
    kinds: &[PlaceholderKind],
) -> Option<Placeholder> {
    if kinds.is_empty() {
        return None;
    }
    let small = colour
        .to_srgb(crate::resize::fitted(image, SIDE))
        .to_rgba8();
    let wants = |kind| kinds.contains(&kind);
    Some(Placeholder {
        thumbhash: wants(PlaceholderKind::Thumbhash).then(|| thumbhash(&small)),
        dominant_color: wants(PlaceholderKind::DominantColor).then(|| dominant_color(&small)),
        blurhash: wants(PlaceholderKind::Blurhash)
            .then(|| blurhash::encode(4, 3, small.width(), small.height(), small.as_raw()).ok())
            .flatten(),
    })
}

/// The ThumbHash of an image of at most 100×100, base64.
fn thumbhash(image: &RgbaImage) -> String {
    let hash = thumbhash::rgba_to_thumb_hash(
        image.width() as usize,
        image.height() as usize,
        image.as_raw(),
    );
    base64::engine::general_purpose::STANDARD.encode(hash)
}

/// The mean colour of the fullest 4-bit-per-channel bucket of the pixels that are not
/// (nearly) transparent; of all pixels when every one is.
fn dominant_color(image: &RgbaImage) -> String {
    let mut buckets = vec![(0u32, [0u64; 3]); 4096];
    let visible = image.pixels().any(|p| p[3] >= 128);
    for pixel in image.pixels().filter(|p| !visible || p[3] >= 128) {
        let [r, g, b, _] = pixel.0;
        let bucket =
            &mut buckets[usize::from(r >> 4) << 8 | usize::from(g >> 4) << 4 | usize::from(b >> 4)];
        bucket.0 += 1;
        for (sum, value) in bucket.1.iter_mut().zip([r, g, b]) {
            *sum += u64::from(value);
        }
    }
    let (count, sums) = buckets
        .into_iter()
        .max_by_key(|(count, _)| *count)
        .unwrap_or_default();
    let mean = |sum: u64| (sum + u64::from(count) / 2) / u64::from(count.max(1));
    format!(
        "#{:02x}{:02x}{:02x}",
        mean(sums[0]),
        mean(sums[1]),
        mean(sums[2])
    )
}

#[cfg(test)]
mod tests {
    use image::Rgba;

    use super::*;

    const ALL: [PlaceholderKind; 3] = [
        PlaceholderKind::Thumbhash,
        PlaceholderKind::DominantColor,
        PlaceholderKind::Blurhash,
    ];

    #[test]
    fn a_mostly_blue_picture_is_dominantly_blue_and_its_hashes_decode_to_it() {
        let image = RgbaImage::from_fn(640, 480, |x, _| {
            if x < 480 {
                Rgba([20, 60, 200, 255])
            } else {
                Rgba([240, 200, 20, 255])
            }
        });
        let made = make(&DynamicImage::ImageRgba8(image), &Colour::default(), &ALL).unwrap();
        assert_eq!(made.dominant_color.as_deref(), Some("#143cc8"));
        let hash = base64::engine::general_purpose::STANDARD
            .decode(made.thumbhash.unwrap())
            .unwrap();
        let (w, h, rgba) = thumbhash::thumb_hash_to_rgba(&hash).unwrap();
        assert!(
            (w as f64 / h as f64 - 640.0 / 480.0).abs() < 0.15,
            "{w}×{h}"
        );
        // The left of the preview is blue, the right yellow.
        let at = |x: usize| &rgba[(h / 2 * w + x) * 4..][..3];
        assert!(at(2)[2] > 150 && at(2)[0] < 80, "{:?}", at(2));
        assert!(at(w - 1)[0] > 150 && at(w - 1)[2] < 120, "{:?}", at(w - 1));
        let pixels = blurhash::decode(&made.blurhash.unwrap(), 32, 24, 1.0).unwrap();
        assert!(pixels[(12 * 32 + 2) * 4 + 2] > 150);
    }

    #[test]
    fn transparent_pixels_do_not_count_and_none_asked_is_none() {
        let image = RgbaImage::from_fn(100, 100, |x, _| {
            if x < 70 {
                Rgba([0, 0, 0, 0])
            } else {
                Rgba([200, 10, 10, 255])
            }
        });
        let made = make(
            &DynamicImage::ImageRgba8(image.clone()),
            &Colour::default(),
            &ALL,
        )
        .unwrap();
        assert_eq!(made.dominant_color.as_deref(), Some("#c80a0a"));
        assert!(make(&DynamicImage::ImageRgba8(image), &Colour::default(), &[]).is_none());
    }
}
