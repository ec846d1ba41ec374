//! The HTTP API: one module per endpoint.
//!
//! | method and path | module |
//! |---|---|
//! | `POST /images` | [`upload`] |
//! | `GET /images` | [`list`] |
//! | `GET /images/{media_id}` | [`record`] |
//! | `GET /images/{media_id}/thumbnail`, `GET /images/{media_id}/thumbnails/{name}` | [`thumbnail`] |
//! | `GET /images/{media_id}/events` | [`events`] |
//! | `DELETE /images/{media_id}` | [`delete`] |
//! | `GET /healthz`, `GET /readyz` | [`health`] |
//! | `GET /metrics` | [`metrics`] |
//! | `GET /dashboard`, `GET /dashboard/data`, `POST /dashboard/dead/{media_id}/{retry,discard}` | [`dashboard`] |
//! | `GET /openapi.json`, `GET /docs` | [`crate::openapi`] |
//!
//! Every error is an [`ApiError`], turned into a response in one place. Every request first
//! gets its id ([`crate::request_id`]), then passes [`crate::protocol`]'s checks; with API keys configured, [`crate::auth`] guards every
//! route but `/healthz`, `/openapi.json`, `/docs` and the `/dashboard` page (its data and
//! actions are guarded).

pub mod dashboard;
pub mod delete;
pub mod events;
pub mod health;
pub mod list;
pub mod metrics;
pub mod record;
pub mod thumbnail;
pub mod upload;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::routing::get;
use uuid::Uuid;

use crate::auth::{ApiKeys, require_key};
use crate::error::ApiError;
use crate::state::AppState;

/// The API's routes, behind the API-key check when keys are configured.
pub fn router(state: AppState, keys: Option<Arc<ApiKeys>>) -> Router {
    let allowed_hosts = Arc::new(state.config.server.allowed_hosts.clone());
    let profile =
        crate::openapi::Profile::new(state.callbacks.enabled, keys.is_some(), state.video.is_ok())
            .with_mail(state.callbacks.mail);
    let router = Router::new()
        .route("/images", get(list::list).post(upload::upload))
        .route(
            "/images/{media_id}",
            get(record::get).delete(delete::delete),
        )
        .route("/images/{media_id}/thumbnail", get(thumbnail::get))
        .route(
            "/images/{media_id}/thumbnails/{name}",
            get(thumbnail::variant),
        )
        .route("/images/{media_id}/events", get(events::events))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/data", get(dashboard::data))
        .route(
            "/dashboard/dead/{media_id}/retry",
            axum::routing::post(dashboard::retry),
        )
        .route(
            "/dashboard/dead/{media_id}/discard",
            axum::routing::post(dashboard::discard),
        )
        .merge(crate::openapi::router(&profile))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state);
    let router = match keys {
        Some(keys) => router.layer(axum::middleware::from_fn_with_state(keys, require_key)),
        None => router,
    };
    // Protocol checks run before the key check and the routes; outermost, every request (even
    // one refused) gets its id and its span.
    router
        .layer(axum::middleware::from_fn_with_state(
            allowed_hosts,
            crate::protocol::check,
        ))
        .layer(axum::middleware::from_fn(crate::request_id::assign))
}

/// Parses a media id: a UUID in its canonical spelling, lower case with hyphens. Other
/// spellings of a UUID (upper case, no hyphens, braces, `urn:uuid:`) are refused with the
/// canonical one in the message, so that one record has one URL.
pub fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    let id = Uuid::try_parse(text).map_err(|_| ApiError::InvalidId(None))?;
    if id.hyphenated().encode_lower(&mut Uuid::encode_buffer()) != text {
        return Err(ApiError::InvalidId(Some(id)));
    }
    Ok(id)
}

/// The media id of a `/images/{media_id}…` path, parsed by [`parse_id`]. A path segment that
/// is not even text (`%FF`) is refused alike, with the JSON error.
#[derive(Debug, Clone, Copy)]
pub struct MediaId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for MediaId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::InvalidId(None))?;
        parse_id(&text).map(MediaId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_canonical_spelling_is_an_id() {
        let canonical = "0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b";
        assert_eq!(parse_id(canonical).unwrap().to_string(), canonical);
        for other in [
            "0190A5B2-7C3D-7E4F-8A9B-0C1D2E3F4A5B",
            "0190a5b27c3d7e4f8a9b0c1d2e3f4a5b",
            "{0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b}",
            "urn:uuid:0190a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b",
        ] {
            let error = parse_id(other).unwrap_err();
            assert!(error.to_string().ends_with(canonical), "{error}");
        }
        let long = "x".repeat(65_000);
        let error = parse_id(&long).unwrap_err();
        assert!(error.to_string().len() < 200);
    }
}
