//! Thumbnailify's worker: turns raw uploads into thumbnails.
//!
//! One job is one straight line through these modules:
//!
//! - [`runner`]: takes the job from the queue, runs it, publishes the result, acks the job.
//! - [`slots`]: decode slots and fetch slots, apart, so a slow source never holds up a
//!   decode.
//! - [`job`]: reads the raw file (or first has [`fetch`] bring a source given by URL),
//!   calls the pipeline, writes each variant atomically.
//! - [`thumbnail`]: the pipeline, one decode for every variant, with panics contained:
//!   - [`decode`]: header first (pixel limit), then pixels under an allocation limit; EXIF
//!     orientation applied.
//!   - [`geometry`]: each variant's size and crop (contain, cover, fill; never enlarged
//!     unless asked; a cover crop placed by its gravity, or by [`gravity`] for
//!     `attention` and `entropy`).
//!   - [`resize`]: to that size with fast_image_resize's SIMD convolution, alpha-aware.
//!   - [`colour`]: the source's ICC profile (or CICP, or PNG chunks) read once, each
//!     thumbnail converted to sRGB or tagged with the source's profile.
//!   - [`encode`]: JPEG, PNG (when there is alpha), WebP or AVIF, each variant its own,
//!     tagged with its colours.
//!   - [`placeholder`]: ThumbHash, the dominant colour and BlurHash, from the same decode.
//!   - [`animation`]: for `animated` variants of an animated GIF or WebP, frame counts
//!     checked from the headers, then every frame composed, resized and encoded in turn.
//! - [`video`]: for a video, FFmpeg probes it and takes the poster frame, which then goes
//!   through the same pipeline as a decoded image.
//! - [`document`]: for an SVG, a child process of this program checks its structure and
//!   renders it at the largest variant's size; the pixels go through the same pipeline.
//! - [`subprocess`]: how FFmpeg and the renderer run: time, memory and output bounded.
//! - [`error`]: why a thumbnail failed, and the HTTP-like code each reason reports.
//!
//! The gateway runs [`runner::run`] in-process on the embedded queue; the `worker` binary runs
//! it against RabbitMQ.

pub mod animation;
pub mod colour;
pub mod decode;
pub mod document;
pub mod encode;
pub mod error;
pub mod fetch;
pub mod geometry;
pub mod gravity;
pub mod heartbeat;
pub mod job;
pub mod placeholder;
pub mod resize;
pub mod runner;
pub mod slots;
pub mod subprocess;
pub mod thumbnail;
pub mod video;

pub use error::{ThumbnailError, WorkerError};
pub use runner::run;
