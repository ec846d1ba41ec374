//! `limits`: what keeps hostile or huge inputs from exhausting the machine.

use serde::{Deserialize, Serialize};

use crate::media::MediaType;

/// Limits that keep hostile or huge inputs from exhausting the machine.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted upload, in decoded bytes (each file of a multipart request): every
    /// base64 upload, and each image.
    pub max_upload_bytes: u64,
    /// Largest accepted video, in bytes, sent as a multipart file or fetched from a URL.
    pub max_video_bytes: u64,
    /// Largest accepted document (SVG), in bytes: its size bounds the parse before any
    /// other limit can be checked.
    pub max_document_bytes: u64,
    /// Files one multipart request may carry; the files past it are refused (read through,
    /// counted in one item of the answer).
    pub max_files_per_request: usize,
    /// Parts one multipart request may carry, files and fields together; the body is not
    /// read past it.
    pub max_form_parts: usize,
    /// Largest multipart request body, in bytes, all parts together.
    pub max_request_bytes: u64,
    /// Largest accepted image, in pixels (width × height).
    pub max_pixels: u64,
    /// Most memory one decode may allocate, in bytes.
    pub max_alloc_bytes: u64,
    /// Frames an animated thumbnail may be made of: an animated GIF or WebP with more is
    /// refused (413) from its headers; a video preview samples at most this many.
    pub max_frames: u32,
    /// Pixels an animated thumbnail's source may have in all its frames (frames × canvas
    /// width × height), read from the headers before any frame is decoded; more is refused
    /// (413).
    pub max_animation_pixels: u64,
    /// Most bytes of metadata (ICC profiles, EXIF, XMP, comments, tables) a file may make a
    /// decoder keep; compressed metadata is never inflated.
    pub max_metadata_bytes: u64,
    /// How long a new connection may take to send a complete request head, and a body may
    /// stay idle, before the connection is closed (a body: refused with 408). Also the grace
    /// period before `min_body_bytes_per_sec` applies.
    pub read_timeout_secs: u64,
    /// How long a keep-alive connection may wait, idle between requests, before it is closed.
    pub keep_alive_secs: u64,
    /// The slowest average rate, in bytes per second, an upload body may arrive at once
    /// `read_timeout_secs` have passed (a body may take `read_timeout_secs + received /
    /// min_body_bytes_per_sec`); slower is refused with 408. 0: no minimum.
    pub min_body_bytes_per_sec: u64,
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// Open connections from one client IP address at most; more are answered 503 and closed.
    pub max_connections_per_client: usize,
    /// Memory all uploads being read may hold together, in decoded bytes; an upload that cannot
    /// get its share within 5 s is refused (503). At least `max_upload_bytes`.
    pub max_upload_memory_bytes: u64,
    /// Uploads read at once; more wait up to 5 s with their bodies unread, then are refused
    /// (503, `Retry-After`).
    pub max_inflight_uploads: usize,
    /// Jobs waiting or running at once; past it uploads are refused (503, `Retry-After`).
    pub max_queued_jobs: u64,
    /// Free space the data directory keeps; below it uploads are refused (507).
    pub min_free_disk_bytes: u64,
    /// Uploads one client (IP address) may make per second, with bursts of twice that;
    /// beyond, 429. 0: no per-client limit.
    pub uploads_per_client_per_second: u32,
    /// The longest side a client may ask a thumbnail for, in pixels.
    pub max_thumbnail_side: u32,
    /// Variants one record may have, asked for at upload and on demand together.
    pub max_variants: usize,
    /// The longest `?wait=` a client may ask for, in seconds.
    pub max_wait_secs: u64,
}

impl LimitsConfig {
    /// The largest accepted file of `media_type`: `max_video_bytes` for a video,
    /// `max_document_bytes` for a document (at most `max_upload_bytes`), else
    /// `max_upload_bytes`.
    pub fn max_bytes(&self, media_type: MediaType) -> u64 {
        if media_type.is_video() {
            self.max_video_bytes
        } else if media_type.is_document() {
            self.max_document_bytes.min(self.max_upload_bytes)
        } else {
            self.max_upload_bytes
        }
    }

    /// The largest accepted file that starts with `head`: by what its magic bytes say, and
    /// `max_upload_bytes` when they say nothing supported.
    pub fn max_bytes_of(&self, head: &[u8]) -> u64 {
        match crate::media::sniff(head) {
            crate::media::Sniffed::Media(media_type) => self.max_bytes(media_type),
            _ => self.max_upload_bytes,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 50 * 1024 * 1024,
            max_video_bytes: 1024 * 1024 * 1024,
            max_document_bytes: 10 * 1024 * 1024,
            max_files_per_request: 100,
            max_form_parts: 1000,
            max_request_bytes: 2 * 1024 * 1024 * 1024,
            max_pixels: 100_000_000,
            max_alloc_bytes: 1024 * 1024 * 1024,
            max_frames: 1000,
            max_animation_pixels: 500_000_000,
            max_metadata_bytes: 4 * 1024 * 1024,
            read_timeout_secs: 30,
            keep_alive_secs: 60,
            min_body_bytes_per_sec: 8 * 1024,
            max_connections: 4096,
            max_connections_per_client: 512,
            max_upload_memory_bytes: 1024 * 1024 * 1024,
            max_inflight_uploads: 64,
            max_queued_jobs: 100_000,
            min_free_disk_bytes: 256 * 1024 * 1024,
            uploads_per_client_per_second: 0,
            max_thumbnail_side: 4096,
            max_variants: 8,
            max_wait_secs: 60,
        }
    }
}
