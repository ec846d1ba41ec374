//! `GET /images/{media_id}`: the record. The HTTP status says the record exists; the record's
//! own `code` says how the job went.

use axum::Json;
use axum::extract::{Path, State};
use common::record::Record;

use super::parse_id;
use crate::error::ApiError;
use crate::state::AppState;

/// The handler.
pub async fn get(
    State(state): State<AppState>,
    Path(media_id): Path<String>,
) -> Result<Json<Record>, ApiError> {
    let id = parse_id(&media_id)?;
    state
        .store
        .get(id)?
        .map(Json)
        .ok_or(ApiError::NotFound(media_id))
}
