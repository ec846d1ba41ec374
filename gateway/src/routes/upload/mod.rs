//! `POST /images`: accept images, store them, queue their jobs, answer 202.
//!
//! An upload is first let in by [`crate::admission`] (in-flight, queue and disk limits).
//! The body is the image in base64 and `Content-Type` is its media type; or `Content-Type:
//! application/json` with `{"data", "media_type", "name"}`; or `multipart/form-data` with
//! one or many files ([`multipart`]); or `application/octet-stream`, the file's own bytes. The
//! query parameters `name`, `sizes`, `fit`, `format`, `quality`, `enlarge`, `lossless`,
//! `gravity`, `focus`, `color`
//! ([`common::variant`]), `callback_url` and `notify_email` ([`crate::callbacks`]) may also
//! come as members of the JSON envelope. The answer is `202 Accepted`, `Location: /images/{media_id}` and
//! the record; it is sent only once the raw file, the record and its job (in the outbox) are
//! on disk. The job reaches the queue through [`crate::outbox`], never in the request.

mod commit;
mod multipart;

use commit::{Raw, commit};

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, EXPECT, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::media::MediaType;
use common::record::Record;

use common::variant::{self, Variant, VariantParams};
use serde::Deserialize;
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::Tenant;
use crate::body::{self, BodyTiming, envelope::Source};
use crate::error::ApiError;
use crate::ingest::{Request, ingest};
use crate::metrics::Refusal;
use crate::state::AppState;
use common::address;

/// The longest file name kept.
const MAX_NAME: usize = 255;

/// Query parameters of an upload (a JSON envelope may give the same as members, which win).
#[derive(Debug, Default, Deserialize)]
pub struct UploadParams {
    /// The client's file name.
    name: Option<String>,
    /// The variants to make.
    #[serde(flatten)]
    variants: VariantParams,
    /// Where to post the record when final.
    callback_url: Option<String>,
    /// Whom to mail the record to when final.
    notify_email: Option<String>,
    /// The tenant the upload is for (from its API key, not the query).
    #[serde(skip)]
    tenant: Option<String>,
    /// Who sent it, for per-client bounds: the tenant, else the IP address.
    #[serde(skip)]
    client: String,
}

impl UploadParams {
    /// Sets the parameters a JSON envelope gave as members.
    fn merge(&mut self, options: Vec<(&'static str, String)>) {
        for (option, value) in options {
            if let Some(slot) = self.slot(option) {
                *slot = Some(value);
            }
        }
    }

    /// Where the value of the upload parameter `name` goes; `None` for a name that is not one.
    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "name" => &mut self.name,
            "sizes" => &mut self.variants.sizes,
            "fit" => &mut self.variants.fit,
            "format" => &mut self.variants.format,
            "quality" => &mut self.variants.quality,
            "enlarge" => &mut self.variants.enlarge,
            "lossless" => &mut self.variants.lossless,
            "gravity" => &mut self.variants.gravity,
            "focus" => &mut self.variants.focus,
            "color" => &mut self.variants.color,
            "animated" => &mut self.variants.animated,
            "callback_url" => &mut self.callback_url,
            "notify_email" => &mut self.notify_email,
            _ => return None,
        })
    }

    /// What the upload asks for, checked: its name, variants, callback URL and mail.
    fn into_request(self, state: &AppState) -> Result<Request, ApiError> {
        let (variants, callback_url) = self.check(state)?;
        let notify_email = self.check_email(state)?;
        Ok(Request {
            name: check_name(self.name)?,
            variants,
            callback_url,
            notify_email,
            tenant: self.tenant,
        })
    }

    /// The address to mail the record to (the upload's, else the service-wide one),
    /// checked: mail must be on, and the address's domain allowed.
    fn check_email(&self, state: &AppState) -> Result<Option<String>, ApiError> {
        let config = &state.config;
        let Some(address) = self
            .notify_email
            .as_deref()
            .filter(|address| !address.is_empty())
            .or(config.callbacks.email.as_deref())
        else {
            return Ok(None);
        };
        if !state.callbacks.mail {
            return Err(ApiError::EmailNotAllowed(
                "mail is off: the service has no email.smtp_url".to_owned(),
            ));
        }
        crate::callbacks::email::check_address(address, &config.email.allowed_domains)
            .map(Some)
            .map_err(ApiError::EmailNotAllowed)
    }

    /// The variants asked for, and the callback URL (the upload's, else the service-wide
    /// one), checked.
    fn check(&self, state: &AppState) -> Result<(Vec<Variant>, Option<String>), ApiError> {
        let config = &state.config;
        let variants = variant::parse(&self.variants, &config.thumbnail, &config.limits)
            .and_then(|variants| {
                variant::check_formats(&variants, worker::encode::writes).map(|()| variants)
            })
            .map_err(ApiError::InvalidVariant)?;
        let callback_url = match self
            .callback_url
            .as_deref()
            .filter(|url| !url.is_empty())
            .or(config.callbacks.url.as_deref())
        {
            None => None,
            Some(_) if !state.callbacks.enabled => {
                return Err(ApiError::CallbackNotAllowed(
                    "callbacks are off: the service has no callbacks.secret to sign them with"
                        .to_owned(),
                ));
            }
            Some(url) => Some(
                address::check_url(url, &state.callbacks.allowed)
                    .map_err(ApiError::CallbackNotAllowed)?
                    .to_string(),
            ),
        };
        Ok((variants, callback_url))
    }
}

/// The handler.
#[utoipa::path(
    post,
    path = "/images",
    operation_id = "upload",
    tag = "images",
    summary = "Upload a file (base64, JSON envelope or multipart form)",
    description = "The body is the file in base64 with its media type as `Content-Type`; or the \
        file's own bytes as `application/octet-stream` (its type read from its bytes); or a \
        JSON envelope with `data` and `media_type`, or a `url` to fetch; or a \
        `multipart/form-data` form of files. The answer comes at once: 202 with the record, \
        `state: Processing`, and `Location`.",
    params(
        ("name" = Option<String>, Query, description = "The client's file name, kept as metadata"),
        ("sizes" = Option<String>, Query, description = "Boxes `WxH` (either side may be empty: `320x`) and preset names, comma-separated; default `thumbnail.width`x`thumbnail.height`", example = "100x100,400x300"),
        ("fit" = Option<common::variant::Fit>, Query, description = "How the image meets each box"),
        ("format" = Option<common::config::OutputFormat>, Query, description = "Output format (`avif` with the heif feature)"),
        ("quality" = Option<u8>, Query, minimum = 1, maximum = 100, description = "Quality of lossy output: JPEG, WebP, AVIF"),
        ("enlarge" = Option<bool>, Query, description = "Scale images smaller than the box up"),
        ("lossless" = Option<bool>, Query, description = "WebP: lossless instead of lossy at `quality`"),
        ("gravity" = Option<common::variant::Gravity>, Query, description = "`fit=cover`: the part of the image the crop keeps"),
        ("focus" = Option<common::variant::FocalPoint>, Query, description = "`gravity=focus` (implied): the point to keep, `x,y` as fractions of the upright image", example = "0.5,0.3"),
        ("color" = Option<common::config::ColorMode>, Query, description = "`srgb`: converted to sRGB; `keep`: the source's colours and profile"),
        ("animated" = Option<bool>, Query, description = "An animated GIF or WebP gives an animated WebP (GIF with `format=gif`) of every frame; a video, an animated preview of its first `thumbnail.preview_secs`; `format` must be `auto`, `webp` or `gif`"),
        ("callback_url" = Option<String>, Query, description = "Where to POST the record, signed, when it is final"),
        ("notify_email" = Option<String>, Query, description = "Whom to mail the record to, its first thumbnail attached, when it is final (a domain in `email.allowed_domains`)"),
    ),
    request_body(
        description = "The file, in base64 with its media type as `Content-Type` (every type of `MediaType`), or its bytes, or an envelope, or a form",
        content(
            (String = "application/octet-stream"),
            (String = "image/jpeg"),
            (String = "image/png", example = json!(crate::openapi::EXAMPLE_PNG)),
            (String = "image/gif"),
            (String = "image/webp"),
            (String = "image/tiff"),
            (String = "image/bmp"),
            (String = "image/jxl"),
            (String = "image/avif"),
            (String = "image/heic"),
            (String = "image/svg+xml"),
            (String = "application/pdf"),
            (String = "video/mp4"),
            (String = "video/quicktime"),
            (String = "video/webm"),
            (String = "video/x-matroska"),
            (String = "video/x-msvideo"),
            (crate::openapi::Envelope = "application/json"),
            (crate::openapi::UploadForm = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 202, description = "Accepted: the record (for a form, every file's)", body = crate::openapi::Accepted,
            headers(("Location" = String, description = "The record's URL (a form's first accepted file)"))),
        (status = 400, description = "A malformed body or parameter: `missing_content_type`, `invalid_base64`, `empty_body`, `invalid_json`, `invalid_multipart`, `no_files`, `invalid_parameter`, `callback_not_allowed`, `email_not_allowed`, `invalid_header`, `body_read_failed`", body = crate::openapi::ErrorBody),
        (status = 408, description = "The body came too slowly (`request_timeout`)", body = crate::openapi::ErrorBody),
        (status = 413, description = "Over a size limit: `payload_too_large`, `request_too_large`, `too_many_files`, `too_many_parts`, `too_many_pixels`, `metadata_too_large`", body = crate::openapi::ErrorBody),
        (status = 415, description = "A media type not accepted, or one the bytes contradict (`unsupported_media_type`, `media_type_mismatch`)", body = crate::openapi::ErrorBody),
        (status = 429, description = "Over the client's upload rate (`rate_limited`), or its uploads by URL in flight (`too_many_sources`)", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Too many uploads in flight or jobs queued (`overloaded`, `queue_full`), too many connections (`too_many_connections`), or a back-end unavailable (`store_unavailable`, `storage_unavailable`)", body = crate::openapi::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 507, description = "The data directory's disk is nearly full (`insufficient_storage`)", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn upload(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    tenant: Tenant,
    params: Result<Query<UploadParams>, QueryRejection>,
    headers: HeaderMap,
    mut body: Body,
) -> Response {
    let admitted = match state.readiness.admit_upload() {
        Ok(()) => state.admission.admit(&state.metrics, client.ip()).await,
        Err(refusal) => Err(refusal),
    };
    let outcome = match (params, admitted) {
        (Ok(Query(mut params)), Ok(_permit)) => {
            params.tenant = tenant.name().map(str::to_owned);
            params.client = tenant
                .name()
                .map_or_else(|| client.ip().to_string(), str::to_owned);
            accept(&state, params, &headers, &mut body).await
        }
        (Err(_), _) => Err(ApiError::InvalidQuery),
        (_, Err(refusal)) => Err(refusal),
    };
    // A client told to wait for "100 Continue" has sent nothing: there is nothing to drain.
    // A body read to its end drains at once; a multipart body cut short lingers.
    if !(outcome.is_err() && expects_continue(&headers)) {
        tokio::spawn(body::drain(body));
    }
    match outcome {
        Ok(response) => response,
        Err(error) => {
            count_refusal(&state, &error);
            error.into_response()
        }
    }
}

/// Counts a refused upload (or multipart file) in the metrics.
fn count_refusal(state: &AppState, error: &ApiError) {
    let (_, code) = error.status_and_code();
    state
        .metrics
        .uploads_refused
        .get_or_create(&Refusal { code })
        .inc();
}

async fn accept(
    state: &AppState,
    mut params: UploadParams,
    headers: &HeaderMap,
    body: &mut Body,
) -> Result<Response, ApiError> {
    // Refused before the body is read, when the query alone is wrong.
    params.check(state)?;
    let limits = &state.config.limits;
    let limit = limits.max_upload_bytes;
    let timing = BodyTiming {
        idle: Duration::from_secs(limits.read_timeout_secs),
        grace: Duration::from_secs(limits.read_timeout_secs),
        min_rate: limits.min_body_bytes_per_sec,
    };
    let mut content_types = headers.get_all(CONTENT_TYPE).iter();
    let content_type = content_types.next().ok_or(ApiError::MissingContentType)?;
    if content_types.next().is_some() {
        return Err(ApiError::InvalidHeader(
            "Content-Type is given more than once",
        ));
    }
    let content_type = content_type
        .to_str()
        .map_err(|_| ApiError::UnsupportedMediaType("the Content-Type is not text".to_owned()))?;
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let length = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse().ok());
    if essence.eq_ignore_ascii_case("multipart/form-data") {
        let boundary = multer::parse_boundary(content_type)
            .map_err(|_| ApiError::InvalidMultipart("the Content-Type has no boundary"))?;
        // On a task of its own: a client that hangs up cancels nothing, and the files that
        // arrived whole are still committed.
        let (state, mut form) = (state.clone(), std::mem::take(body));
        let task = tokio::spawn(
            async move {
                let answer =
                    multipart::accept(&state, params, boundary, length, timing, &mut form).await;
                (answer, form)
            }
            .instrument(tracing::Span::current()),
        );
        let (answer, form) = task
            .await
            .map_err(|error| ApiError::Io(std::io::Error::other(error)))?;
        *body = form;
        return answer;
    }
    // The decoded bytes grow under this grant, held until they are on disk.
    let mut grant = state.memory.grant();

    let (bytes, media_type) = if essence.eq_ignore_ascii_case("application/json") {
        let envelope = body::read_envelope(body, limit, length, timing, &mut grant).await?;
        if envelope.name.is_some() {
            params.name = envelope.name;
        }
        params.merge(envelope.options);
        match envelope.source {
            Source::Data { data, media_type } => {
                (data, Some(parse_media_type(state, &media_type)?))
            }
            Source::Url(url) => return accept_url(state, params, url).await,
        }
    } else if essence.eq_ignore_ascii_case("application/octet-stream") {
        // The file's own bytes: its magic bytes say what it is.
        let bytes = body::read_bytes(body, limit, length, timing, &mut grant).await?;
        if bytes.is_empty() {
            return Err(ApiError::EmptyBody);
        }
        (bytes, None)
    } else {
        let media_type = parse_media_type(state, content_type)?;
        let bytes = body::read_base64(body, limit, length, timing, &mut grant).await?;
        (bytes, Some(media_type))
    };
    let request = params.into_request(state)?;
    let limits = state.config.limits.clone();
    let (record, bytes) = tokio::task::spawn_blocking(move || {
        ingest(&bytes, media_type, request, &limits).map(|record| (record, bytes))
    })
    .await
    .map_err(|error| ApiError::Io(std::io::Error::other(error)))??;
    let record = commit(state, record, Raw::Bytes(Bytes::from(bytes))).await?;
    drop(grant);
    Ok(accepted(state, record))
}

/// The answer to an accepted upload: 202, `Location` and the record; counted.
fn accepted(state: &AppState, record: Record) -> Response {
    state.metrics.accepted(&record);
    let location = format!("/images/{}", record.media_id);
    (
        StatusCode::ACCEPTED,
        [(LOCATION, location)],
        Json(record.public()),
    )
        .into_response()
}

/// Accepts a source to fetch: the record and its job (which has a worker fetch the URL
/// first), with no bytes yet. The URL is checked here as a callback URL is, without
/// resolving it: its form, and a host that is plainly internal (a refused address literal,
/// `localhost`) is a 400 at once. Where a name leads is checked when it is fetched, and a
/// refusal then ends the record as `Error` 400.
async fn accept_url(
    state: &AppState,
    params: UploadParams,
    url: String,
) -> Result<Response, ApiError> {
    let allowed = address::Allowed::new(&state.config.sources.allowed_hosts);
    let url = address::check_url(&url, &allowed)
        .map_err(|reason| ApiError::InvalidParameter(format!("url: {reason}")))?;
    let client = params.client.clone();
    let max = state.config.sources.max_in_flight_per_client;
    state.sources.check(&client, max)?;
    let request = params.into_request(state)?;
    let mut record = Record::fetching(
        Uuid::now_v7(),
        url.to_string(),
        request.name,
        request.variants,
        request.callback_url,
        request.notify_email,
    );
    record.tenant = request.tenant;
    let record = commit(state, record, Raw::None).await?;
    state.sources.accepted(&client, record.media_id);
    Ok(accepted(state, record))
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn parse_media_type(state: &AppState, text: &str) -> Result<MediaType, ApiError> {
    text.parse().map_err(|_| unsupported(state))
}

/// The refusal of a media type this service does not read, listing those it does: the image
/// types this build decodes, and the video types when FFmpeg is there.
fn unsupported(state: &AppState) -> ApiError {
    let readable: Vec<&str> = common::media::ALL
        .into_iter()
        .filter(|media_type| match media_type.is_video() {
            true => state.video.is_ok(),
            false => worker::decode::reads(*media_type),
        })
        .map(MediaType::as_str)
        .collect();
    ApiError::UnsupportedMediaType(format!(
        "the media type is not supported; this service reads {}",
        readable.join(", ")
    ))
}

/// A name is metadata only (files are named by id), but it is shown to people: keep it short
/// and free of characters that hide or reorder text.
fn check_name(name: Option<String>) -> Result<Option<String>, ApiError> {
    match name {
        Some(name) if name.len() > MAX_NAME => Err(ApiError::InvalidParameter(format!(
            "name is longer than {MAX_NAME} bytes"
        ))),
        Some(name) => match name.chars().find(|&c| is_hidden(c)) {
            Some(found) => Err(ApiError::InvalidParameter(format!(
                "name contains U+{:04X}: control characters, invisible formatting, bidirectional \
                 overrides and line or paragraph separators are refused",
                u32::from(found)
            ))),
            None if name.trim().is_empty() => Ok(None),
            None => Ok(Some(name)),
        },
        None => Ok(None),
    }
}

/// Whether a character is a control character, or one that changes how the text around it
/// shows without showing itself: bidirectional marks, embeddings, overrides and isolates
/// (`U+202E` turns `gpj.exe` into what reads as `exe.jpg`), zero-width and invisible
/// operators, tag characters, the byte order mark, line and paragraph separators, and the
/// replacement character (what bytes that are not UTF-8 become in a query string). The
/// zero-width joiner and non-joiner stay: emoji sequences and several scripts need them.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'
                | '\u{200E}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{FFFD}'
                | '\u{E0000}'..='\u{E007F}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_hide_or_reorder_text_are_refused() {
        for bad in [
            "photo\u{202E}gpj.exe",
            "a\u{2028}b",
            "a\u{2029}b",
            "a\u{200F}b",
            "a\u{2066}b\u{2069}",
            "\u{FEFF}a",
            "a\u{E0041}",
            "tab\there",
            "nel\u{85}",
        ] {
            let error = check_name(Some(bad.to_owned())).unwrap_err();
            assert!(error.to_string().starts_with("name contains U+"), "{bad:?}");
        }
        for good in [
            "café.png",
            "👨\u{200D}👩\u{200D}👧.jpg",
            "می\u{200C}خواهم.png",
            "ファイル.gif",
        ] {
            assert_eq!(
                check_name(Some(good.to_owned())).unwrap().as_deref(),
                Some(good)
            );
        }
        assert_eq!(check_name(Some("  ".to_owned())).unwrap(), None);
    }
}
