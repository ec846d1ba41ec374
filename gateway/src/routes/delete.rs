//! `DELETE /images/{media_id}`: remove the record, the raw file and the thumbnail.
//!
//! The record goes first. A job still in flight then finds no record when its result comes
//! back, and the results path removes the thumbnail it wrote: nothing is left behind.

use axum::extract::State;
use axum::http::StatusCode;
use common::files::remove_if_exists;

use super::MediaId;
use crate::error::ApiError;
use crate::state::AppState;

/// The handler.
pub async fn delete(
    State(state): State<AppState>,
    MediaId(id): MediaId,
) -> Result<StatusCode, ApiError> {
    let record = state
        .store
        .remove(id)
        .await?
        .ok_or(ApiError::NotFound(id))?;
    state.store.flush().await?;
    if !record.is_final() {
        state.metrics.jobs_processing.dec();
    }
    let data = state.data.clone();
    tokio::task::spawn_blocking(move || {
        remove_if_exists(&data.raw_path(id))?;
        remove_if_exists(&data.thumbnail_path(id))
    })
    .await
    .map_err(|error| ApiError::Io(std::io::Error::other(error)))??;
    tracing::debug!(media_id = %id, "deleted");
    Ok(StatusCode::NO_CONTENT)
}
