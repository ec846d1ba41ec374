//! Video: probe a video file, take its poster frame, and hand the frame to the thumbnail
//! pipeline like a decoded image.
//!
//! FFmpeg does the work, as two subprocesses per video ([`crate::subprocess`]): `ffprobe` reads the headers
//! ([`probe`]), then `ffmpeg` seeks and decodes one frame to raw RGB on its standard output.
//! A subprocess rather than a library binding keeps a crash, a hang or a leak in a demuxer or
//! decoder out of the worker: it is killed at `video.timeout_secs`, cannot map more than
//! `video.max_memory_bytes`, and dies with its job.
//!
//! Untrusted input rules, on every run:
//! - the input is a local file, named as a `file:` URL, with `-protocol_whitelist file`: no
//!   network, no other protocol;
//! - the demuxer is forced from the checked media type (`mov`, `matroska`, `avi`), so a
//!   playlist (HLS, concat) or any other format posing as a video is never opened as one;
//! - the frame size from the probe is checked against `limits.max_pixels` (and its RGB buffer
//!   against `limits.max_alloc_bytes`) before any frame is decoded.
//!
//! The poster is the first frame that is not near black (mean luma over [`BLACK_LUMA`]) from
//! 10 % into the video (at most 30 s in), looking `video.black_scan_secs` ahead; failing
//! that, the frame at that time; failing that, the first frame. `-ss` before the input seeks
//! by keyframe, so a two-hour film costs about what a short clip does. FFmpeg applies the
//! display rotation, so the poster is upright.
//!
//! For `animated` variants, a third run samples the video's first seconds ([`preview`]).

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use common::config::{Config, VideoConfig};
use common::media::MediaType;
use common::record::VideoInfo;
use image::{DynamicImage, RgbImage};

use crate::decode::{Decoded, check_pixels};
use crate::error::ThumbnailError;

pub mod preview;
pub mod probe;

use crate::subprocess::{self as run, Bounds, RunError};
use probe::Probe;

/// Mean luma (8-bit, 0–255) at or below which a frame counts as black.
pub const BLACK_LUMA: u32 = 32;

/// The poster time is this share of the duration in…
const POSTER_SHARE: f64 = 0.1;
/// …and at most this many seconds in.
const POSTER_MAX_SECS: f64 = 30.0;

/// A video's poster frame and what its probe found.
#[derive(Debug)]
pub struct Poster {
    /// The upright frame, as a decoded image.
    pub frame: Decoded,
    /// The length in seconds, when known.
    pub duration: Option<f64>,
    /// The picture stream.
    pub info: VideoInfo,
}

/// FFmpeg's demuxer for a video media type.
fn demuxer(media_type: MediaType) -> Option<&'static str> {
    match media_type {
        MediaType::Mp4 | MediaType::Quicktime => Some("mov"),
        MediaType::Webm | MediaType::Matroska => Some("matroska"),
        MediaType::Avi => Some("avi"),
        _ => None,
    }
}

/// Whether this machine can thumbnail videos: `Ok` with ffmpeg's version line, or why not.
pub async fn available(config: &VideoConfig) -> Result<String, String> {
    let bounds = Bounds {
        timeout: Duration::from_secs(10),
        max_memory: config.max_memory_bytes,
        max_output: 64 * 1024,
    };
    let version = [OsString::from("-version")];
    run::run(&config.ffprobe, &version, Path::new(""), bounds)
        .await
        .map_err(|error| error.to_string())?;
    let out = run::run(&config.ffmpeg, &version, Path::new(""), bounds)
        .await
        .map_err(|error| error.to_string())?;
    let text = String::from_utf8_lossy(&out);
    Ok(text.lines().next().unwrap_or("ffmpeg").to_owned())
}

/// Probes the video at `path` (checked to be `media_type`) and takes its poster frame.
pub async fn poster(
    path: &Path,
    media_type: MediaType,
    config: &Config,
) -> Result<Poster, ThumbnailError> {
    let demuxer = demuxer(media_type).ok_or_else(|| ThumbnailError::Decode {
        media_type: media_type.as_str(),
        detail: "not a video".to_owned(),
    })?;
    let video = &config.video;
    let input = format!("file:{}", path.display());
    let bounds = Bounds {
        timeout: Duration::from_secs(video.timeout_secs),
        max_memory: video.max_memory_bytes,
        max_output: 1024 * 1024,
    };
    let fail = |error: RunError| tool_error(error, media_type);
    let json = run::run(
        &video.ffprobe,
        &os(probe::args(demuxer, &input)),
        path,
        bounds,
    )
    .await
    .map_err(fail)?;
    let probe = probe::parse(&json).map_err(|error| match error {
        probe::ProbeError::NoVideo => ThumbnailError::NoVideoStream,
        other => ThumbnailError::Decode {
            media_type: media_type.as_str(),
            detail: other.to_string(),
        },
    })?;
    let (width, height) = probe.upright();
    check_pixels(width, height, config.limits.max_pixels)?;
    let frame_bytes = u64::from(width) * u64::from(height) * 3;
    if frame_bytes > config.limits.max_alloc_bytes {
        return Err(ThumbnailError::OverMemoryLimit {
            media_type: media_type.as_str(),
            detail: format!("a {width}×{height} frame needs {frame_bytes} bytes"),
        });
    }
    let frame_bounds = Bounds {
        max_output: usize::try_from(frame_bytes).unwrap_or(usize::MAX),
        ..bounds
    };
    let at = poster_time(probe.duration);
    let mut attempts = vec![
        Frame {
            at,
            scan_secs: Some(video.black_scan_secs.max(1)),
        },
        Frame {
            at,
            scan_secs: None,
        },
    ];
    if at > 0.0 {
        attempts.push(Frame {
            at: 0.0,
            scan_secs: None,
        });
    }
    for attempt in attempts {
        let args = attempt.args(demuxer, &input, (width, height), video.threads);
        let raw = run::run(&video.ffmpeg, &os(args), path, frame_bounds)
            .await
            .map_err(fail)?;
        if raw.is_empty() {
            continue;
        }
        let image =
            RgbImage::from_raw(width, height, raw).ok_or_else(|| ThumbnailError::Decode {
                media_type: media_type.as_str(),
                detail: "FFmpeg gave a frame of the wrong size".to_owned(),
            })?;
        return Ok(Poster {
            frame: Decoded::whole(DynamicImage::ImageRgb8(image)),
            duration: probe.duration,
            info: info(&probe),
        });
    }
    Err(ThumbnailError::Decode {
        media_type: media_type.as_str(),
        detail: "no frame could be decoded".to_owned(),
    })
}

/// Where the poster is looked for: 10 % in, at most 30 s in; the start when the length is
/// unknown.
pub fn poster_time(duration: Option<f64>) -> f64 {
    duration.map_or(0.0, |duration| {
        (duration * POSTER_SHARE).min(POSTER_MAX_SECS)
    })
}

/// One decode of one frame.
struct Frame {
    /// Seconds in: ffmpeg seeks to the keyframe before and decodes from there.
    at: f64,
    /// Look this many seconds ahead for a frame that is not black; `None`: take the first.
    scan_secs: Option<u64>,
}

impl Frame {
    fn args(
        &self,
        demuxer: &str,
        input: &str,
        (width, height): (u32, u32),
        threads: u32,
    ) -> Vec<String> {
        let mut args = input_args(demuxer, threads);
        args.extend(["-ss".to_owned(), format!("{:.3}", self.at)]);
        if let Some(scan) = self.scan_secs {
            args.extend(["-t".to_owned(), scan.to_string()]);
        }
        // The frame is scaled to the probed upright size (a no-op when it is that size), so
        // the output is exactly width × height × 3 bytes whatever the stream does later.
        let mut filters = Vec::new();
        if self.scan_secs.is_some() {
            filters.push(format!(
                "format=yuv420p,signalstats,metadata=mode=select:key=lavfi.signalstats.YAVG:value={BLACK_LUMA}:function=greater"
            ));
        }
        filters.push(format!("scale={width}:{height}"));
        args.extend(output_args(input, &filters.join(","), 1));
        args
    }
}

/// What every ffmpeg run ends with: the input's first video stream alone, through
/// `filters`, at most `frames` frames, as raw RGB on standard output.
fn output_args(input: &str, filters: &str, frames: u32) -> Vec<String> {
    [
        "-i",
        input,
        "-map",
        "0:v:0",
        "-an",
        "-sn",
        "-dn",
        "-vf",
        filters,
        "-frames:v",
        &frames.to_string(),
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "pipe:1",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// What every ffmpeg run starts with: quiet, `threads` decoding threads, local files only,
/// the demuxer forced.
fn input_args(demuxer: &str, threads: u32) -> Vec<String> {
    [
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-threads",
        &threads.to_string(),
        "-protocol_whitelist",
        "file",
        "-f",
        demuxer,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

fn os(args: Vec<String>) -> Vec<OsString> {
    args.into_iter().map(OsString::from).collect()
}

fn info(probe: &Probe) -> VideoInfo {
    VideoInfo {
        codec: probe.codec.clone(),
        fps: probe.fps,
        width: probe.width,
        height: probe.height,
        rotation: probe.rotation,
    }
}

/// A tool's failure as the job's: a missing tool is 415 (this worker cannot read videos), a
/// timeout 504 (tried again), a failed run 422.
fn tool_error(error: RunError, media_type: MediaType) -> ThumbnailError {
    match error {
        RunError::Missing(tool) => ThumbnailError::ToolMissing(tool),
        timeout @ RunError::Timeout { .. } => ThumbnailError::TimedOut(timeout.to_string()),
        other => ThumbnailError::Decode {
            media_type: media_type.as_str(),
            detail: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(name)
    }

    #[tokio::test]
    async fn a_clip_gives_its_facts_and_an_upright_poster() {
        let config = Config::default();
        let poster = poster(&fixture("video-rotated.mp4"), MediaType::Mp4, &config)
            .await
            .unwrap();
        assert_eq!(poster.duration, Some(3.0));
        assert_eq!(
            poster.info,
            VideoInfo {
                codec: "h264".to_owned(),
                fps: Some(30.0),
                width: 320,
                height: 240,
                rotation: 270,
            }
        );
        let frame = &poster.frame;
        assert_eq!((frame.source_width, frame.source_height), (240, 320));
        assert_eq!(
            (frame.image.width(), frame.image.height()),
            (240, 320),
            "portrait once upright"
        );
    }

    #[tokio::test]
    async fn a_black_opening_is_skipped() {
        let config = Config::default();
        let poster = poster(
            &fixture("video-black-start.mov"),
            MediaType::Quicktime,
            &config,
        )
        .await
        .unwrap();
        let image = poster.frame.image.to_luma8();
        let mean = image.pixels().map(|p| u64::from(p[0])).sum::<u64>() / image.len() as u64;
        assert!(mean > u64::from(BLACK_LUMA), "mean luma {mean}");
    }

    #[tokio::test]
    async fn a_playlist_is_never_opened_as_one() {
        // An HLS playlist whose segment is on a listening loopback port, given to FFmpeg as
        // each video type: refused, and no connection is made.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut playlist = tempfile::NamedTempFile::new().unwrap();
        write!(
            playlist,
            "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:{port}/segment.ts\n#EXT-X-ENDLIST\n"
        )
        .unwrap();
        for media_type in [MediaType::Mp4, MediaType::Webm, MediaType::Avi] {
            let error = poster(playlist.path(), media_type, &Config::default())
                .await
                .unwrap_err();
            assert_eq!(error.code(), 422, "{media_type}: {error}");
            assert!(
                !error
                    .to_string()
                    .contains(&playlist.path().display().to_string()),
                "{error}"
            );
        }
        assert!(
            listener.accept().is_err(),
            "FFmpeg connected to the segment"
        );
    }

    #[tokio::test]
    async fn a_missing_tool_is_named() {
        let mut config = Config::default();
        config.video.ffprobe = "/nonexistent/ffprobe".into();
        let error = poster(&fixture("video-h264.mp4"), MediaType::Mp4, &config)
            .await
            .unwrap_err();
        assert_eq!(error.code(), 415);
        assert_eq!(
            error.to_string(),
            "ffprobe is not installed on this worker, so it cannot read videos"
        );
        assert_eq!(
            available(&config.video).await,
            Err("ffprobe is not installed".to_owned())
        );
    }

    #[test]
    fn the_poster_is_a_tenth_in_and_at_most_thirty_seconds() {
        assert_eq!(poster_time(None), 0.0);
        assert_eq!(poster_time(Some(4.0)), 0.4);
        assert_eq!(poster_time(Some(7200.0)), 30.0);
    }

    #[test]
    fn every_run_reads_only_a_local_file_with_a_forced_demuxer() {
        let args = Frame {
            at: 1.5,
            scan_secs: Some(10),
        }
        .args("mov", "file:/data/raw/x", (320, 240), 2);
        let joined = args.join(" ");
        assert!(
            joined.contains("-protocol_whitelist file -f mov -ss 1.500 -t 10 -i file:/data/raw/x")
        );
        assert!(joined.contains("scale=320:240"));
        let probe = probe::args("matroska", "file:/x").join(" ");
        assert!(probe.contains("-protocol_whitelist file -f matroska"));
    }
}
