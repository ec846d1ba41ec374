//! `GET /images/{media_id}/events`: the record's history, oldest first.
//!
//! Each event has its time (`at`), what happened (`event`: `accepted`, `queued`, `started`,
//! `completed`, `failed`, `requeued`, `variant_requested`, `variant_completed`,
//! `variant_failed`, `deduplicated`, `callback_delivered`, `callback_retry`, `callback_failed`), the service
//! that wrote it, the worker process (`by`) for a worker's, and a `message` where there is
//! more to say. A record keeps its first event and its latest
//! [`common::record::MAX_EVENTS`].

use axum::Json;
use axum::extract::State;
use common::record::Event;
use serde::Serialize;

use super::MediaId;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;

/// The answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct History {
    /// The events, oldest first.
    pub items: Vec<Event>,
}

/// The handler.
#[utoipa::path(
    get,
    path = "/images/{media_id}/events",
    operation_id = "get_events",
    tag = "images",
    summary = "The record's history, oldest first",
    params(("media_id" = uuid::Uuid, Path, description = "The record's id, as the upload's answer gave it (lower case, hyphenated)")),
    responses(
        (status = 200, description = "The events", body = History),
        (status = 404, description = "No such record (`not_found`)", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn events(
    State(state): State<AppState>,
    tenant: Tenant,
    MediaId(id): MediaId,
) -> Result<Json<History>, ApiError> {
    let record = tenant.check(id, state.store.get(id).await?)?;
    Ok(Json(History {
        items: record.events,
    }))
}
