//! What workers make and how: `thumbnail` (sizes, format, presets), `worker` (concurrency,
//! heartbeats), `video` (FFmpeg) and `documents` (SVG, PDF).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Video: FFmpeg's `ffprobe` and `ffmpeg`, run as subprocesses on a file, each under a
/// wall-clock timeout and an address-space cap.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoConfig {
    /// The `ffprobe` program (a name looked up in `PATH`, or a path).
    pub ffprobe: PathBuf,
    /// The `ffmpeg` program (a name looked up in `PATH`, or a path).
    pub ffmpeg: PathBuf,
    /// Seconds one probe or one poster decode may take before it is killed.
    pub timeout_secs: u64,
    /// Address space one FFmpeg process may map, in bytes (`RLIMIT_AS`).
    pub max_memory_bytes: u64,
    /// Decoding threads per FFmpeg process.
    pub threads: u32,
    /// Seconds of video read, from the seek point on, looking for a frame that is not black.
    pub black_scan_secs: u64,
}

impl Default for VideoConfig {
    fn default() -> Self {
        Self {
            ffprobe: PathBuf::from("ffprobe"),
            ffmpeg: PathBuf::from("ffmpeg"),
            timeout_secs: 60,
            max_memory_bytes: 2 * 1024 * 1024 * 1024,
            threads: 2,
            black_scan_secs: 10,
        }
    }
}

/// Documents (SVG, PDF): rendered by a child process of the worker, under a wall-clock timeout
/// and an address-space cap, after the document's structure has passed its bounds.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DocumentsConfig {
    /// Seconds one rendering may take before its process is killed (422).
    pub timeout_secs: u64,
    /// Address space one rendering process may map, in bytes (`RLIMIT_AS`).
    pub max_memory_bytes: u64,
    /// Elements a document may draw, counted with every `use` expanded as often as it is
    /// used; more is refused (413) before anything is drawn.
    pub max_elements: u64,
    /// How deep a document's elements may nest; deeper is refused (413).
    pub max_depth: u32,
    /// Pages a PDF may have; more is refused (413). Only the first is drawn.
    pub max_pages: u64,
    /// The longest side a PDF's first page may have, in points (1/72 inch); longer is
    /// refused (413).
    pub max_page_points: u32,
}

impl Default for DocumentsConfig {
    fn default() -> Self {
        Self {
            timeout_secs: 10,
            max_memory_bytes: 1024 * 1024 * 1024,
            max_elements: 20_000,
            max_depth: 64,
            max_pages: 10_000,
            max_page_points: 14_400,
        }
    }
}

/// The output format of thumbnails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// PNG for sources with alpha, JPEG otherwise.
    Auto,
    /// Always JPEG (alpha is composed over white).
    Jpeg,
    /// Always PNG.
    Png,
    /// Always WebP (lossy at the variant's quality, or lossless).
    Webp,
    /// Always AVIF (lossy, at the variant's quality; alpha kept). Only in builds with the
    /// worker's `heif` feature: elsewhere a variant asking for it is refused at the door.
    Avif,
    /// Always GIF: 256 colours per frame, quantised from the thumbnail's own colours.
    Gif,
}

impl OutputFormat {
    /// Whether an animation can be written in this format: WebP, GIF, and `auto` (which
    /// gives WebP for an animation).
    pub fn animates(self) -> bool {
        matches!(
            self,
            OutputFormat::Auto | OutputFormat::Webp | OutputFormat::Gif
        )
    }

    /// The name the `format` parameter and the configuration use.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Auto => "auto",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Png => "png",
            OutputFormat::Webp => "webp",
            OutputFormat::Avif => "avif",
            OutputFormat::Gif => "gif",
        }
    }
}

impl std::str::FromStr for OutputFormat {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "auto" => Ok(OutputFormat::Auto),
            "jpeg" | "jpg" => Ok(OutputFormat::Jpeg),
            "png" => Ok(OutputFormat::Png),
            "webp" => Ok(OutputFormat::Webp),
            "avif" => Ok(OutputFormat::Avif),
            "gif" => Ok(OutputFormat::Gif),
            _ => Err(()),
        }
    }
}

/// What colours thumbnails are in.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ColorMode {
    /// Converted from the source's profile to sRGB, and tagged as sRGB.
    #[default]
    Srgb,
    /// The source's values, with its profile embedded (JPEG, PNG, WebP, AVIF).
    Keep,
}

impl ColorMode {
    /// The parameter's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ColorMode::Srgb => "srgb",
            ColorMode::Keep => "keep",
        }
    }
}

impl std::str::FromStr for ColorMode {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "srgb" => Ok(ColorMode::Srgb),
            "keep" => Ok(ColorMode::Keep),
            _ => Err(()),
        }
    }
}

/// A placeholder a completed image's record can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceholderKind {
    /// ThumbHash: a blurred preview with alpha and aspect ratio, about 25 bytes.
    Thumbhash,
    /// The image's dominant colour.
    DominantColor,
    /// BlurHash (4×3 components).
    Blurhash,
}

/// What thumbnails to make.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThumbnailConfig {
    /// Width of the box the thumbnail fits in.
    pub width: u32,
    /// Height of the box the thumbnail fits in.
    pub height: u32,
    /// Output format.
    pub format: OutputFormat,
    /// Quality of lossy output (JPEG, WebP, AVIF), 1–100, when a request names none.
    pub jpeg_quality: u8,
    /// WebP output lossless, when a request does not say (`lossless`); else lossy at the
    /// quality.
    pub lossless: bool,
    /// Named variants clients may ask for by name in `sizes`.
    pub presets: std::collections::BTreeMap<String, crate::variant::Preset>,
    /// Thumbnails converted to sRGB (`srgb`), or keeping the source's profile (`keep`), when
    /// a request does not say (`color`).
    pub color: ColorMode,
    /// The placeholders a completed image's record carries.
    pub placeholders: Vec<PlaceholderKind>,
    /// Animated thumbnails of animated GIFs and WebPs, and animated previews of videos, when
    /// a request does not say (`animated`).
    pub animated: bool,
    /// Seconds of a video an animated preview shows, from its start.
    pub preview_secs: u32,
}

/// The workers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Jobs processed at once per worker process; 0 means one per CPU core.
    pub concurrency: usize,
    /// Seconds between a worker's heartbeats (the dashboard's list of workers).
    pub heartbeat_secs: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 0,
            heartbeat_secs: 5,
        }
    }
}

impl Default for ThumbnailConfig {
    fn default() -> Self {
        Self {
            width: 100,
            height: 100,
            format: OutputFormat::Auto,
            jpeg_quality: 85,
            lossless: false,
            presets: std::collections::BTreeMap::new(),
            color: ColorMode::Srgb,
            placeholders: vec![PlaceholderKind::Thumbhash, PlaceholderKind::DominantColor],
            animated: false,
            preview_secs: 3,
        }
    }
}

impl WorkerConfig {
    /// The number of jobs to process at once: `concurrency`, or the number of cores when 0.
    pub fn effective_concurrency(&self) -> usize {
        if self.concurrency > 0 {
            self.concurrency
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}
