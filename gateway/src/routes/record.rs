//! `GET /images/{media_id}`: the record. The HTTP status says the record exists; the record's
//! own `code` says how the job went.
//!
//! `?wait=N` (seconds, at most `limits.max_wait_secs`) holds the answer until the record is
//! final or `N` seconds have passed, whichever is first, then answers the record as it is:
//! a client learns of completion at once without polling ([`crate::waiters`]).

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use common::record::Record;
use serde::Deserialize;

use super::MediaId;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;

/// Query parameters.
#[derive(Debug, Deserialize)]
pub struct RecordParams {
    /// Seconds to wait for the record to become final.
    wait: Option<String>,
}

/// The handler.
#[utoipa::path(
    get,
    path = "/images/{media_id}",
    operation_id = "get_record",
    tag = "images",
    summary = "The record: state, facts, variants, callback",
    params(
        ("media_id" = uuid::Uuid, Path, description = "The record's id, as the upload's answer gave it (lower case, hyphenated)"),
        ("wait" = Option<u64>, Query, minimum = 0, maximum = 60, description = "Seconds to wait for the record to become final (at most `limits.max_wait_secs`)"),
    ),
    responses(
        (status = 200, description = "The record", body = common::record::Record),
        (status = 404, description = "No such record (`not_found`)", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    tenant: Tenant,
    MediaId(id): MediaId,
    params: Result<Query<RecordParams>, QueryRejection>,
) -> Result<Json<Record>, ApiError> {
    let Query(params) = params.map_err(|_| ApiError::InvalidQuery)?;
    let max = state.config.limits.max_wait_secs;
    let wait = match params.wait.as_deref() {
        None => 0,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|wait| *wait <= max)
            .ok_or_else(|| {
                ApiError::InvalidParameter(format!(
                    "wait must be a whole number of seconds from 0 to {max}"
                ))
            })?,
    };
    // Another tenant's record is not there: 404 at once, before any wait.
    let record = tenant.check(id, state.store.get(id).await?)?;
    let record = if wait == 0 || record.is_final() {
        Some(record)
    } else {
        state.metrics.waiting_requests.inc();
        let record = state
            .waiters
            .wait(&state.store, id, Duration::from_secs(wait))
            .await;
        state.metrics.waiting_requests.dec();
        record?
    };
    record
        .map(|record| Json(record.public()))
        .ok_or(ApiError::NotFound(id))
}
