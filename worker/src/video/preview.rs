//! A video's animated preview: its first `thumbnail.preview_secs` seconds (all of it when
//! shorter), frames sampled evenly at the video's own rate up to [`MAX_FPS`], and never more
//! than `limits.max_frames` (fewer frames, further apart, when the limit would be passed).
//!
//! One more FFmpeg run, under the same rules as the poster's ([`super`]): FFmpeg samples
//! (`fps`) and scales (`scale`) the frames to twice the largest animated variant (at most
//! the video's own size), so what comes back on its standard output is small; its length is
//! bounded by frames × frame size, checked against `limits.max_alloc_bytes` before FFmpeg
//! starts. The frames then go through [`crate::animation::make`] one at a time.

use std::path::Path;
use std::time::Duration;

use common::config::Config;
use common::media::MediaType;
use common::variant::Variant;
use image::{DynamicImage, RgbImage};

use super::{Poster, demuxer, input_args, os, output_args, tool_error};
use crate::animation::{Facts, Frames};
use crate::error::ThumbnailError;
use crate::geometry;
use crate::subprocess::{self as run, Bounds};

/// The highest rate a preview samples at, in frames per second.
pub const MAX_FPS: f64 = 10.0;

/// The sampled frames of a video's start.
#[derive(Debug)]
pub struct Preview {
    /// The video's upright size, which variants are planned from.
    source: (u32, u32),
    /// The size FFmpeg scaled the frames to.
    size: (u32, u32),
    /// The frames, RGB, one after the other.
    pixels: Vec<u8>,
    /// How long each frame shows, in milliseconds.
    frame_ms: u32,
}

impl Preview {
    /// The preview as an animation: the video's size, its frames, played forever.
    pub fn facts(&self) -> Facts {
        Facts {
            size: self.source,
            frames: u32::try_from(self.count()).unwrap_or(u32::MAX),
            loops: 0,
        }
    }

    fn frame_bytes(&self) -> usize {
        self.size.0 as usize * self.size.1 as usize * 3
    }

    fn count(&self) -> usize {
        self.pixels.len() / self.frame_bytes().max(1)
    }

    /// Its frames, one at a time.
    pub fn frames(&self) -> PreviewFrames<'_> {
        PreviewFrames {
            chunks: self.pixels.chunks_exact(self.frame_bytes().max(1)),
            size: self.size,
            frame_ms: self.frame_ms,
            current: None,
        }
    }
}

/// A preview's frames, each made an image in turn.
pub struct PreviewFrames<'a> {
    chunks: std::slice::ChunksExact<'a, u8>,
    size: (u32, u32),
    frame_ms: u32,
    current: Option<DynamicImage>,
}

impl Frames for PreviewFrames<'_> {
    fn next(&mut self) -> Result<Option<(&DynamicImage, u32)>, ThumbnailError> {
        let Some(chunk) = self.chunks.next() else {
            return Ok(None);
        };
        let image = RgbImage::from_raw(self.size.0, self.size.1, chunk.to_vec())
            .ok_or_else(|| ThumbnailError::Resize("a preview frame of the wrong size".into()))?;
        let current = self.current.insert(DynamicImage::ImageRgb8(image));
        Ok(Some((current, self.frame_ms)))
    }
}

/// How a preview samples: how many frames, how far apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Seconds of video, from the start.
    pub secs: f64,
    /// Frames per second.
    pub fps: f64,
    /// Frames in all.
    pub frames: u32,
}

/// The sampling of a video of `duration` seconds at `fps`: `preview_secs` of it (all of it
/// when shorter), at its own rate up to [`MAX_FPS`], at most `max_frames` frames.
pub fn sampling(
    duration: Option<f64>,
    fps: Option<f64>,
    preview_secs: u32,
    max_frames: u32,
) -> Sampling {
    let wanted = f64::from(preview_secs.max(1));
    let secs = duration
        .filter(|d| d.is_finite() && *d > 0.0)
        .map_or(wanted, |d| d.min(wanted));
    let rate = fps
        .filter(|f| f.is_finite() && *f > 0.0)
        .map_or(MAX_FPS, |f| f.min(MAX_FPS));
    let natural = (secs * rate).ceil().max(1.0);
    let frames = natural.min(f64::from(max_frames.max(1)));
    Sampling {
        secs,
        fps: frames / secs,
        frames: frames as u32,
    }
}

/// Samples the preview of the video at `path` (checked to be `media_type`, its `poster`
/// already taken) for `variants`.
pub async fn preview(
    path: &Path,
    media_type: MediaType,
    config: &Config,
    poster: &Poster,
    variants: &[Variant],
) -> Result<Preview, ThumbnailError> {
    let demuxer = demuxer(media_type).ok_or_else(|| ThumbnailError::Decode {
        media_type: media_type.as_str(),
        detail: "not a video".to_owned(),
    })?;
    let limits = &config.limits;
    let source = (poster.frame.source_width, poster.frame.source_height);
    let size = frame_size(source, variants, limits.max_thumbnail_side);
    let sampling = sampling(
        poster.duration,
        poster.info.fps,
        config.thumbnail.preview_secs,
        limits.max_frames,
    );
    let frame_bytes = u64::from(size.0) * u64::from(size.1) * 3;
    let total = frame_bytes * u64::from(sampling.frames);
    if total > limits.max_alloc_bytes {
        return Err(ThumbnailError::OverMemoryLimit {
            media_type: media_type.as_str(),
            detail: format!(
                "a preview of {} frames of {}×{} needs {total} bytes, over \
                 limits.max_alloc_bytes",
                sampling.frames, size.0, size.1
            ),
        });
    }
    let video = &config.video;
    let bounds = Bounds {
        timeout: Duration::from_secs(video.timeout_secs),
        max_memory: video.max_memory_bytes,
        max_output: usize::try_from(total).unwrap_or(usize::MAX),
    };
    let input = format!("file:{}", path.display());
    let args = args(demuxer, &input, size, sampling, video.threads);
    let pixels = run::run(&video.ffmpeg, &os(args), path, bounds)
        .await
        .map_err(|error| tool_error(error, media_type))?;
    let preview = Preview {
        source,
        size,
        frame_ms: (1000.0 / sampling.fps).round() as u32,
        pixels,
    };
    if preview.count() == 0 {
        return Err(ThumbnailError::Decode {
            media_type: media_type.as_str(),
            detail: "no frame of the preview could be decoded".to_owned(),
        });
    }
    Ok(preview)
}

/// The size the preview's frames are scaled to: twice the largest of `variants` (the room
/// the resizer's Lanczos filter wants), at most the video's upright `source` size, its
/// aspect kept.
fn frame_size(source: (u32, u32), variants: &[Variant], max_side: u32) -> (u32, u32) {
    let (width, height) = source;
    let (tw, th) = geometry::largest_scaled(variants, width, height, max_side);
    let scale = (2.0 * f64::from(tw) / f64::from(width.max(1)))
        .max(2.0 * f64::from(th) / f64::from(height.max(1)))
        .min(1.0);
    let side = |side: u32| ((f64::from(side) * scale).round() as u32).max(1);
    (side(width), side(height))
}

fn args(
    demuxer: &str,
    input: &str,
    (width, height): (u32, u32),
    sampling: Sampling,
    threads: u32,
) -> Vec<String> {
    let mut args = input_args(demuxer, threads);
    args.extend(["-t".to_owned(), format!("{:.3}", sampling.secs)]);
    let filters = format!("fps=fps={:.6},scale={width}:{height}", sampling.fps);
    args.extend(output_args(input, &filters, sampling.frames));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_sampled_evenly_within_the_limit() {
        // A 30 fps clip: 3 s at 10 fps.
        assert_eq!(
            sampling(Some(60.0), Some(30.0), 3, 1000),
            Sampling {
                secs: 3.0,
                fps: 10.0,
                frames: 30
            }
        );
        // A slower video keeps its own rate; a short one is all shown.
        assert_eq!(sampling(Some(1.5), Some(4.0), 3, 1000).frames, 6);
        // The frame limit spreads fewer frames over the same time.
        let few = sampling(Some(60.0), Some(30.0), 3, 6);
        assert_eq!((few.frames, few.fps), (6, 2.0));
        // Nothing known: the preview's length at the highest rate.
        assert_eq!(sampling(None, None, 2, 1000).frames, 20);
    }

    #[test]
    fn frames_are_scaled_to_twice_the_largest_variant() {
        let config = common::config::ThumbnailConfig::default();
        let variant = Variant::default_for(&config);
        assert_eq!(
            frame_size((1920, 1080), std::slice::from_ref(&variant), 4096),
            (200, 113)
        );
        // Never above the video's own size.
        assert_eq!(frame_size((160, 90), &[variant], 4096), (160, 90));
    }
}
