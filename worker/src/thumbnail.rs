//! The thumbnail pipeline for one image: decode once → read its colours → for each
//! variant, place the crop → resize → to sRGB (or keep) → encode; the placeholders from the
//! same decode; panics contained.
//!
//! The decode leaves room for the largest variant (shrink-on-load stops at twice its size),
//! and every variant is made from that one decode. Its colour description is read once
//! ([`crate::colour`]), and so is the content analysis `attention` and `entropy` crops need
//! ([`crate::gravity`]), when a variant needs it. A variant that cannot be resized or
//! encoded fails alone; a source that cannot be decoded fails them all.

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::config::{ColorMode, LimitsConfig, PlaceholderKind};
use common::media::MediaType;
use common::message::JobVariant;
use common::record::{Placeholder, ThumbnailInfo};
use common::variant::{Fit, Gravity, Variant};
use image::DynamicImage;

use crate::colour::Colour;
use crate::encode::Tag;
use crate::error::ThumbnailError;
use crate::gravity::Analysis;
use crate::{animation, decode, encode, geometry, placeholder, resize, video};

/// One variant made.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    /// The encoded thumbnail.
    pub bytes: Vec<u8>,
    /// Its format and size.
    pub info: ThumbnailInfo,
}

/// Every variant of one image.
#[derive(Debug)]
pub struct Thumbnails {
    /// The source's upright width.
    pub source_width: u32,
    /// The source's upright height.
    pub source_height: u32,
    /// Each variant asked for, in order, made or failed.
    pub variants: Vec<(JobVariant, Result<Thumbnail, ThumbnailError>)>,
    /// The placeholders asked for.
    pub placeholder: Option<Placeholder>,
    /// What was worked around (a colour profile that could not be used), for the record.
    pub warnings: Vec<String>,
}

/// Makes every one of `variants` of `bytes`, an image of `media_type`, and the
/// `placeholders` asked for. CPU-bound and blocking: run it on a blocking thread. A panic
/// inside a decoder is caught and reported as [`ThumbnailError::Panic`], so that a hostile
/// file ends as a failed job, not a dead worker.
pub fn make(
    bytes: &[u8],
    media_type: MediaType,
    variants: &[JobVariant],
    limits: &LimitsConfig,
    placeholders: &[PlaceholderKind],
) -> Result<Thumbnails, ThumbnailError> {
    guarded(media_type, || {
        let animated =
            variants.iter().any(|v| v.variant.animated) && animation::animates(media_type);
        let facts = if animated {
            animation::facts(bytes, media_type, limits)?
        } else {
            None
        };
        // With an animation, its variants are made frame by frame; the rest, and the
        // placeholders, from the first frame.
        let (moving, still): (Vec<JobVariant>, Vec<JobVariant>) = variants
            .iter()
            .cloned()
            .partition(|v| facts.is_some() && v.variant.animated);
        let requests: Vec<Variant> = still.iter().map(|v| v.variant.clone()).collect();
        let max_side = limits.max_thumbnail_side;
        let target = |w, h| geometry::largest_scaled(&requests, w, h, max_side);
        let decoded = decode::decode(bytes, media_type, limits, &target)?;
        let mut thumbnails = render(decoded, &still, limits, placeholders);
        if let Some(facts) = facts {
            let colour = Colour::of(&animation::colour(bytes, media_type), false);
            let mut frames = animation::frames(bytes, media_type, limits)?;
            let made = animation::make(&mut *frames, &facts, media_type, &moving, &colour, limits);
            thumbnails.variants.extend(made);
            thumbnails
                .variants
                .sort_by_key(|(job_variant, _)| job_variant.index);
        }
        Ok(thumbnails)
    })
}

/// Makes every one of `variants` of an image already decoded (a video's poster frame, a
/// drawn document), as [`make`] does after its decode; the `animated` ones from the video's
/// `preview`, when there is one.
pub fn make_from(
    decoded: decode::Decoded,
    preview: Option<video::preview::Preview>,
    media_type: MediaType,
    variants: &[JobVariant],
    limits: &LimitsConfig,
    placeholders: &[PlaceholderKind],
) -> Result<Thumbnails, ThumbnailError> {
    guarded(media_type, || {
        let Some(preview) = preview else {
            return Ok(render(decoded, variants, limits, placeholders));
        };
        let (moving, still): (Vec<JobVariant>, Vec<JobVariant>) =
            variants.iter().cloned().partition(|v| v.variant.animated);
        let mut thumbnails = render(decoded, &still, limits, placeholders);
        let colour = Colour::of(&crate::colour::Description::Unstated, false);
        let made = animation::make(
            &mut preview.frames(),
            &preview.facts(),
            media_type,
            &moving,
            &colour,
            limits,
        );
        thumbnails.variants.extend(made);
        thumbnails
            .variants
            .sort_by_key(|(job_variant, _)| job_variant.index);
        Ok(thumbnails)
    })
}

/// Runs `work`, turning a panic into [`ThumbnailError::Panic`].
fn guarded(
    media_type: MediaType,
    work: impl FnOnce() -> Result<Thumbnails, ThumbnailError>,
) -> Result<Thumbnails, ThumbnailError> {
    catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        tracing::error!(%media_type, %message, "decoder panicked");
        Err(ThumbnailError::Panic(message))
    })
}

/// Places, resizes, converts and encodes each variant of one decoded image, and makes its
/// placeholders.
fn render(
    decoded: decode::Decoded,
    variants: &[JobVariant],
    limits: &LimitsConfig,
    placeholders: &[PlaceholderKind],
) -> Thumbnails {
    let max_side = limits.max_thumbnail_side;
    let decode::Decoded {
        image,
        source_width,
        source_height,
        colour,
    } = decoded;
    let grey = !image.color().has_color();
    let colour = Colour::of(&colour, grey);
    let mut analysis: Option<Analysis> = None;
    let made = variants
        .iter()
        .map(|job_variant| {
            let variant = &job_variant.variant;
            let plan = place(
                variant,
                geometry::plan(variant, source_width, source_height, max_side),
                &image,
                &mut analysis,
            );
            let made = resize::resize(&image, &plan).and_then(|resized| {
                let (pixels, tag) = match (variant.color, colour.embedded()) {
                    (ColorMode::Keep, Some(icc)) => (resized, Tag::Icc(icc)),
                    _ => (colour.to_srgb(resized), Tag::Srgb),
                };
                let (bytes, media_type) = encode::encode(
                    pixels,
                    variant.format,
                    variant.quality,
                    variant.lossless,
                    tag,
                )?;
                Ok(Thumbnail {
                    info: ThumbnailInfo {
                        media_type,
                        width: plan.width,
                        height: plan.height,
                        size: bytes.len() as u64,
                        frames: None,
                    },
                    bytes,
                })
            });
            (job_variant.clone(), made)
        })
        .collect();
    Thumbnails {
        source_width,
        source_height,
        variants: made,
        placeholder: placeholder::make(&image, &colour, placeholders),
        warnings: colour.warning().map(str::to_owned).into_iter().collect(),
    }
}

/// `plan` with its `cover` crop placed on `image` for the `attention` and `entropy`
/// gravities (the content `analysis` made once, on first need); as it was for the others.
pub(crate) fn place(
    variant: &Variant,
    mut plan: geometry::Plan,
    image: &DynamicImage,
    analysis: &mut Option<Analysis>,
) -> geometry::Plan {
    if let (Fit::Cover, Some(crop)) = (variant.fit, plan.crop) {
        let placed = match variant.gravity {
            Gravity::Attention => Some(
                analysis
                    .get_or_insert_with(|| Analysis::of(image))
                    .attention(crop),
            ),
            Gravity::Entropy => Some(
                analysis
                    .get_or_insert_with(|| Analysis::of(image))
                    .entropy(crop),
            ),
            _ => None,
        };
        if placed.is_some() {
            plan.crop = placed;
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use common::config::{OutputFormat, ThumbnailConfig};
    use common::variant::Fit;
    use image::ImageFormat;

    use super::*;

    fn default_variants() -> Vec<JobVariant> {
        vec![JobVariant {
            index: 0,
            variant: Variant::default_for(&ThumbnailConfig::default()),
        }]
    }

    #[test]
    fn makes_a_fitted_jpeg_of_an_opaque_png() {
        let mut png = Vec::new();
        DynamicImage::new_rgb8(400, 200)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let made = make(
            &png,
            MediaType::Png,
            &default_variants(),
            &LimitsConfig::default(),
            &[],
        )
        .unwrap();
        assert_eq!((made.source_width, made.source_height), (400, 200));
        let thumbnail = made.variants[0].1.as_ref().unwrap();
        assert_eq!(thumbnail.info.media_type, MediaType::Jpeg);
        assert_eq!((thumbnail.info.width, thumbnail.info.height), (100, 50));
        let decoded = image::load_from_memory(&thumbnail.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (100, 50));
    }

    #[test]
    fn makes_every_variant_from_one_decode() {
        let mut png = Vec::new();
        DynamicImage::new_rgba8(400, 200)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let variants: Vec<JobVariant> = [
            ("100x100", Fit::Contain, OutputFormat::Auto),
            ("150x150", Fit::Cover, OutputFormat::Webp),
            ("64x32", Fit::Fill, OutputFormat::Jpeg),
        ]
        .into_iter()
        .enumerate()
        .map(|(index, (size, fit, format))| JobVariant {
            index: index as u16,
            variant: Variant {
                name: size.to_owned(),
                size: size.parse().unwrap(),
                fit,
                format,
                quality: 80,
                enlarge: false,
                // The pure-Rust build writes lossless WebP only.
                lossless: !cfg!(feature = "libwebp"),
                ..Variant::default_for(&ThumbnailConfig::default())
            },
        })
        .collect();
        let made = make(
            &png,
            MediaType::Png,
            &variants,
            &LimitsConfig::default(),
            &[],
        )
        .unwrap();
        let got: Vec<(u32, u32, MediaType)> = made
            .variants
            .iter()
            .map(|(_, made)| {
                let info = &made.as_ref().unwrap().info;
                (info.width, info.height, info.media_type)
            })
            .collect();
        assert_eq!(
            got,
            [
                (100, 50, MediaType::Png),
                (150, 150, MediaType::Webp),
                (64, 32, MediaType::Jpeg)
            ]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for media_type in common::media::ALL.into_iter().filter(|m| !m.is_video()) {
            let error = make(
                b"\0\x01garbage",
                media_type,
                &default_variants(),
                &LimitsConfig::default(),
                &[],
            )
            .unwrap_err();
            // Undecodable; or, for a format this build does not read, refused as such.
            let expected = match error {
                ThumbnailError::NotInThisBuild { .. } => 415,
                _ => 422,
            };
            assert_eq!(error.code(), expected, "{media_type}: {error}");
        }
    }
}
