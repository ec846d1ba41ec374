//! `GET /images/{media_id}`: the record. The HTTP status says the record exists; the record's
//! own `code` says how the job went.

use axum::Json;
use axum::extract::State;
use common::record::Record;

use super::MediaId;
use crate::error::ApiError;
use crate::state::AppState;

/// The handler.
pub async fn get(
    State(state): State<AppState>,
    MediaId(id): MediaId,
) -> Result<Json<Record>, ApiError> {
    state
        .store
        .get(id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound(id))
}
