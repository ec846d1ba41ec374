//! `DELETE /images/{media_id}`: remove the record, the raw file and every variant (a
//! shared original only with the last record that needs it: [`crate::dedup`]).
//!
//! The record goes first. A job still in flight then finds no record when its result comes
//! back, and the results path removes the thumbnail it wrote: nothing is left behind.

use axum::extract::State;
use axum::http::StatusCode;
use common::storage::Key;

use super::MediaId;
use crate::auth::Tenant;
use crate::dedup;
use crate::error::ApiError;
use crate::state::AppState;

/// The handler.
#[utoipa::path(
    delete,
    path = "/images/{media_id}",
    operation_id = "delete_record",
    tag = "images",
    summary = "Delete the record, its original and its thumbnails",
    params(("media_id" = uuid::Uuid, Path, description = "The record's id, as the upload's answer gave it (lower case, hyphenated)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such record (`not_found`)", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn delete(
    State(state): State<AppState>,
    tenant: Tenant,
    MediaId(id): MediaId,
) -> Result<StatusCode, ApiError> {
    let original = tenant.check(id, state.store.get(id).await?)?.original;
    // Under the content lock, so that no upload decides meanwhile to wait for this one.
    let lock = match original {
        Some(original) => Some(state.store.lock_content(original).await?),
        None => None,
    };
    let removed = remove_and_requeue(&state, id, original).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    let record = removed?;
    state.sources.finished(id);
    if !record.is_final() {
        state.metrics.jobs_processing.dec();
    }
    // The record is gone, so the DELETE has happened; objects that cannot be removed now are
    // orphans, which the orphan sweep collects.
    let variants = u16::try_from(record.thumbnails.len().max(1)).unwrap_or(u16::MAX);
    let own_raw = record.original.is_none().then(|| Key::raw(id));
    let keys = own_raw
        .into_iter()
        .chain((0..variants).map(|i| Key::variant(id, i)));
    for key in keys {
        if let Err(error) = state.storage.delete(key).await {
            tracing::warn!(media_id = %id, %error, "cannot remove an object of a deleted record");
        }
    }
    // A shared original goes with the last record that needs it.
    if let Some(original) = record.original
        && let Err(error) = dedup::release_original(
            &state.store,
            &state.storage,
            state.config.keep_raw,
            original,
        )
        .await
    {
        tracing::warn!(media_id = %id, %error, "cannot decide on a shared original");
    }
    tracing::debug!(media_id = %id, "deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the record (flushed); the uploads that waited for it get jobs of their own.
async fn remove_and_requeue(
    state: &AppState,
    id: uuid::Uuid,
    original: Option<uuid::Uuid>,
) -> Result<common::record::Record, ApiError> {
    let record = state
        .store
        .remove(id)
        .await?
        .ok_or(ApiError::NotFound(id))?;
    if let Some(original) = original {
        match dedup::requeue_waiters(&state.store, original, id).await {
            Ok(0) => {}
            Ok(_) => state.outbox.wake(),
            // They are swept as stuck, and queued then.
            Err(error) => {
                tracing::warn!(media_id = %id, %error, "cannot queue the uploads waiting for a deleted one");
            }
        }
    }
    Ok(record)
}
