//! Animated thumbnails: every frame of an animated GIF or WebP (or the frames FFmpeg samples
//! from a video, [`crate::video::preview`]) resized and written as an animation, with the
//! source's timing and loops.
//!
//! Bounded before anything is decoded: [`facts`] reads the frame count and canvas size from
//! the headers (a GIF's blocks walked without decoding a pixel, a WebP's chunk headers), and
//! [`check`] refuses more than `limits.max_frames` frames, or more than
//! `limits.max_animation_pixels` in all of them, with 413 naming the limit.
//!
//! Then one frame at a time: the source composes each frame on its canvas ([`Frames`]:
//! [`gif`] disposal and transparency, [`webp`] blending and disposal), and for each variant
//! the canvas is resized to the variant's plan (a `cover` crop placed once, on the first
//! frame, and kept), converted to sRGB, and handed to its encoder
//! ([`crate::encode::animation`]), which keeps only compressed frames. What is in memory is
//! the canvas, the frame being resized and the encoders' state, whatever the frame count.

use common::config::LimitsConfig;
use common::media::MediaType;
use common::message::JobVariant;
use common::record::ThumbnailInfo;
use image::DynamicImage;

use crate::colour::{Colour, Description};
use crate::encode::animation::{Animation, Loops};
use crate::error::ThumbnailError;
use crate::geometry::{self, Plan};
use crate::gravity::Analysis;
use crate::resize;
use crate::thumbnail::{Thumbnail, place};

pub mod gif;
pub mod webp;

/// What an animation's headers say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    /// The canvas's width and height.
    pub size: (u32, u32),
    /// Its frames (counted up to one past `limits.max_frames`).
    pub frames: u32,
    /// How many times it plays (0: forever).
    pub loops: Loops,
}

/// A source of composed frames, one at a time.
pub trait Frames {
    /// The next frame, the whole canvas as shown, and how long it shows, in milliseconds;
    /// `None` after the last.
    fn next(&mut self) -> Result<Option<(&DynamicImage, u32)>, ThumbnailError>;
}

/// Whether `media_type` can hold an animation this service reads frame by frame.
pub fn animates(media_type: MediaType) -> bool {
    matches!(media_type, MediaType::Gif | MediaType::Webp)
}

/// The facts of an animated GIF or WebP, checked against the limits; `None` for a single
/// frame (made as a still).
pub fn facts(
    bytes: &[u8],
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<Option<Facts>, ThumbnailError> {
    let facts = match media_type {
        MediaType::Gif => gif::facts(bytes, limits)?,
        MediaType::Webp => webp::facts(bytes)?,
        _ => return Ok(None),
    };
    if facts.frames < 2 {
        return Ok(None);
    }
    check(&facts, media_type, limits)?;
    Ok(Some(facts))
}

/// Refuses an animation of more than `limits.max_frames` frames or
/// `limits.max_animation_pixels` pixels in all, and a canvas over `limits.max_pixels`.
pub fn check(
    facts: &Facts,
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<(), ThumbnailError> {
    let (width, height) = facts.size;
    crate::decode::check_pixels(width, height, limits.max_pixels)?;
    let too_large = |detail: String| ThumbnailError::AnimationTooLarge {
        media_type: media_type.as_str(),
        detail,
    };
    if facts.frames > limits.max_frames {
        return Err(too_large(format!(
            "more than {} frames, over limits.max_frames",
            limits.max_frames
        )));
    }
    let pixels = u64::from(facts.frames) * u64::from(width) * u64::from(height);
    if pixels > limits.max_animation_pixels {
        return Err(too_large(format!(
            "{} frames of {width}×{height} are {pixels} pixels, over \
             limits.max_animation_pixels ({})",
            facts.frames, limits.max_animation_pixels
        )));
    }
    Ok(())
}

/// What an animation says of its colours: a WebP's `ICCP` profile; a GIF says nothing.
pub fn colour(bytes: &[u8], media_type: MediaType) -> Description {
    match media_type {
        MediaType::Webp => crate::decode::metadata::webp_chunk(bytes, *b"ICCP")
            .map_or(Description::Unstated, |icc| Description::Icc(icc.to_vec())),
        _ => Description::Unstated,
    }
}

/// The frames of an animated GIF or WebP whose [`facts`] have passed.
pub fn frames<'a>(
    bytes: &'a [u8],
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<Box<dyn Frames + 'a>, ThumbnailError> {
    match media_type {
        MediaType::Gif => Ok(Box::new(gif::GifFrames::new(bytes, limits)?)),
        MediaType::Webp => webp::frames(bytes, limits),
        other => Err(crate::decode::decode_error(other, "not an animation")),
    }
}

/// One variant's animation being made: its plan and encoder, or why it failed.
struct Making {
    plan: Plan,
    animation: Animation,
    frames: u32,
}

/// Makes every one of `variants` as an animation of `frames` (from a `media_type` source
/// whose canvas size and loops `facts` gives), in the colours `colour` reads. A variant that
/// cannot be made fails alone; frames that cannot be decoded fail them all.
pub fn make(
    frames: &mut dyn Frames,
    facts: &Facts,
    media_type: MediaType,
    variants: &[JobVariant],
    colour: &Colour,
    limits: &LimitsConfig,
) -> Vec<(JobVariant, Result<Thumbnail, ThumbnailError>)> {
    let (width, height) = facts.size;
    let mut making: Vec<Result<Making, ThumbnailError>> = Vec::new();
    let mut first = true;
    let ended = loop {
        let (frame, duration) = match frames.next() {
            Ok(Some(next)) => next,
            Ok(None) => break Ok(()),
            Err(error) => break Err(error),
        };
        if first {
            first = false;
            let mut analysis: Option<Analysis> = None;
            making = variants
                .iter()
                .map(|job_variant| {
                    let variant = &job_variant.variant;
                    let plan = place(
                        variant,
                        geometry::plan(variant, width, height, limits.max_thumbnail_side),
                        frame,
                        &mut analysis,
                    );
                    let animation = Animation::new(
                        variant.format,
                        (plan.width, plan.height),
                        variant.quality,
                        variant.lossless,
                        facts.loops,
                    )?;
                    Ok(Making {
                        plan,
                        animation,
                        frames: 0,
                    })
                })
                .collect();
        }
        for made in &mut making {
            let added = match made {
                Ok(made) => resize::resize(frame, &made.plan).and_then(|resized| {
                    made.frames += 1;
                    made.animation.add(colour.to_srgb(resized), duration)
                }),
                Err(_) => Ok(()),
            };
            if let Err(error) = added {
                *made = Err(error);
            }
        }
    };
    let ended = match ended {
        Ok(()) if making.is_empty() => Err(crate::decode::decode_error(
            media_type,
            "the animation has no frame",
        )),
        other => other,
    };
    match ended {
        Err(error) => variants
            .iter()
            .map(|job_variant| (job_variant.clone(), Err(error.clone())))
            .collect(),
        Ok(()) => variants
            .iter()
            .cloned()
            .zip(making)
            .map(|(job_variant, made)| (job_variant, made.and_then(finish)))
            .collect(),
    }
}

/// The animation's bytes and facts.
fn finish(made: Making) -> Result<Thumbnail, ThumbnailError> {
    let media_type = made.animation.media_type();
    let bytes = made.animation.finish()?;
    Ok(Thumbnail {
        info: ThumbnailInfo {
            media_type,
            width: made.plan.width,
            height: made.plan.height,
            size: bytes.len() as u64,
            frames: Some(made.frames),
        },
        bytes,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use image::RgbaImage;

    use super::*;

    /// The reference frames `expected/anim/{name}-NN.png`.
    pub fn reference(name: &str) -> Vec<RgbaImage> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/expected/anim");
        (1..)
            .map(|n| dir.join(format!("{name}-{n:02}.png")))
            .take_while(|path| path.exists())
            .map(|path| image::open(path).unwrap().to_rgba8())
            .collect()
    }

    /// Compares every frame of `frames` with `reference`: the same count, each pixel's
    /// alpha and (where it is not transparent) colour within `tolerance`, and the mean
    /// difference within `mean`.
    pub fn compare(frames: &mut dyn Frames, reference: &[RgbaImage], tolerance: u8, mean: f64) {
        let mut count = 0;
        while let Some((frame, _)) = frames.next().unwrap() {
            let ours = frame.to_rgba8();
            let theirs = &reference[count];
            count += 1;
            assert_eq!(ours.dimensions(), theirs.dimensions(), "frame {count}");
            let (mut worst, mut total) = (0u8, 0u64);
            for (a, b) in ours.pixels().zip(theirs.pixels()) {
                let channels = if a[3] == 0 && b[3] == 0 { 3..4 } else { 0..4 };
                for c in channels {
                    let d = a[c].abs_diff(b[c]);
                    worst = worst.max(d);
                    total += u64::from(d);
                }
            }
            let average = total as f64 / (ours.len() as f64);
            assert!(
                worst <= tolerance && average <= mean,
                "frame {count}: worst {worst}, mean {average:.3}"
            );
        }
        assert_eq!(count, reference.len(), "frame count");
    }

    #[test]
    fn the_limits_are_read_from_the_headers() {
        let bomb = crate::decode::fixture("hostile-gif-frames.gif");
        let limits = LimitsConfig::default();
        let error = facts(&bomb, MediaType::Gif, &limits).unwrap_err();
        assert_eq!(error.code(), 413);
        assert!(error.to_string().contains("limits.max_frames"), "{error}");
        // Under a frame limit it would pass, the pixels of all frames are refused.
        let limits = LimitsConfig {
            max_frames: 20_000,
            ..LimitsConfig::default()
        };
        let error = facts(&bomb, MediaType::Gif, &limits).unwrap_err();
        assert!(
            error.to_string().contains("limits.max_animation_pixels"),
            "{error}"
        );
        let gif = crate::decode::fixture("anim-disposal.gif");
        let facts = facts(&gif, MediaType::Gif, &LimitsConfig::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            facts,
            Facts {
                size: (96, 64),
                frames: 9,
                loops: 3
            }
        );
        let webp = crate::decode::fixture("anim-photo.webp");
        let facts = super::facts(&webp, MediaType::Webp, &LimitsConfig::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            facts,
            Facts {
                size: (120, 75),
                frames: 8,
                loops: 0
            }
        );
        // A still GIF or WebP is no animation.
        for (name, media_type) in [
            ("gif-animated.gif", MediaType::Gif),
            ("webp-lossy.webp", MediaType::Webp),
        ] {
            let bytes = crate::decode::fixture(name);
            let found = super::facts(&bytes, media_type, &LimitsConfig::default()).unwrap();
            assert_eq!(found.is_some(), name == "gif-animated.gif", "{name}");
        }
    }
}
