//! `GET /healthz` (the process answers) and `GET /readyz` (the store, the queue and media
//! storage are usable; whether video is on).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: 200 whenever the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    summary = "Liveness",
    security(()),
    responses((status = 200, description = "The process answers", body = crate::openapi::Health)),
)]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: 200 when the store answers reads, the queue is usable and media storage
/// answers, else 503 with the reason. `video` says `"on"`, or why video uploads are refused
/// (images are served either way). Answered at once from the last background check
/// ([`crate::readiness`]), never by waiting on a slow dependency.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    summary = "Readiness: the store, the queue and media storage usable",
    responses(
        (status = 200, description = "Ready", body = crate::openapi::Readiness),
        (status = 503, description = "Not ready (`not_ready`), with the reason", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.readiness.ready().map_err(ApiError::NotReady)?;
    Ok(Json(json!({
        "status": "ready",
        "queue": state.queue.kind(),
        "store": state.store.kind(),
        "storage": state.storage.kind(),
        "video": match &state.video {
            Ok(_) => "on".to_owned(),
            Err(why) => format!("off: {why}"),
        },
    })))
}
