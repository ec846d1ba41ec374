//! The HTTP API: one module per endpoint.
//!
//! | method and path | module |
//! |---|---|
//! | `POST /images` | [`upload`] |
//! | `GET /images` | [`list`] |
//! | `GET /images/{media_id}` | [`record`] |
//! | `GET /images/{media_id}/thumbnail` | [`thumbnail`] |
//! | `DELETE /images/{media_id}` | [`delete`] |
//! | `GET /healthz`, `GET /readyz` | [`health`] |
//! | `GET /metrics` | [`metrics`] |
//!
//! Every error is an [`ApiError`], turned into a response in one place. With API keys
//! configured, [`crate::auth`] guards every route but `/healthz`.

pub mod delete;
pub mod health;
pub mod list;
pub mod metrics;
pub mod record;
pub mod thumbnail;
pub mod upload;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use uuid::Uuid;

use crate::auth::{ApiKeys, require_key};
use crate::error::ApiError;
use crate::state::AppState;

/// The API's routes, behind the API-key check when keys are configured.
pub fn router(state: AppState, keys: Option<Arc<ApiKeys>>) -> Router {
    let router = Router::new()
        .route("/images", get(list::list).post(upload::upload))
        .route(
            "/images/{media_id}",
            get(record::get).delete(delete::delete),
        )
        .route("/images/{media_id}/thumbnail", get(thumbnail::get))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state);
    match keys {
        Some(keys) => router.layer(axum::middleware::from_fn_with_state(keys, require_key)),
        None => router,
    }
}

/// Parses a media id from a path segment.
pub fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(text).map_err(|_| ApiError::InvalidId(text.to_owned()))
}
