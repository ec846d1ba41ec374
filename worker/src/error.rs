//! Why a thumbnail could not be made, and the HTTP-like code each reason reports.

/// Why a thumbnail could not be made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ThumbnailError {
    /// The image declares more pixels than `limits.max_pixels` allows (a decompression bomb,
    /// or simply too large). Refused from the header, before any pixel buffer is allocated.
    #[error("image is {width}×{height} = {pixels} pixels, over the limit of {max} pixels")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// width × height.
        pixels: u64,
        /// The configured limit.
        max: u64,
    },
    /// Decoding would need more memory than `limits.max_alloc_bytes` allows.
    #[error("decoding this {media_type} needs more memory than allowed: {detail}")]
    OverMemoryLimit {
        /// The declared media type.
        media_type: &'static str,
        /// The decoder's account.
        detail: String,
    },
    /// The file carries more metadata (ICC profiles, EXIF, XMP, comments, tables) than
    /// `limits.max_metadata_bytes` allows, in a format where it cannot simply be skipped.
    #[error("this {media_type} carries {bytes} bytes of metadata, over the limit of {max} bytes")]
    MetadataTooLarge {
        /// The declared media type.
        media_type: &'static str,
        /// The metadata bytes the file declares (at least this many).
        bytes: u64,
        /// The configured limit.
        max: u64,
    },
    /// An animation has more frames, or more pixels in all its frames, than the limits
    /// allow (`limits.max_frames`, `limits.max_animation_pixels`), as its headers say.
    #[error("this animated {media_type} is over its bounds: {detail}")]
    AnimationTooLarge {
        /// The format.
        media_type: &'static str,
        /// Which limit, and by how much.
        detail: String,
    },
    /// A document (SVG) asks for more than its bounds allow: elements, nesting, memory.
    #[error("this {media_type} is over its bounds: {detail}")]
    DocumentTooLarge {
        /// The declared media type.
        media_type: &'static str,
        /// Which bound, and by how much.
        detail: String,
    },
    /// The document renderer's own error, with the status it gave.
    #[error("{message}")]
    Rendering {
        /// The status.
        status: u16,
        /// What it said.
        message: String,
    },
    /// The data is not a valid image of its declared type (corrupt, truncated, or using a
    /// feature the decoder does not support).
    #[error("cannot decode {media_type}: {detail}")]
    Decode {
        /// The declared media type.
        media_type: &'static str,
        /// The decoder's account.
        detail: String,
    },
    /// Resizing failed.
    #[error("cannot resize: {0}")]
    Resize(String),
    /// Encoding the thumbnail failed.
    #[error("cannot encode the thumbnail: {0}")]
    Encode(String),
    /// A video with no picture: audio only, or no stream at all.
    #[error("the file has no video stream (audio only, or no stream at all)")]
    NoVideoStream,
    /// This build reads no such images: the cargo feature that would is off.
    #[error("this build cannot read {media_type}: it was built without the `{feature}` feature")]
    NotInThisBuild {
        /// The media type.
        media_type: &'static str,
        /// The cargo feature that reads it.
        feature: &'static str,
    },
    /// A tool this media type needs is not installed on this worker.
    #[error("{0} is not installed on this worker, so it cannot read videos")]
    ToolMissing(String),
    /// A tool ran out of time. It may be the machine, not the file (a busy host, a killed
    /// process's jobs running beside their redeliveries), so the job is tried again, up to
    /// the queue's delivery limit, before this is its result.
    #[error("{0}")]
    TimedOut(String),
    /// A decoder panicked on this input; the panic was contained.
    #[error("the decoder crashed on this image: {0}")]
    Panic(String),
}

impl ThumbnailError {
    /// The HTTP-like status the record reports: 413 for images over the limits, 415 for a
    /// media type this worker cannot read, 422 for data that cannot be decoded, 500 for
    /// failures of our own, 504 for a tool out of time.
    pub fn code(&self) -> u16 {
        match self {
            ThumbnailError::TooManyPixels { .. }
            | ThumbnailError::OverMemoryLimit { .. }
            | ThumbnailError::MetadataTooLarge { .. }
            | ThumbnailError::DocumentTooLarge { .. }
            | ThumbnailError::AnimationTooLarge { .. } => 413,
            ThumbnailError::Rendering { status, .. } => *status,
            ThumbnailError::ToolMissing(_) | ThumbnailError::NotInThisBuild { .. } => 415,
            ThumbnailError::Decode { .. }
            | ThumbnailError::NoVideoStream
            | ThumbnailError::Panic(_) => 422,
            ThumbnailError::Resize(_) | ThumbnailError::Encode(_) => 500,
            ThumbnailError::TimedOut(_) => 504,
        }
    }
}

/// Why a worker process stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The queue failed.
    #[error("queue: {0}")]
    Queue(#[from] common::queue::QueueError),
    /// Media storage cannot be set up.
    #[error("{0}")]
    Storage(#[from] common::storage::StorageError),
}
