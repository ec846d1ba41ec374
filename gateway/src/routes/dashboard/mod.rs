//! `GET /dashboard`: a page for the people who run the service, and the endpoints it reads
//! and acts through.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /dashboard` | the page: HTML with its style and script inline, no other asset |
//! | `GET /dashboard/data` | what it shows, as JSON ([`Dashboard`]) |
//! | `POST /dashboard/dead/{media_id}/retry` | queues a dead letter again |
//! | `POST /dashboard/dead/{media_id}/discard` | closes a dead letter, its raw upload removed |
//!
//! The page is open (it holds no data); the data and the actions are behind the API keys
//! when keys are configured, for the tenants of `auth.operators` only (they span every
//! tenant's records): the page asks for a key and sends it as a bearer token.
//! It shows records by state (from the store, so the whole fleet's), the jobs waiting for a
//! worker and the oldest of them, uploads and completions per 10 s over ten minutes (as this
//! gateway counted them), the workers heard from, the latest failures and the dead letters.
//! It refreshes itself every 3 s. Its actions refuse a request a browser sent from another
//! site (`Sec-Fetch-Site`, `Origin`: [`crate::protocol::same_origin`]), so that no page can
//! post a form to them.

use axum::Json;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::record::Record;
use common::storage::Key;
use serde::Serialize;

use super::MediaId;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::metrics::RateBucket;
use crate::state::AppState;
use crate::store::{Overview, Update};
use crate::workers::WorkerView;

/// Failures and dead letters listed at most.
const LISTED: usize = 20;

/// The page.
const PAGE: &str = include_str!("page.html");

/// What the dashboard shows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Dashboard {
    /// Records by state, the waiting jobs, the latest failures and the dead letters.
    #[serde(flatten)]
    pub store: Overview,
    /// Seconds the oldest waiting job has waited.
    pub oldest_waiting_secs: Option<u64>,
    /// Uploads and completions per 10 s over ten minutes, oldest first (this gateway's).
    pub rates: Vec<RateBucket>,
    /// The workers heard from.
    pub workers: Vec<WorkerView>,
}

/// The page.
pub async fn page() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
}

/// What the page shows.
#[utoipa::path(
    get,
    path = "/dashboard/data",
    operation_id = "dashboard_data",
    tag = "operations",
    summary = "What the dashboard shows: records by state, waiting jobs, rates, workers, failures, dead letters",
    responses(
        (status = 200, description = "The dashboard's data", body = Dashboard),
        (status = 403, description = "The key's tenant is not an operator (`forbidden`)", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn data(
    State(state): State<AppState>,
    tenant: Tenant,
) -> Result<Json<Dashboard>, ApiError> {
    tenant.require_operator()?;
    let store = state.store.overview(LISTED).await?;
    let oldest_waiting_secs = store
        .oldest_waiting
        .as_deref()
        .and_then(|at| humantime::parse_rfc3339(at).ok())
        .map(|at| at.elapsed().unwrap_or_default().as_secs());
    Ok(Json(Dashboard {
        store: Overview {
            failures: store.failures.into_iter().map(Record::public).collect(),
            dead_letters: store.dead_letters.into_iter().map(Record::public).collect(),
            ..store
        },
        oldest_waiting_secs,
        rates: state.metrics.rates.series(),
        workers: state.workers.list(),
    }))
}

/// Queues a dead letter again.
#[utoipa::path(
    post,
    path = "/dashboard/dead/{media_id}/retry",
    operation_id = "retry_dead_letter",
    tag = "operations",
    summary = "Queue a dead letter again",
    params(("media_id" = uuid::Uuid, Path, description = "The dead letter's record")),
    responses(
        (status = 202, description = "Queued again: the record, processing", body = Record),
        (status = 403, description = "The key's tenant is not an operator, or the request came from another site (`forbidden`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such record (`not_found`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "The record is no dead letter (`not_a_dead_letter`)", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn retry(
    State(state): State<AppState>,
    tenant: Tenant,
    MediaId(id): MediaId,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    crate::protocol::same_origin(&headers)?;
    tenant.require_operator()?;
    let update = state.store.update_and_enqueue(id, Record::retry).await?;
    match update {
        Update::Changed(record) => {
            state.metrics.jobs_processing.inc();
            state.outbox.wake();
            tracing::info!(media_id = %id, "a dead letter was queued again");
            Ok((StatusCode::ACCEPTED, Json(record.public())))
        }
        Update::Unchanged(_) => Err(ApiError::NotADeadLetter(id)),
        Update::Missing => Err(ApiError::NotFound(id)),
    }
}

/// Closes a dead letter: it stays failed, its raw upload goes.
#[utoipa::path(
    post,
    path = "/dashboard/dead/{media_id}/discard",
    operation_id = "discard_dead_letter",
    tag = "operations",
    summary = "Close a dead letter for good, its raw upload removed",
    params(("media_id" = uuid::Uuid, Path, description = "The dead letter's record")),
    responses(
        (status = 204, description = "Discarded"),
        (status = 403, description = "The key's tenant is not an operator, or the request came from another site (`forbidden`)", body = crate::openapi::ErrorBody),
        (status = 404, description = "No such record (`not_found`)", body = crate::openapi::ErrorBody),
        (status = 409, description = "The record is no dead letter (`not_a_dead_letter`)", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn discard(
    State(state): State<AppState>,
    tenant: Tenant,
    MediaId(id): MediaId,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    crate::protocol::same_origin(&headers)?;
    tenant.require_operator()?;
    let update = state.store.update(id, Record::discard).await?;
    let record = match update {
        Update::Changed(record) => record,
        Update::Unchanged(_) => return Err(ApiError::NotADeadLetter(id)),
        Update::Missing => return Err(ApiError::NotFound(id)),
    };
    if !state.config.keep_raw {
        match record.original {
            Some(original) => {
                crate::dedup::release_original(&state.store, &state.storage, false, original)
                    .await?
            }
            None => state.storage.delete(Key::raw(id)).await?,
        }
    }
    tracing::info!(media_id = %id, "a dead letter was discarded");
    Ok(StatusCode::NO_CONTENT)
}
