//! `GET /images/{media_id}/thumbnail` (the first variant) and
//! `GET /images/{media_id}/thumbnails/{name}` (any variant): the thumbnail, the mirror of the
//! upload.
//!
//! A name the record does not have, that is a size (`640x480`, with `fit`, `format`,
//! `quality`, `enlarge` as query parameters) or a preset, is made on demand when raw uploads
//! are kept (`keep_raw`): the record gains it as `processing`, its job is queued in the same
//! transaction, and the answer is 202 with `Location` and `Retry-After`; asking again before
//! it is made does not queue it twice. At most `limits.max_variants` per record.
//!
//! By default the body is the thumbnail in base64 with the thumbnail's media type as
//! `Content-Type`. When `Accept` names that media type or `image/*`, the body is the raw bytes,
//! so that an `<img>` tag works; when it names `application/octet-stream` (what generated
//! clients ask for bytes with), the raw bytes as that type. A thumbnail never changes once made: it carries a strong
//! `ETag` (one per representation), `Cache-Control: immutable` and `Vary: Accept`, and
//! `If-None-Match` gets 304.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION, RETRY_AFTER, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::config::{ColorMode, OutputFormat};
use common::media::MediaType;
use common::record::{
    Event, Record, Service, State as JobState, Thumbnail, ThumbnailInfo, VariantState,
};
use common::storage::Key;
use common::time::now_rfc3339;
use common::variant::{self, Gravity, Variant, VariantParams};
use serde::Deserialize;
use uuid::Uuid;

use super::MediaId;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Update;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// How long a presigned thumbnail URL (`media.presign`) stays valid.
const PRESIGNED_FOR: std::time::Duration = std::time::Duration::from_secs(3600);

/// The handler of `/images/{id}/thumbnail`: the first variant.
#[utoipa::path(
    get,
    path = "/images/{media_id}/thumbnail",
    operation_id = "get_thumbnail",
    tag = "images",
    summary = "The first variant's thumbnail",
    params(
        ("media_id" = uuid::Uuid, Path, description = "The record's id, as the upload's answer gave it (lower case, hyphenated)"),
        ("Accept" = Option<String>, Header, description = "The thumbnail's media type or `image/*` for its raw bytes; `application/octet-stream` for them as that type (what generated clients send by default); without the header, or with anything else, base64"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer"),
    ),
    responses(
        (status = 200, description = "The thumbnail: in base64 by default; its raw bytes when `Accept` names its media type or `image/*`, or `application/octet-stream`",
            content(
                (String = "application/octet-stream"),
                (String = "image/jpeg"),
                (String = "image/png"),
                (String = "image/webp"),
                (String = "image/avif"),
                (String = "image/gif"),
            ),
            headers(
                ("ETag" = String, description = "Strong, one per representation"),
                ("Cache-Control" = String, description = "`public, max-age=31536000, immutable`"),
                ("Vary" = String, description = "`Accept`"),
            )),
        (status = 304, description = "`If-None-Match` matched the ETag",
            headers(("ETag" = String, description = "The representation's ETag"))),
        (status = 307, description = "Raw bytes with `media.presign`: a presigned URL of the object",
            headers(("Location" = String, description = "The presigned URL"))),
        (status = 404, description = "No such record (`not_found`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "Still processing (`processing`)", body = crate::openapi::ErrorBody),
        (status = 422, description = "The job failed (`job_failed`, `variant_failed`)", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    tenant: Tenant,
    MediaId(id): MediaId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let record = tenant.check(id, state.store.get(id).await?)?;
    match record.state {
        JobState::Processing => return Err(ApiError::Processing(id)),
        JobState::Error => return Err(ApiError::JobFailed(record.message)),
        JobState::Completed => {}
    }
    // A record from before variants existed has only `thumbnail`.
    let first = match record.thumbnails.first() {
        Some(first) => first.info(),
        None => record.thumbnail.clone(),
    };
    match (first, record.thumbnails.first()) {
        (Some(info), _) => serve(&state, id, 0, &info, &headers).await,
        (None, Some(entry)) => Err(ApiError::VariantFailed(failure(entry))),
        (None, None) => Err(ApiError::Io(std::io::Error::other(
            "completed record without thumbnail facts",
        ))),
    }
}

/// Query parameters of a variant request: for a variant made on demand.
#[derive(Debug, Default, Deserialize)]
pub struct VariantQuery {
    fit: Option<String>,
    format: Option<String>,
    quality: Option<String>,
    enlarge: Option<String>,
    lossless: Option<String>,
    gravity: Option<String>,
    focus: Option<String>,
    color: Option<String>,
    animated: Option<String>,
}

impl VariantQuery {
    /// Whether the request names settings, and so means the variant made with them.
    fn is_explicit(&self) -> bool {
        self.fit.is_some()
            || self.format.is_some()
            || self.quality.is_some()
            || self.enlarge.is_some()
            || self.lossless.is_some()
            || self.gravity.is_some()
            || self.focus.is_some()
            || self.color.is_some()
            || self.animated.is_some()
    }
}

/// The handler of `/images/{id}/thumbnails/{name}`: one variant, made on demand when the
/// name is a size (or a preset) the record does not have yet and raw uploads are kept.
#[utoipa::path(
    get,
    path = "/images/{media_id}/thumbnails/{name}",
    operation_id = "get_variant",
    tag = "images",
    summary = "One variant's thumbnail, made on demand when it is a new size and raw uploads are kept",
    params(
        ("media_id" = uuid::Uuid, Path, description = "The record's id, as the upload's answer gave it (lower case, hyphenated)"),
        ("name" = String, Path, max_length = 64, pattern = "^([0-9]*x[0-9]*|[a-z][a-z0-9_-]{0,31})$", description = "A variant's name (`400x300`, a preset), or a new size"),
        ("fit" = Option<common::variant::Fit>, Query, description = "The variant's fit"),
        ("format" = Option<common::config::OutputFormat>, Query, description = "The variant's format"),
        ("quality" = Option<u8>, Query, minimum = 1, maximum = 100, description = "The variant's quality"),
        ("enlarge" = Option<bool>, Query, description = "Whether the variant enlarges"),
        ("lossless" = Option<bool>, Query, description = "WebP: lossless instead of lossy at `quality`"),
        ("gravity" = Option<common::variant::Gravity>, Query, description = "`fit=cover`: the part of the image the crop keeps"),
        ("focus" = Option<common::variant::FocalPoint>, Query, description = "`gravity=focus` (implied): the point to keep, `x,y` as fractions of the upright image", example = "0.5,0.3"),
        ("color" = Option<common::config::ColorMode>, Query, description = "`srgb`: converted to sRGB; `keep`: the source's colours and profile"),
        ("animated" = Option<bool>, Query, description = "An animation of an animated source (or a video's preview); `format` `auto`, `webp` or `gif`"),
        ("Accept" = Option<String>, Header, description = "The thumbnail's media type or `image/*` for its raw bytes; `application/octet-stream` for them as that type (what generated clients send by default); without the header, or with anything else, base64"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer"),
    ),
    responses(
        (status = 200, description = "The thumbnail: in base64 by default; its raw bytes when `Accept` names its media type or `image/*`, or `application/octet-stream`",
            content(
                (String = "application/octet-stream"),
                (String = "image/jpeg"),
                (String = "image/png"),
                (String = "image/webp"),
                (String = "image/avif"),
                (String = "image/gif"),
            ),
            headers(
                ("ETag" = String, description = "Strong, one per representation"),
                ("Cache-Control" = String, description = "`public, max-age=31536000, immutable`"),
                ("Vary" = String, description = "`Accept`"),
            )),
        (status = 304, description = "`If-None-Match` matched the ETag",
            headers(("ETag" = String, description = "The representation's ETag"))),
        (status = 307, description = "Raw bytes with `media.presign`: a presigned URL of the object",
            headers(("Location" = String, description = "The presigned URL"))),
        (status = 202, description = "Being made: the variant, where it will be, and when to ask again", body = common::record::Thumbnail,
            headers(
                ("Location" = String, description = "The variant's URL"),
                ("Retry-After" = u64, description = "Seconds to wait"),
            )),
        (status = 400, description = "A bad id, name or variant parameter (`invalid_id`, `invalid_parameter`), or the record has `limits.max_variants` already (`too_many_variants`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such record (`not_found`), or a name that is no variant, size or preset (`unknown_variant`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "Still processing (`processing`)", body = crate::openapi::ErrorBody),
        (status = 422, description = "The variant failed (`variant_failed`, `job_failed`)", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn variant(
    State(state): State<AppState>,
    tenant: Tenant,
    Path((id, name)): Path<(String, String)>,
    params: Result<Query<VariantQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = super::parse_id(&id)?;
    let Query(query) = params.map_err(|_| ApiError::InvalidQuery)?;
    let record = tenant.check(id, state.store.get(id).await?)?;
    let explicit = query.is_explicit();
    let wanted = wanted(&state, &name, query)?;
    let found = find(&record, &name, wanted.as_ref(), explicit);
    match (record.state, found) {
        (JobState::Error, _) => Err(ApiError::JobFailed(record.message)),
        (JobState::Processing, Some(_)) => Err(ApiError::Processing(id)),
        (JobState::Processing, None) if wanted.is_some() => Err(ApiError::Processing(id)),
        (_, Some(index)) => answer(&state, &record, index, &headers).await,
        (_, None) => match wanted {
            Some(wanted) => make_on_demand(&state, id, wanted, &headers).await,
            None => Err(unknown(&record, "")),
        },
    }
}

/// The variant a request names, when the name is a size or a preset: the spec it would be
/// made to. `None` for a name that is neither.
fn wanted(state: &AppState, name: &str, query: VariantQuery) -> Result<Option<Variant>, ApiError> {
    let config = &state.config;
    if !looks_like_size(name) && !config.thumbnail.presets.contains_key(name) {
        return Ok(None);
    }
    let params = VariantParams {
        sizes: Some(name.to_owned()),
        fit: query.fit,
        format: query.format,
        quality: query.quality,
        enlarge: query.enlarge,
        lossless: query.lossless,
        gravity: query.gravity,
        focus: query.focus,
        color: query.color,
        animated: query.animated,
    };
    let mut variants = variant::parse(&params, &config.thumbnail, &config.limits)
        .and_then(|variants| {
            variant::check_formats(&variants, worker::encode::writes).map(|()| variants)
        })
        .map_err(ApiError::InvalidVariant)?;
    Ok(variants.pop())
}

/// Whether a name is written as a size (`W x H` in digits, either side empty but not both),
/// whatever its numbers: such a name asks for a size, and one out of range (`0x0`, more
/// digits than any side) is a 400, not an unknown name.
fn looks_like_size(name: &str) -> bool {
    let digits = |side: &str| side.bytes().all(|b| b.is_ascii_digit());
    name.split_once(['x', 'X']).is_some_and(|(width, height)| {
        digits(width) && digits(height) && !(width.is_empty() && height.is_empty())
    })
}

/// The index of the variant a request means: by name, unless the request names settings
/// (`explicit`) that variant was not made with; else the variant that makes the same output
/// as the one `wanted`.
fn find(record: &Record, name: &str, wanted: Option<&Variant>, explicit: bool) -> Option<usize> {
    let same = |index: &usize| match wanted {
        Some(wanted) if explicit => record.thumbnails[*index].request.same_output(wanted),
        _ => true,
    };
    let by_name = record
        .thumbnails
        .iter()
        .position(|t| t.name == name)
        .filter(same);
    by_name.or_else(|| {
        let wanted = wanted?;
        record
            .thumbnails
            .iter()
            .position(|t| t.request.same_output(wanted))
    })
}

/// The answer for variant `index` of a completed record.
async fn answer(
    state: &AppState,
    record: &Record,
    index: usize,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let entry = &record.thumbnails[index];
    match (entry.state, entry.info()) {
        (VariantState::Ready, Some(info)) => {
            let index = u16::try_from(index).unwrap_or(u16::MAX);
            serve(state, record.media_id, index, &info, headers).await
        }
        (VariantState::Processing, _) => Ok(accepted(entry)),
        _ => Err(ApiError::VariantFailed(failure(entry))),
    }
}

/// 202 for a variant still being made: where it will be, and when to ask again.
fn accepted(entry: &Thumbnail) -> Response {
    (
        StatusCode::ACCEPTED,
        [(LOCATION, entry.url.clone()), (RETRY_AFTER, "1".to_owned())],
        Json(entry.clone()),
    )
        .into_response()
}

/// Why a variant failed.
fn failure(entry: &Thumbnail) -> String {
    entry
        .error
        .as_ref()
        .map_or_else(|| "it could not be made".to_owned(), |e| e.message.clone())
}

/// The 404 for a variant that does not exist, listing those that do (the name asked for is
/// not repeated).
fn unknown(record: &Record, why: &str) -> ApiError {
    let variants: Vec<String> = record.thumbnails.iter().map(|t| t.name.clone()).collect();
    ApiError::UnknownVariant {
        message: format!(
            "no such variant{why}; this image has: {}",
            variants.join(", ")
        ),
        variants,
    }
}

/// Adds `wanted` to the record as processing and queues its job, in one transaction; answers
/// 202. Two requests for the same variant add it once.
async fn make_on_demand(
    state: &AppState,
    id: Uuid,
    wanted: Variant,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    if !state.config.keep_raw {
        let record = state.store.get(id).await?.ok_or(ApiError::NotFound(id))?;
        return Err(unknown(
            &record,
            " (new variants are made only from kept raw uploads, and keep_raw is off)",
        ));
    }
    let max = state.config.limits.max_variants;
    let update = state
        .store
        .update_and_enqueue(id, |record| {
            let exists = record
                .thumbnails
                .iter()
                .any(|t| t.request.same_output(&wanted));
            if exists || record.thumbnails.len() >= max || !record.is_final() {
                return false;
            }
            let mut variant = wanted.clone();
            if record.thumbnails.iter().any(|t| t.name == variant.name) {
                variant.name = distinct_name(&variant);
            }
            let name = variant.name.clone();
            record.thumbnails.push(Thumbnail::requested(id, variant));
            record.updated_at = now_rfc3339();
            record.push_event(Event::new(
                "variant_requested",
                Service::Gateway,
                Some(name),
            ));
            true
        })
        .await?;
    match update {
        Update::Missing => Err(ApiError::NotFound(id)),
        Update::Changed(record) => {
            state.outbox.wake();
            let entry = record.thumbnails.last().expect("the variant just added");
            tracing::debug!(media_id = %id, variant = %entry.name, "variant asked for on demand");
            Ok(accepted(entry))
        }
        Update::Unchanged(record) => match find(&record, &wanted.name, Some(&wanted), true) {
            Some(index) => answer(state, &record, index, headers).await,
            None if !record.is_final() => Err(ApiError::Processing(id)),
            None => Err(ApiError::TooManyVariants(record.thumbnails.len())),
        },
    }
}

/// A name for a variant whose plain name another variant of the record has: its settings
/// spelled out (`400x300-cover-webp-q80`, `400x300-cover-webp-lossless`,
/// `400x300-cover-jpeg-q85-attention`, `400x300-cover-jpeg-q85-focus-0.3-0.6-keep`,
/// `400x300-cover-webp-q80-animated`); the gravity, colour and animation only when they are
/// not the defaults.
fn distinct_name(variant: &Variant) -> String {
    let format = variant.format.as_str();
    let enlarge = if variant.enlarge { "-enlarge" } else { "" };
    let quality = if variant.lossless && variant.format == OutputFormat::Webp {
        "lossless".to_owned()
    } else {
        format!("q{}", variant.quality)
    };
    let gravity = match (variant.gravity, variant.focus) {
        (Gravity::Centre, _) => String::new(),
        (Gravity::Focus, Some(point)) => {
            let (x, y) = point.fractions();
            format!("-focus-{x}-{y}")
        }
        (gravity, _) => format!("-{}", gravity.as_str()),
    };
    let color = match variant.color {
        ColorMode::Srgb => "",
        ColorMode::Keep => "-keep",
    };
    let animated = if variant.animated { "-animated" } else { "" };
    format!(
        "{}-{}-{format}-{quality}{enlarge}{gravity}{color}{animated}",
        variant.size,
        variant.fit.as_str()
    )
}

/// Serves the thumbnail object of variant `index` as base64 or raw bytes, by `Accept`.
async fn serve(
    state: &AppState,
    id: Uuid,
    index: u16,
    thumbnail: &ThumbnailInfo,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let form = Representation::of(headers, thumbnail.media_type);
    let tag = match index {
        0 => id.to_string(),
        index => format!("{id}.{index}"),
    };
    let etag = format!("\"{tag}{}\"", form.tag_suffix());
    let common_headers = [
        (ETAG, etag.clone()),
        (CACHE_CONTROL, IMMUTABLE.to_owned()),
        (VARY, "Accept".to_owned()),
    ];
    if matches_etag(headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, common_headers).into_response());
    }
    let key = Key::variant(id, index);
    if form == Representation::Image
        && state.config.media.presign
        && let Some(url) = state.storage.presign(key, PRESIGNED_FOR).await?
    {
        return Ok((
            StatusCode::TEMPORARY_REDIRECT,
            [(LOCATION, url), (VARY, "Accept".to_owned())],
        )
            .into_response());
    }
    // Deleted between the read of the record and the read of the object: gone.
    let bytes = state
        .storage
        .get(key)
        .await?
        .ok_or(ApiError::NotFound(id))?;
    let (body, content_type) = match form {
        Representation::Base64 => (
            Body::from(STANDARD.encode(bytes)),
            thumbnail.media_type.as_str(),
        ),
        Representation::Image => (Body::from(bytes), thumbnail.media_type.as_str()),
        Representation::Bytes => (Body::from(bytes), OCTET_STREAM),
    };
    let content_type = HeaderValue::from_static(content_type);
    Ok((common_headers, [(CONTENT_TYPE, content_type)], body).into_response())
}

const OCTET_STREAM: &str = "application/octet-stream";

/// How a thumbnail is sent, by the request's `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Representation {
    /// The bytes in base64, labelled with the thumbnail's media type (the default: the mirror
    /// of a base64 upload).
    Base64,
    /// The bytes as they are, labelled with the thumbnail's media type: `Accept` names it or
    /// `image/*`.
    Image,
    /// The bytes as they are, as `application/octet-stream`: `Accept` names only that.
    Bytes,
}

impl Representation {
    /// The representation `Accept` asks for: the media ranges it names with a non-zero
    /// quality (an image range first, then `application/octet-stream`).
    fn of(headers: &HeaderMap, media_type: MediaType) -> Self {
        let ranges: Vec<&str> = headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|range| {
                let mut parts = range.split(';');
                let essence = parts.next().unwrap_or_default().trim();
                let refused = parts.any(|param| {
                    let param = param.trim().replace(' ', "");
                    param
                        .strip_prefix("q=")
                        .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
                });
                (!refused).then_some(essence)
            })
            .collect();
        let names = |wanted: &str| {
            ranges
                .iter()
                .any(|range| range.eq_ignore_ascii_case(wanted))
        };
        if names(media_type.as_str()) || names("image/*") {
            Representation::Image
        } else if names(OCTET_STREAM) {
            Representation::Bytes
        } else {
            Representation::Base64
        }
    }

    /// What tells this representation's `ETag` from the others'.
    fn tag_suffix(self) -> &'static str {
        match self {
            Representation::Base64 => ".b64",
            Representation::Image => "",
            Representation::Bytes => ".bin",
        }
    }
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn negotiates_raw_for_the_type_image_star_or_octet_stream() {
        let of = |value: &str, media_type| Representation::of(&accept(value), media_type);
        use Representation::*;
        assert_eq!(of("image/jpeg", MediaType::Jpeg), Image);
        assert_eq!(of("text/html, image/*;q=0.8", MediaType::Png), Image);
        assert_eq!(
            of("application/octet-stream, image/*", MediaType::Png),
            Image
        );
        assert_eq!(of("application/octet-stream", MediaType::Png), Bytes);
        assert_eq!(of("application/octet-stream;q=0", MediaType::Png), Base64);
        assert_eq!(of("*/*", MediaType::Jpeg), Base64);
        assert_eq!(of("image/png", MediaType::Jpeg), Base64);
        assert_eq!(of("image/jpeg;q=0", MediaType::Jpeg), Base64);
        assert_eq!(
            Representation::of(&HeaderMap::new(), MediaType::Jpeg),
            Base64
        );
    }

    #[test]
    fn matches_strong_weak_and_star_etags() {
        let mut headers = HeaderMap::new();
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        assert!(matches_etag(&headers, "\"a\""));
        assert!(matches_etag(&headers, "\"b\""));
        assert!(!matches_etag(&headers, "\"c\""));
        headers.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(matches_etag(&headers, "\"c\""));
    }
}
