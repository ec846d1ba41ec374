//! How an accepted upload is stored: the raw bytes, then the record and its job in one store
//! transaction, flushed; with `dedup`, the original by content, and the upload completed
//! from (or waiting for) an identical one of the same tenant ([`crate::dedup`]).

use axum::body::Bytes;
use common::media::MediaType;
use common::record::{Event, Record, Service, content_id};
use common::storage::Key;
use uuid::Uuid;

use crate::dedup;
use crate::error::ApiError;
use crate::state::AppState;

/// An upload's bytes on their way to media storage.
pub(super) enum Raw {
    /// Held in memory (base64 bodies).
    Bytes(Bytes),
    /// A finished spooled file (multipart parts).
    File(tempfile::NamedTempFile),
    /// None yet: a source its job fetches.
    None,
}

/// Writes the raw upload, then the record and its job (one store transaction, flushed), and
/// wakes the outbox: from here the upload is accepted, whatever crashes. With `dedup`, the
/// original is stored by content and the upload may be served by another ([`dedup`]).
pub(super) async fn commit(
    state: &AppState,
    mut record: Record,
    raw: Raw,
) -> Result<Record, ApiError> {
    if let Some(media_type) = record.media_type
        && media_type.is_video()
        && let Err(why) = &state.video
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "{media_type} cannot be thumbnailed here: {why}"
        )));
    }
    if state.config.dedup && !matches!(raw, Raw::None) {
        record.original = content_id(&record.sha256);
    }
    // The upload's trace, continued by its jobs.
    record.traceparent = common::trace::current();
    let Some(original) = record.original else {
        return commit_alone(state, record, raw).await;
    };
    let lock = state.store.lock_content(original).await?;
    let committed = commit_shared(state, record, raw).await;
    lock.release().await;
    committed
}

/// [`commit`] of an upload whose original is shared, under its content id's lock.
async fn commit_shared(state: &AppState, mut record: Record, raw: Raw) -> Result<Record, ApiError> {
    // Only the uploader's own records may serve it: dedup shares bytes across tenants, never
    // another tenant's record (its id, or its being there at all).
    let mut others = state.store.with_original(record.raw_id()).await?;
    others.retain(|other| other.tenant == record.tenant);
    let Some(canonical) = dedup::canonical(&record, &others) else {
        return commit_alone(state, record, raw).await;
    };
    let canonical_id = canonical.media_id;
    if canonical.state == common::State::Completed {
        if !dedup::copy_thumbnails(&state.storage, canonical, record.media_id).await? {
            // Deleted meanwhile: this upload is made on its own.
            return commit_alone(state, record, raw).await;
        }
        if state.config.keep_raw {
            write_raw(state, record.raw_id(), raw).await?;
        }
        record.complete_from(canonical);
        record.push_event(Event::new(
            "deduplicated",
            Service::Gateway,
            Some(format!("completed from {canonical_id}")),
        ));
        state.store.import(&record, None).await?;
        state.metrics.finished(&record, "completed");
        state.deliveries.wake();
    } else {
        // Kept, so that this record can still be made on its own if the one it waits for
        // never ends.
        write_raw(state, record.raw_id(), raw).await?;
        record.duplicate_of = Some(canonical_id);
        record.message = format!("waiting for an identical upload in progress: {canonical_id}");
        record.push_event(Event::new(
            "deduplicated",
            Service::Gateway,
            Some(format!("waiting for {canonical_id}")),
        ));
        state.store.import(&record, None).await?;
        state.metrics.jobs_processing.inc();
    }
    state.metrics.uploads_deduplicated.inc();
    state.metrics.dedup_saved_bytes.inc_by(record.size);
    tracing::debug!(media_id = %record.media_id, duplicate_of = %canonical_id, "upload deduplicated");
    Ok(record)
}

/// Writes an upload's bytes as the raw object `id`.
async fn write_raw(state: &AppState, id: Uuid, raw: Raw) -> Result<(), ApiError> {
    let key = Key::raw(id);
    match raw {
        Raw::Bytes(bytes) => state.storage.put(key, bytes).await?,
        Raw::File(file) => state.storage.put_file(key, file).await?,
        Raw::None => {}
    }
    Ok(())
}

/// [`commit`] of an upload with a job of its own.
async fn commit_alone(state: &AppState, record: Record, raw: Raw) -> Result<Record, ApiError> {
    let key = Key::raw(record.raw_id());
    write_raw(state, record.raw_id(), raw).await?;
    let job = record.job();
    if let Err(error) = state.store.insert(&record, &job).await {
        // No record will point at the raw upload: take it back (after a crash here, the
        // orphan sweep does). A shared original stays: the lock is held, and another record
        // may use it.
        if record.original.is_none()
            && let Err(error) = state.storage.delete(key).await
        {
            tracing::warn!(%error, "cannot remove the raw upload of a refused record");
        }
        return Err(error.into());
    }
    state.metrics.jobs_processing.inc();
    state.outbox.wake();
    tracing::debug!(
        media_id = %record.media_id,
        media_type = record.media_type.map_or("unknown", MediaType::as_str),
        size = record.size,
        "upload accepted"
    );
    Ok(record)
}
