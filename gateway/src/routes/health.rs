//! `GET /healthz` (the process answers) and `GET /readyz` (the store, the queue and media
//! storage are usable; whether video is on).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: 200 whenever the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: 200 when the store answers reads, the queue is usable and media storage
/// answers, else 503 with the reason. `video` says `"on"`, or why video uploads are refused
/// (images are served either way).
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state
        .store
        .check()
        .await
        .map_err(|error| ApiError::NotReady(error.to_string()))?;
    state
        .queue
        .check()
        .map_err(|error| ApiError::NotReady(error.to_string()))?;
    state
        .storage
        .check()
        .await
        .map_err(|error| ApiError::NotReady(error.to_string()))?;
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
