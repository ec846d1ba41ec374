//! Documents (SVG, PDF): drawn from the vector at the size asked, in a child process.
//!
//! A document is not decoded but run: parsing and drawing one costs what its structure asks,
//! not what its size says, and the renderer cannot be interrupted. So each rendering is a
//! child process of this same program ([`child`]), started through [`crate::subprocess`]:
//! killed past `documents.timeout_secs`, capped at `documents.max_memory_bytes` of address
//! space, its output bounded by the largest picture it may draw, dead with its parent. In
//! the child, [`svg`] checks the document's depth and element count (every `use` expanded)
//! before anything is drawn, and resolves no reference outside the document; [`pdf`] checks
//! the page count and the first page's size, refuses a PDF that needs a password, and
//! draws the first page (hayro: no scripts, no files, no network).
//!
//! The child is asked with the file's path and a [`Request`] (the variants, already planned
//! as `enlarge`: a vector has no pixel size to stay under, and the limits), and answers on
//! its standard output with a [`Reply`]: the document's size and the drawn RGBA pixels, or
//! the error with its status. The pixels then go through the same pipeline as a decoded
//! image.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use common::config::{Config, DocumentsConfig, LimitsConfig};
use common::media::MediaType;
use common::variant::Variant;
use image::{DynamicImage, RgbaImage};
use serde::{Deserialize, Serialize};

use crate::colour::Description;
use crate::decode::Decoded;
use crate::error::ThumbnailError;
use crate::subprocess::{self, Bounds, RunError};

pub mod child;
pub mod pdf;
pub mod svg;

/// The first argument that makes this program a renderer instead of a service.
pub const CHILD_FLAG: &str = "--render-document";

/// What the child is asked to draw.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// The document's media type.
    pub media_type: MediaType,
    /// The variants it is drawn for, planned as `enlarge`.
    pub variants: Vec<Variant>,
    /// Pixel and memory limits, and the longest side drawn.
    pub limits: LimitsConfig,
    /// The document bounds.
    pub documents: DocumentsConfig,
}

/// The header of the child's answer: what follows it on standard output is `width × height
/// × 4` bytes of RGBA when `error` is `None`, nothing otherwise.
#[derive(Debug, Serialize, Deserialize)]
pub struct Reply {
    /// The document's own width (CSS pixels).
    pub source_width: u32,
    /// The document's own height (CSS pixels).
    pub source_height: u32,
    /// The drawn picture's width.
    pub width: u32,
    /// The drawn picture's height.
    pub height: u32,
    /// Why nothing was drawn: the status and the message.
    pub error: Option<(u16, String)>,
}

/// A rendered document: the picture, and the document's own size.
#[derive(Debug)]
pub struct Rendered {
    /// The picture, at the size the largest variant needs.
    pub image: RgbaImage,
    /// The document's width (SVG: CSS pixels; PDF: points), at least 1.
    pub width: u32,
    /// The document's height, likewise.
    pub height: u32,
}

/// A size in CSS pixels (or points) as whole pixels, at least 1.
fn css_pixels(value: f32) -> u32 {
    // Clamped into 1..=u32::MAX first, so the conversion is exact.
    value.round().clamp(1.0, u32::MAX as f32) as u32
}

/// The size a `width`×`height` document is drawn at for `variants`: the largest variant's
/// need, its longest side at most `limits.max_thumbnail_side`, its pixels within
/// `limits.max_alloc_bytes`.
fn draw_size(
    media_type: MediaType,
    variants: &[Variant],
    (width, height): (u32, u32),
    limits: &LimitsConfig,
) -> Result<(u32, u32), ThumbnailError> {
    let max_side = limits.max_thumbnail_side;
    let (w, h) = crate::geometry::largest_scaled(variants, width, height, max_side);
    let longest = w.max(h);
    let (w, h) = if longest <= max_side {
        (w, h)
    } else {
        let scale = f64::from(max_side) / f64::from(longest);
        let side = |value: u32| ((f64::from(value) * scale).round() as u32).clamp(1, max_side);
        (side(w), side(h))
    };
    let needed = u64::from(w) * u64::from(h) * 4;
    if needed > limits.max_alloc_bytes {
        return Err(ThumbnailError::OverMemoryLimit {
            media_type: media_type.as_str(),
            detail: format!(
                "{w}×{h} pixels need {needed} bytes, over limits.max_alloc_bytes ({})",
                limits.max_alloc_bytes
            ),
        });
    }
    Ok((w, h))
}

/// Premultiplied RGBA to straight RGBA, in place.
fn unpremultiply(pixels: &mut [u8]) {
    for pixel in pixels.chunks_exact_mut(4) {
        let alpha = u16::from(pixel[3]);
        if alpha != 0 && alpha != 255 {
            for channel in &mut pixel[..3] {
                *channel = ((u16::from(*channel) * 255 + alpha / 2) / alpha).min(255) as u8;
            }
        }
    }
}

/// The variants of a document, planned as `enlarge`: a vector is drawn at the size asked.
pub fn enlarged(variants: impl IntoIterator<Item = Variant>) -> Vec<Variant> {
    variants
        .into_iter()
        .map(|variant| Variant {
            enlarge: true,
            ..variant
        })
        .collect()
}

/// Renders the document at `path` for `variants` in a child process, and gives the picture
/// as a decoded image (sRGB, as SVG colours are).
pub async fn render(
    path: &Path,
    media_type: MediaType,
    variants: &[Variant],
    config: &Config,
) -> Result<Decoded, ThumbnailError> {
    let request = Request {
        media_type,
        variants: enlarged(variants.iter().cloned()),
        limits: config.limits.clone(),
        documents: config.documents.clone(),
    };
    let request = serde_json::to_string(&request).map_err(|error| ThumbnailError::Decode {
        media_type: media_type.as_str(),
        detail: error.to_string(),
    })?;
    let program = std::env::current_exe().map_err(|error| ThumbnailError::Decode {
        media_type: media_type.as_str(),
        detail: format!("the renderer cannot be found: {error}"),
    })?;
    let side = u64::from(config.limits.max_thumbnail_side);
    let max_pixels = (side * side * 4).min(config.limits.max_alloc_bytes);
    let bounds = Bounds {
        timeout: Duration::from_secs(config.documents.timeout_secs),
        max_memory: config.documents.max_memory_bytes,
        max_output: usize::try_from(max_pixels).unwrap_or(usize::MAX) + 4096,
    };
    let args = [
        OsString::from(CHILD_FLAG),
        OsString::from(request),
        path.as_os_str().to_owned(),
    ];
    let out = subprocess::run(&program, &args, path, bounds)
        .await
        .map_err(|error| run_error(error, media_type, &config.documents))?;
    read_reply(out, media_type)
}

/// The child's output as a decoded image, or its error. The pixels stay in the buffer they
/// were read into: the header is drained from its front.
fn read_reply(mut out: Vec<u8>, media_type: MediaType) -> Result<Decoded, ThumbnailError> {
    let broken = |detail: &str| ThumbnailError::Decode {
        media_type: media_type.as_str(),
        detail: format!("the renderer's answer is broken: {detail}"),
    };
    let end = out
        .iter()
        .position(|&byte| byte == b'\n')
        .ok_or_else(|| broken("no header"))?;
    let reply: Reply = serde_json::from_slice(&out[..end]).map_err(|_| broken("bad header"))?;
    if let Some((status, message)) = reply.error {
        return Err(ThumbnailError::Rendering { status, message });
    }
    out.drain(..=end);
    let image = RgbaImage::from_raw(reply.width, reply.height, out)
        .ok_or_else(|| broken("the pixels are not the size it says"))?;
    Ok(Decoded {
        image: DynamicImage::ImageRgba8(image),
        source_width: reply.source_width,
        source_height: reply.source_height,
        colour: Description::Unstated,
    })
}

/// A renderer that failed to run, as the job's error: out of time is 504 (tried again), out
/// of memory 413, anything else 422.
fn run_error(
    error: RunError,
    media_type: MediaType,
    documents: &DocumentsConfig,
) -> ThumbnailError {
    match error {
        RunError::Timeout { secs, .. } => ThumbnailError::TimedOut(format!(
            "drawing the {media_type} took longer than {secs} s (documents.timeout_secs) and was stopped"
        )),
        RunError::Failed { detail } if detail.starts_with("memory allocation of") => {
            ThumbnailError::DocumentTooLarge {
                media_type: media_type.as_str(),
                detail: format!(
                    "drawing it needs more than documents.max_memory_bytes ({})",
                    documents.max_memory_bytes
                ),
            }
        }
        other => ThumbnailError::Decode {
            media_type: media_type.as_str(),
            detail: format!("the renderer failed: {other}"),
        },
    }
}
