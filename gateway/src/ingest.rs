//! Ingest: the checks and writes between a decoded upload and its record. Blocking (hashing,
//! header parsing, fsync): the upload route runs it on a blocking thread.
//!
//! 1. Sniff the magic bytes: they must say the declared media type.
//! 2. Read an image's header: an image over `limits.max_pixels`, or carrying more metadata
//!    than `limits.max_metadata_bytes` where it cannot be skipped, is refused here, before any
//!    pixel exists and without inflating anything. A header that cannot be read is left to
//!    the worker, whose error the record will carry. A video is probed by the worker (FFmpeg
//!    is kept off the upload path), within `limits.max_video_bytes`.
//! 3. Hash (MD5, SHA-256) and give the upload a fresh UUID v7.
//!
//! The caller then writes the bytes to media storage as `raw/<id>`. Streamed uploads
//! (multipart parts) hash as they arrive ([`Hasher`]) and are checked from their spooled
//! file ([`examine`]), so they are never whole in memory; their record is made once the form
//! has given every field ([`Examined::into_record`]).

use common::config::LimitsConfig;
pub use common::digest::{Digests, Hasher};
use common::media::{MediaType, Sniffed, sniff};
use common::record::{NewUpload, Record};
use common::variant::Variant;
use uuid::Uuid;
use worker::ThumbnailError;

use crate::error::ApiError;

/// What the client asked for besides the bytes, checked.
#[derive(Debug, Clone)]
pub struct Request {
    /// The client's file name.
    pub name: Option<String>,
    /// The variants to make.
    pub variants: Vec<Variant>,
    /// Where to post the record when final.
    pub callback_url: Option<String>,
    /// Whom to mail the record to when final.
    pub notify_email: Option<String>,
    /// The tenant the upload is for, with API keys.
    pub tenant: Option<String>,
}

/// Checks an upload held in memory; returns its new record (not yet in the store). With no
/// declared media type, the magic bytes name it.
pub fn ingest(
    bytes: &[u8],
    declared: Option<MediaType>,
    request: Request,
    limits: &LimitsConfig,
) -> Result<Record, ApiError> {
    let mut hasher = Hasher::default();
    hasher.update(bytes);
    Ok(examine(bytes, declared, limits)?.into_record(hasher.finish(), request))
}

/// What an upload's bytes were found to be: their media type, size and upright dimensions.
#[derive(Debug, Clone, Copy)]
pub struct Examined {
    media_type: MediaType,
    size: u64,
    dimensions: Option<(u32, u32)>,
}

/// Checks an upload's bytes (`bytes` must be all of it): the magic bytes against the declared
/// media type (with none, they name it), the size limit of that type, an image's header.
pub fn examine(
    bytes: &[u8],
    declared: Option<MediaType>,
    limits: &LimitsConfig,
) -> Result<Examined, ApiError> {
    let media_type = match (sniff(bytes), declared) {
        (Sniffed::Media(found), Some(declared)) if declared.admits(found) => declared,
        (Sniffed::Media(found), None) => found,
        (found, Some(declared)) => {
            return Err(ApiError::MediaTypeMismatch {
                declared: declared.to_string(),
                found: found.to_string(),
            });
        }
        (Sniffed::Other(found), None) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "the data is {found}, not a supported image or video"
            )));
        }
        (Sniffed::Unknown, None) => {
            return Err(ApiError::UnsupportedMediaType(
                "the data is not in any supported image or video format".to_owned(),
            ));
        }
    };
    if bytes.len() as u64 > limits.max_bytes(media_type) {
        return Err(ApiError::PayloadTooLarge {
            limit: limits.max_bytes(media_type),
        });
    }
    // A video's header is read by the worker's ffprobe, a document's by its renderer: not on
    // the upload path (the gateway never parses either).
    let dimensions = if media_type.is_video() || media_type.is_document() {
        None
    } else {
        probe(bytes, media_type, limits)?
    };
    Ok(Examined {
        media_type,
        size: bytes.len() as u64,
        dimensions,
    })
}

impl Examined {
    /// The new record (not yet in the store) of these bytes, for what the client asked.
    pub fn into_record(self, digests: Digests, request: Request) -> Record {
        let mut record = Record::new(NewUpload {
            media_id: Uuid::now_v7(),
            media_type: Some(self.media_type),
            name: request.name,
            size: self.size,
            md5: digests.md5,
            sha256: digests.sha256,
            dimensions: self.dimensions,
            variants: request.variants,
            callback_url: request.callback_url,
            notify_email: request.notify_email,
        });
        record.tenant = request.tenant;
        record
    }
}

/// An image's upright dimensions from its header: `None` when the header cannot be read (the
/// worker's decode will say why); an error when the image is over a limit.
fn probe(
    bytes: &[u8],
    media_type: MediaType,
    limits: &LimitsConfig,
) -> Result<Option<(u32, u32)>, ApiError> {
    match worker::decode::probe(bytes, media_type, limits) {
        Ok(dimensions) => Ok(Some(dimensions)),
        Err(error @ ThumbnailError::MetadataTooLarge { .. }) => {
            Err(ApiError::MetadataTooLarge(error.to_string()))
        }
        Err(error) if error.code() == 413 => Err(ApiError::TooManyPixels(error.to_string())),
        Err(error) if error.code() == 415 => Err(ApiError::UnsupportedMediaType(error.to_string())),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_data_that_is_not_what_it_claims() {
        let error = ingest(
            b"%PDF-1.7\n%\xe2\xe3",
            Some(MediaType::Png),
            Request {
                name: None,
                variants: Vec::new(),
                callback_url: None,
                notify_email: None,
                tenant: None,
            },
            &LimitsConfig::default(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "declared image/png but the data is application/pdf"
        );
    }
}
