//! The record of one uploaded image: what the gateway stores and what the API returns.
//!
//! Field names follow the original Thumbnailify design so that its clients keep working:
//! `media_id`, `media_type`, `service`, `state`, `message`, `code`. A record is created
//! [`State::Processing`] by the gateway and becomes final ([`State::Completed`] or
//! [`State::Error`]) once, when the worker's result arrives. A final record never changes again.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::media::MediaType;
use crate::message::{Job, Made, Source};
use crate::time::now_rfc3339;
use crate::variant::{Fit, Variant};

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

/// Facts about a finished thumbnail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ThumbnailInfo {
    /// The thumbnail's format.
    pub media_type: MediaType,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Size of the encoded thumbnail in bytes.
    pub size: u64,
}

/// How far one variant has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VariantState {
    /// Asked for, not made yet.
    Processing,
    /// Made: its facts are filled in.
    Ready,
    /// It could not be made; `error` says why.
    Failed,
}

/// Why a variant could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VariantFailure {
    /// HTTP-like status, as a record's `code`.
    pub code: u16,
    /// Why, for people.
    pub message: String,
}

/// One variant in a record: what was asked for, and what was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Thumbnail {
    /// The variant's name, as in `/images/{id}/thumbnails/{name}`.
    pub name: String,
    /// How far it has come.
    pub state: VariantState,
    /// How the image meets the box.
    pub fit: Fit,
    /// Width in pixels, once made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Height in pixels, once made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Its format, once made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// Size of the encoded thumbnail in bytes, once made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Where to fetch it.
    pub url: String,
    /// Why it failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<VariantFailure>,
    /// What was asked for.
    pub request: Variant,
}

impl Thumbnail {
    /// A variant of `media_id` asked for and not made yet.
    pub fn requested(media_id: Uuid, request: Variant) -> Self {
        Self {
            url: format!("/images/{media_id}/thumbnails/{}", request.name),
            name: request.name.clone(),
            state: VariantState::Processing,
            fit: request.fit,
            width: None,
            height: None,
            media_type: None,
            size: None,
            error: None,
            request,
        }
    }

    /// The facts of the thumbnail made, when it is ready.
    pub fn info(&self) -> Option<ThumbnailInfo> {
        match (
            self.state,
            self.media_type,
            self.width,
            self.height,
            self.size,
        ) {
            (VariantState::Ready, Some(media_type), Some(width), Some(height), Some(size)) => {
                Some(ThumbnailInfo {
                    media_type,
                    width,
                    height,
                    size,
                })
            }
            _ => None,
        }
    }
}

/// Where a record's completion callback stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallbackState {
    /// To be delivered once the record is final (and retried until it is, or fails).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: a 4xx answer, a refused address, or every attempt failed.
    Failed,
}

/// A record's completion callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Callback {
    /// Where the record is posted.
    pub url: String,
    /// Where the delivery stands.
    pub state: CallbackState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The HTTP status of the last answer, if there was one.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When the next attempt is due (RFC 3339), while pending and after a failed attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

/// One step in a record's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// When it happened (RFC 3339).
    pub at: String,
    /// What happened: `accepted`, `queued`, `started`, `completed`, `failed`, `requeued`,
    /// `variant_requested`, `variant_completed`, `variant_failed`, `deduplicated`, `callback_delivered`,
    /// `callback_retry`, `callback_failed`.
    pub event: String,
    /// The service that wrote it: `gateway` or `worker`.
    pub service: Service,
    /// The process, for a worker (`host:pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// More about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The most events a record keeps; older ones beyond the first are dropped.
pub const MAX_EVENTS: usize = 64;

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
}

impl Record {
    /// A fresh record in [`State::Processing`], held by the gateway.
    pub fn new(upload: NewUpload) -> Self {
        let now = now_rfc3339();
        Self {
            media_id: upload.media_id,
            media_type: upload.media_type,
            source_url: None,
            original: None,
            duplicate_of: None,
            tenant: None,
            name: upload.name,
            service: Service::Gateway,
            state: State::Processing,
            message: "queued, waiting for a worker".to_owned(),
            code: CODE_PROCESSING,
            size: upload.size,
            md5: upload.md5,
            sha256: upload.sha256,
            width: upload.dimensions.map(|(w, _)| w),
            height: upload.dimensions.map(|(_, h)| h),
            duration: None,
            video: None,
            created_at: now.clone(),
            updated_at: now,
            thumbnail: None,
            thumbnails: upload
                .variants
                .into_iter()
                .map(|variant| Thumbnail::requested(upload.media_id, variant))
                .collect(),
            callback: upload.callback_url.map(|url| Callback {
                url,
                state: CallbackState::Pending,
                attempts: 0,
                last_status: None,
                last_error: None,
                next_attempt_at: None,
            }),
            attempts: 1,
            dead_letter: false,
            traceparent: None,
            events: vec![Event::new("accepted", Service::Gateway, None)],
        }
    }

    /// Whether its raw upload is still needed: it has work left, or it is a dead letter that
    /// may be retried.
    pub fn needs_raw(&self) -> bool {
        self.needs_work() || self.dead_letter
    }

    /// Marks a record failed without a worker's answer as a dead letter (see
    /// [`Record::dead_letter`]).
    pub fn give_up(&mut self, code: u16, message: &str) -> bool {
        if self.is_final() {
            return false;
        }
        self.fail(code, message);
        self.dead_letter = true;
        self.updated_at = now_rfc3339();
        self.push_event(Event::new(
            "dead_lettered",
            Service::Gateway,
            Some(message.to_owned()),
        ));
        true
    }

    /// Queues a dead letter again, as an operator asks: processing, its failed variants asked
    /// for again, a fresh count of attempts. Returns whether it was a dead letter.
    pub fn retry(&mut self) -> bool {
        if !self.dead_letter {
            return false;
        }
        self.dead_letter = false;
        self.state = State::Processing;
        self.service = Service::Gateway;
        self.code = CODE_PROCESSING;
        self.message = "queued again by an operator".to_owned();
        self.thumbnail = None;
        self.attempts = 1;
        if let Some(callback) = &mut self.callback {
            // The client hears of the new outcome too.
            callback.state = CallbackState::Pending;
            callback.attempts = 0;
            callback.last_status = None;
            callback.last_error = None;
            callback.next_attempt_at = None;
        }
        for entry in &mut self.thumbnails {
            if entry.state == VariantState::Failed {
                entry.state = VariantState::Processing;
                entry.error = None;
            }
        }
        self.updated_at = now_rfc3339();
        self.push_event(Event::new("retried", Service::Gateway, None));
        true
    }

    /// Closes a dead letter for good: it stays failed and its raw upload may go. Returns
    /// whether it was a dead letter.
    pub fn discard(&mut self) -> bool {
        if !self.dead_letter {
            return false;
        }
        self.dead_letter = false;
        self.updated_at = now_rfc3339();
        self.push_event(Event::new("discarded", Service::Gateway, None));
        true
    }

    /// Whether the record has reached a final state.
    pub fn is_final(&self) -> bool {
        self.state != State::Processing
    }

    /// Whether some work is still to be done: the job, or a variant asked for on demand.
    pub fn needs_work(&self) -> bool {
        !self.is_final()
            || self
                .thumbnails
                .iter()
                .any(|t| t.state == VariantState::Processing)
    }

    /// The job that does what is left: every variant while the record is processing, the
    /// variants still processing once it is final. A record from before variants existed
    /// makes the configured default (an empty list).
    pub fn job(&self) -> Job {
        let variants = self
            .thumbnails
            .iter()
            .enumerate()
            .filter(|(_, t)| !self.is_final() || t.state == VariantState::Processing)
            .map(|(index, t)| crate::message::JobVariant {
                index: u16::try_from(index).unwrap_or(u16::MAX),
                variant: t.request.clone(),
            })
            .collect();
        Job {
            media_id: self.media_id,
            media_type: self.media_type,
            source_url: self
                .media_type
                .is_none()
                .then(|| self.source_url.clone())
                .flatten(),
            raw_path: crate::files::raw_relative_path(self.raw_id()),
            variants,
            traceparent: self.traceparent.clone(),
        }
    }

    /// The id its original is stored under: the content id, else its own media id.
    pub fn raw_id(&self) -> Uuid {
        self.original.unwrap_or(self.media_id)
    }

    /// Whether `other` asks for exactly the same variants.
    pub fn asks_as(&self, other: &Record) -> bool {
        self.thumbnails.len() == other.thumbnails.len()
            && self
                .thumbnails
                .iter()
                .zip(&other.thumbnails)
                .all(|(mine, theirs)| mine.request == theirs.request)
    }

    /// Completes this record from `canonical`, a completed record of the same bytes and
    /// variants whose thumbnails were copied to this record's keys.
    pub fn complete_from(&mut self, canonical: &Record) {
        self.state = State::Completed;
        self.code = canonical.code;
        self.width = canonical.width;
        self.height = canonical.height;
        self.duration = canonical.duration;
        self.video.clone_from(&canonical.video);
        self.thumbnail = canonical.thumbnail.clone();
        for (mine, theirs) in self.thumbnails.iter_mut().zip(&canonical.thumbnails) {
            let url = std::mem::take(&mut mine.url);
            *mine = theirs.clone();
            mine.url = url;
        }
        self.duplicate_of = Some(canonical.media_id);
        self.message = format!(
            "deduplicated: the same bytes and variants as {}",
            canonical.media_id
        );
        self.updated_at = now_rfc3339();
    }

    /// A fresh record for a source to fetch from `url`: no bytes, media type or digests yet,
    /// `message: "fetching"`; its job has the worker fetch it first.
    pub fn fetching(
        media_id: Uuid,
        url: String,
        name: Option<String>,
        variants: Vec<Variant>,
        callback_url: Option<String>,
    ) -> Self {
        let mut record = Self::new(NewUpload {
            media_id,
            media_type: None,
            name,
            size: 0,
            md5: String::new(),
            sha256: String::new(),
            dimensions: None,
            variants,
            callback_url,
        });
        record.source_url = Some(url);
        record.message = "fetching".to_owned();
        record
    }

    /// Takes what a fetched source turned out to be.
    pub fn apply_source(&mut self, source: &Source) {
        self.media_type = Some(source.media_type);
        self.size = source.size;
        self.md5.clone_from(&source.md5);
        self.sha256.clone_from(&source.sha256);
    }

    /// When the completion callback is due, if it is: once the record is final, while the
    /// delivery is pending (at once, or at the time of its next attempt).
    pub fn callback_due(&self) -> Option<String> {
        let callback = self.callback.as_ref()?;
        (self.is_final() && callback.state == CallbackState::Pending).then(|| {
            callback
                .next_attempt_at
                .clone()
                .unwrap_or_else(|| self.updated_at.clone())
        })
    }

    /// Adds an event to the history (keeping the first and the latest when it is long).
    pub fn push_event(&mut self, event: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.remove(1);
        }
        self.events.push(event);
    }

    /// Whether variant `index` was made (and its object is needed). A record from before
    /// variants existed has its one thumbnail as variant 0.
    pub fn has_made(&self, index: u16) -> bool {
        match self.thumbnails.get(usize::from(index)) {
            Some(entry) => entry.state == VariantState::Ready,
            None => self.thumbnails.is_empty() && index == 0 && self.thumbnail.is_some(),
        }
    }

    /// The record as the API shows it: without its history and its tenant.
    pub fn public(mut self) -> Self {
        self.events = Vec::new();
        self.tenant = None;
        self
    }

    /// Applies the variants a worker made. A processing record becomes completed, with the
    /// first variant as `thumbnail`; in a final record, only variants still processing (asked
    /// for on demand) change. Returns whether anything changed.
    pub fn apply_made(&mut self, made: &[Made], width: u32, height: u32) -> bool {
        let (mut changed, is_final) = (false, self.is_final());
        for made in made {
            let Some(entry) = self.thumbnails.get_mut(usize::from(made.index)) else {
                continue;
            };
            if entry.name != made.name || (is_final && entry.state != VariantState::Processing) {
                continue;
            }
            match (&made.info, &made.error) {
                (Some(info), _) => {
                    entry.state = VariantState::Ready;
                    entry.width = Some(info.width);
                    entry.height = Some(info.height);
                    entry.media_type = Some(info.media_type);
                    entry.size = Some(info.size);
                    entry.error = None;
                }
                (None, Some(error)) => {
                    entry.state = VariantState::Failed;
                    entry.error = Some(error.clone());
                }
                (None, None) => continue,
            }
            changed = true;
        }
        if !self.is_final() {
            self.state = State::Completed;
            self.code = CODE_COMPLETED;
            self.message = "thumbnail ready".to_owned();
            self.width = Some(width);
            self.height = Some(height);
            self.thumbnail = self.thumbnails.first().and_then(Thumbnail::info);
            changed = true;
        }
        changed
    }

    /// Records a failure of the job: a processing record becomes `Error`; in a final record,
    /// the variants still processing fail. Returns whether anything changed.
    pub fn fail(&mut self, code: u16, message: &str) -> bool {
        let mut changed = false;
        for entry in &mut self.thumbnails {
            if entry.state == VariantState::Processing {
                entry.state = VariantState::Failed;
                entry.error = Some(VariantFailure {
                    code,
                    message: message.to_owned(),
                });
                changed = true;
            }
        }
        if !self.is_final() {
            self.state = State::Error;
            self.code = code;
            self.message = message.to_owned();
            changed = true;
        }
        changed
    }
}

impl Event {
    /// An event happening now.
    pub fn new(event: &str, service: Service, message: Option<String>) -> Self {
        Self {
            at: now_rfc3339(),
            event: event.to_owned(),
            service,
            by: None,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            }),
            error: (!ok).then(|| VariantFailure {
                code: 500,
                message: "cannot encode".to_owned(),
            }),
        }
    }

    #[test]
    fn a_failed_variant_is_recorded_and_the_others_complete() {
        let mut record = record(&["a", "b"]);
        assert!(record.needs_work() && record.callback_due().is_none());
        assert!(record.apply_made(&[made(0, "a", false), made(1, "b", true)], 20, 10));
        assert_eq!(record.state, State::Completed);
        assert_eq!(record.thumbnails[0].state, VariantState::Failed);
        assert_eq!(record.thumbnails[0].error.as_ref().unwrap().code, 500);
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
