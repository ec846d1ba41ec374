//! `GET /images/{media_id}/thumbnail`: the thumbnail, the mirror of the upload.
//!
//! By default the body is the thumbnail in base64 with the thumbnail's media type as
//! `Content-Type`. When `Accept` names that media type or `image/*`, the body is the raw bytes,
//! so that an `<img>` tag works. A thumbnail never changes once made: it carries a strong
//! `ETag` (one per representation), `Cache-Control: immutable` and `Vary: Accept`, and
//! `If-None-Match` gets 304.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION, VARY,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::media::MediaType;
use common::record::State as JobState;
use common::storage::Key;

use super::MediaId;
use crate::error::ApiError;
use crate::state::AppState;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// How long a presigned thumbnail URL (`media.presign`) stays valid.
const PRESIGNED_FOR: std::time::Duration = std::time::Duration::from_secs(3600);

/// The handler.
pub async fn get(
    State(state): State<AppState>,
    MediaId(id): MediaId,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let record = state
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(id))?;
    let thumbnail = match (record.state, record.thumbnail) {
        (JobState::Processing, _) => return Err(ApiError::Processing(id)),
        (JobState::Error, _) => return Err(ApiError::JobFailed(record.message)),
        (JobState::Completed, Some(thumbnail)) => thumbnail,
        (JobState::Completed, None) => {
            return Err(ApiError::Io(std::io::Error::other(
                "completed record without thumbnail facts",
            )));
        }
    };

    let raw = accepts_raw(&headers, thumbnail.media_type);
    let etag = if raw {
        format!("\"{id}\"")
    } else {
        format!("\"{id}.b64\"")
    };
    let common_headers = [
        (ETAG, etag.clone()),
        (CACHE_CONTROL, IMMUTABLE.to_owned()),
        (VARY, "Accept".to_owned()),
    ];
    if matches_etag(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, common_headers).into_response());
    }

    if raw
        && state.config.media.presign
        && let Some(url) = state
            .storage
            .presign(Key::thumbnail(id), PRESIGNED_FOR)
            .await?
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
        .get(Key::thumbnail(id))
        .await?
        .ok_or(ApiError::NotFound(id))?;
    let body = if raw {
        Body::from(bytes)
    } else {
        Body::from(STANDARD.encode(bytes))
    };
    let content_type = HeaderValue::from_static(thumbnail.media_type.as_str());
    Ok((common_headers, [(CONTENT_TYPE, content_type)], body).into_response())
}

/// Whether `Accept` asks for the raw bytes: it names `media_type` or `image/*` with a
/// non-zero quality.
fn accepts_raw(headers: &HeaderMap, media_type: MediaType) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let essence = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|param| {
                let param = param.trim().replace(' ', "");
                param
                    .strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            !refused
                && (essence.eq_ignore_ascii_case(media_type.as_str())
                    || essence.eq_ignore_ascii_case("image/*"))
        })
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
    fn negotiates_raw_only_for_the_type_or_image_star() {
        assert!(accepts_raw(&accept("image/jpeg"), MediaType::Jpeg));
        assert!(accepts_raw(
            &accept("text/html, image/*;q=0.8"),
            MediaType::Png
        ));
        assert!(!accepts_raw(&accept("*/*"), MediaType::Jpeg));
        assert!(!accepts_raw(&accept("image/png"), MediaType::Jpeg));
        assert!(!accepts_raw(&accept("image/jpeg;q=0"), MediaType::Jpeg));
        assert!(!accepts_raw(&HeaderMap::new(), MediaType::Jpeg));
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
