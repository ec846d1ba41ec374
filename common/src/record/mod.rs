//! The record of one uploaded image: what the gateway stores and what the API returns.
//!
//! Field names follow the original Thumbnailify design so that its clients keep working:
//! `media_id`, `media_type`, `service`, `state`, `message`, `code`. A record is created
//! [`State::Processing`] by the gateway and becomes final ([`State::Completed`] or
//! [`State::Error`]) once, when the worker's result arrives. A final record never changes again.

mod callback;
mod history;
mod lifecycle;
mod placeholder;
mod thumbnail;

pub use callback::{Callback, CallbackState, Email};
pub use history::{Event, MAX_EVENTS};
pub use placeholder::Placeholder;
pub use thumbnail::{Thumbnail, ThumbnailInfo, VariantFailure, VariantState};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::media::MediaType;
use crate::variant::Variant;

/// Which part of the system holds the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// Accepted and queued, waiting for a worker.
    Gateway,
    /// A worker has taken the job (or finished it).
    Worker,
}

/// How far the job has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum State {
    /// Accepted, not finished yet.
    Processing,
    /// The thumbnail is ready.
    Completed,
    /// The job failed for good; `message` says why.
    Error,
}

/// The `code` of a record still processing (HTTP 102 Processing).
pub const CODE_PROCESSING: u16 = 102;
/// The `code` of a completed record.
pub const CODE_COMPLETED: u16 = 200;

/// The content id of bytes whose SHA-256 is `sha256` (hex): a UUID (version 8) made of its
/// first 122 bits, naming the stored original shared by every upload of those bytes. `None`
/// for text that is not a SHA-256.
pub fn content_id(sha256: &str) -> Option<Uuid> {
    if sha256.len() != 64 || !sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(sha256.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Some(Uuid::from_bytes(bytes))
}

/// What a video's probe found about its picture stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VideoInfo {
    /// The codec, as FFmpeg names it (`h264`, `hevc`, `vp9`, `av1`, …).
    pub codec: String,
    /// Frames per second (the stream's average; `null` when it declares none).
    pub fps: Option<f64>,
    /// The width of the frames as stored, before any display rotation.
    pub width: u32,
    /// The height of the frames as stored, before any display rotation.
    pub height: u32,
    /// The display rotation, in degrees clockwise (0, 90, 180 or 270); the poster and the
    /// record's `width` and `height` are upright.
    pub rotation: u16,
}

/// The record of one upload: an image, or a video thumbnailed from its poster frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Record {
    /// The image's id: a UUID v7, so ids sort by upload time.
    pub media_id: Uuid,
    /// The uploaded image's media type (checked against its magic bytes); `null` while a
    /// source given by URL is still to be fetched.
    pub media_type: Option<MediaType>,
    /// The URL the source was fetched from, for an upload that gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_url: Option<String>,
    /// The content id naming the stored original (`raw/<original>`, from the bytes'
    /// SHA-256: [`content_id`]), shared by every record of the same bytes; absent when the
    /// original is stored by media id (records from before, fetched sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Uuid>,
    /// The record this one was (or is being) completed from: an upload of the same bytes
    /// asking for the same variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<Uuid>,
    /// The tenant whose upload this is, when API keys are configured: only that tenant's
    /// requests see it. Kept in the store, never shown ([`Record::public`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(ignore)]
    pub tenant: Option<String>,
    /// The client's name for the file, if it gave one. Never used as a path.
    pub name: Option<String>,
    /// Which part of the system holds the job.
    pub service: Service,
    /// How far the job has come.
    pub state: State,
    /// A human-readable account of the state; on failure, why.
    pub message: String,
    /// The HTTP-like status of the outcome: 102 while processing, 200 when done, 4xx/5xx on
    /// failure.
    pub code: u16,
    /// Size of the raw image in bytes.
    pub size: u64,
    /// MD5 of the raw image, hex.
    pub md5: String,
    /// SHA-256 of the raw image, hex.
    pub sha256: String,
    /// The source image's width, once known (after orientation is applied).
    pub width: Option<u32>,
    /// The source image's height, once known (after orientation is applied).
    pub height: Option<u32>,
    /// A video's length in seconds, once the job has probed it; `null` for images.
    #[serde(default)]
    pub duration: Option<f64>,
    /// A video's picture stream, once probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<VideoInfo>,
    /// What a client can show while the thumbnail loads, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<Placeholder>,
    /// When the upload was accepted (RFC 3339).
    pub created_at: String,
    /// When the record last changed (RFC 3339).
    pub updated_at: String,
    /// The first variant, once completed (for clients that know one thumbnail).
    pub thumbnail: Option<ThumbnailInfo>,
    /// Every variant, asked for at upload or later on demand, in the order asked.
    #[serde(default)]
    pub thumbnails: Vec<Thumbnail>,
    /// The completion callback, if one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<Callback>,
    /// The mail sent when final, if one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<Email>,
    /// How many times the job has been queued (more than once when it got stuck).
    #[serde(default = "one")]
    pub attempts: u32,
    /// The job was given up on without a worker's answer: its worker died on every delivery
    /// (RabbitMQ's delivery limit), or it was stuck on every attempt. Its raw upload is kept,
    /// so that an operator can retry it (or discard it) from the dashboard.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dead_letter: bool,
    /// The upload's trace (W3C `traceparent`) when traces are exported: its jobs continue it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The record's history, oldest first; served by `/images/{id}/events`, left out of the
    /// record's own representation by [`Record::public`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

fn one() -> u32 {
    1
}

/// What the gateway knows of an upload when it accepts it.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// The id to give the record.
    pub media_id: Uuid,
    /// The checked media type; `None` for a source still to be fetched.
    pub media_type: Option<MediaType>,
    /// The client's file name, if any.
    pub name: Option<String>,
    /// Size of the raw bytes.
    pub size: u64,
    /// MD5 of the raw bytes, hex.
    pub md5: String,
    /// SHA-256 of the raw bytes, hex.
    pub sha256: String,
    /// Dimensions read from the header at upload, when readable there.
    pub dimensions: Option<(u32, u32)>,
    /// The variants to make (at least one).
    pub variants: Vec<Variant>,
    /// Where to post the record when final, if anywhere.
    pub callback_url: Option<String>,
    /// Whom to mail the record to when final, if anyone.
    pub notify_email: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Made;

    #[test]
    fn a_content_id_is_a_version_8_uuid_of_the_digest() {
        let sha = "91822e94be9caef7ce496541240ee750d654470580d711a1895be4e73e5431e5";
        let id = content_id(sha).unwrap();
        assert_eq!(id.to_string(), "91822e94-be9c-8ef7-8e49-6541240ee750");
        assert_eq!(id.get_version_num(), 8);
        assert_eq!(content_id(&sha.to_uppercase()), Some(id));
        for bad in ["", "abc", &sha[1..], &format!("{}g", &sha[1..])] {
            assert_eq!(content_id(bad), None, "{bad}");
        }
    }
    use crate::config::ThumbnailConfig;

    fn record(names: &[&str]) -> Record {
        let default = Variant::default_for(&ThumbnailConfig::default());
        Record::new(NewUpload {
            media_id: Uuid::now_v7(),
            media_type: Some(MediaType::Png),
            name: None,
            size: 1,
            md5: String::new(),
            sha256: String::new(),
            dimensions: None,
            variants: names
                .iter()
                .map(|name| Variant {
                    name: (*name).to_owned(),
                    ..default.clone()
                })
                .collect(),
            callback_url: Some("https://hooks.example.org/".to_owned()),
            notify_email: None,
        })
    }

    #[test]
    fn a_dead_letter_keeps_its_raw_upload_until_retried_or_discarded() {
        let mut record = record(&["100x100", "400x300"]);
        assert!(!record.retry() && !record.discard(), "not a dead letter");
        assert!(record.give_up(504, "stuck"));
        assert!(!record.give_up(504, "stuck"), "once");
        assert_eq!((record.state, record.code), (State::Error, 504));
        assert!(record.dead_letter && record.needs_raw() && !record.needs_work());
        assert_eq!(record.events.last().unwrap().event, "dead_lettered");

        let mut retried = record.clone();
        retried.callback.as_mut().unwrap().state = CallbackState::Delivered;
        assert!(retried.retry());
        assert_eq!(retried.state, State::Processing);
        assert_eq!(retried.service, Service::Gateway);
        assert!(!retried.dead_letter && retried.needs_work());
        assert!(
            retried
                .thumbnails
                .iter()
                .all(|entry| entry.state == VariantState::Processing && entry.error.is_none())
        );
        assert_eq!(retried.callback.unwrap().state, CallbackState::Pending);

        assert!(record.discard());
        assert!(!record.dead_letter && !record.needs_raw());
        assert_eq!(record.state, State::Error);
        assert!(!record.retry(), "a discarded letter stays failed");
    }

    #[test]
    fn a_duplicate_takes_the_videos_facts_from_its_canonical_record() {
        let mut canonical = record(&["100x100"]);
        canonical.state = State::Completed;
        canonical.duration = Some(4.0);
        canonical.video = Some(VideoInfo {
            codec: "h264".to_owned(),
            fps: Some(25.0),
            width: 320,
            height: 240,
            rotation: 0,
        });
        let mut duplicate = record(&["100x100"]);
        duplicate.complete_from(&canonical);
        assert_eq!(duplicate.duration, Some(4.0));
        assert_eq!(duplicate.video, canonical.video);
        assert_eq!(duplicate.duplicate_of, Some(canonical.media_id));
    }

    fn made(index: u16, name: &str, ok: bool) -> Made {
        Made {
            index,
            name: name.to_owned(),
            info: ok.then_some(ThumbnailInfo {
                media_type: MediaType::Jpeg,
                width: 10,
                height: 5,
                size: 99,
                frames: None,
            }),
            error: (!ok).then(|| VariantFailure::new(500, "cannot encode".to_owned())),
        }
    }

    #[test]
    fn a_failed_variant_is_recorded_and_the_others_complete() {
        let mut record = record(&["a", "b"]);
        assert!(record.needs_work() && record.callback_due().is_none());
        assert!(record.apply_made(&[made(0, "a", false), made(1, "b", true)], 20, 10));
        assert_eq!(record.state, State::Completed);
        assert_eq!(record.thumbnails[0].state, VariantState::Failed);
        let failure = record.thumbnails[0].error.as_ref().unwrap();
        assert_eq!(
            (failure.code.as_str(), failure.status),
            ("internal_error", 500)
        );
        assert_eq!(record.thumbnails[1].info().unwrap().size, 99);
        assert_eq!(record.thumbnail, None, "`thumbnail` is the first variant");
        assert!(!record.has_made(0) && record.has_made(1) && !record.has_made(2));
        assert!(!record.needs_work());
        assert!(record.callback_due().is_some(), "due once final");
        // Applied again (a job run twice): nothing changes.
        assert!(!record.apply_made(&[made(1, "b", true)], 20, 10));
    }

    #[test]
    fn a_variant_asked_for_later_is_all_the_job_makes() {
        let mut record = record(&["a"]);
        record.apply_made(&[made(0, "a", true)], 20, 10);
        let mut later = record.thumbnails[0].request.clone();
        later.name = "b".to_owned();
        record
            .thumbnails
            .push(Thumbnail::requested(record.media_id, later));
        assert!(record.needs_work());
        let job = record.job();
        assert_eq!(job.variants.len(), 1);
        assert_eq!(
            (job.variants[0].index, job.variants[0].variant.name.as_str()),
            (1, "b")
        );
        // A failure of that job fails the variant, not the completed record.
        assert!(record.fail(422, "gone"));
        assert_eq!(record.state, State::Completed);
        assert_eq!(record.thumbnails[1].state, VariantState::Failed);
        assert!(!record.needs_work());
    }

    #[test]
    fn the_public_record_has_no_history() {
        let record = record(&["a"]);
        assert_eq!(record.events.len(), 1);
        let json = serde_json::to_value(record.public()).unwrap();
        assert!(json.get("events").is_none());
        assert_eq!(
            json["thumbnails"][0]["url"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next(),
            Some("a")
        );
    }
}
