//! `GET /images?limit=N&after=<media_id>`: a page of the tenant's records in id (upload)
//! order (every record when the API is open).
//!
//! The answer is `{"items": [...], "next": "<media_id>" | null}`; pass `next` as `after` to
//! get the following page. `limit` is 1–1000, 100 by default.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use common::record::Record;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::parse_id;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;

/// The default page size.
const DEFAULT_LIMIT: usize = 100;
/// The largest page size.
const MAX_LIMIT: usize = 1000;

/// Query parameters.
#[derive(Debug, Deserialize)]
pub struct ListParams {
    limit: Option<usize>,
    after: Option<String>,
}

/// A page of records.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page {
    /// The records, in id order.
    pub items: Vec<Record>,
    /// The cursor of the next page, if there may be one.
    pub next: Option<Uuid>,
}

/// The handler.
#[utoipa::path(
    get,
    path = "/images",
    operation_id = "list_records",
    tag = "images",
    summary = "List records in upload order, a page at a time",
    params(
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 1000, description = "Records per page (default 100)"),
        ("after" = Option<uuid::Uuid>, Query, description = "The `next` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of records", body = Page),
        (status = 400, description = "A bad `limit` or `after` (`invalid_parameter`)", body = crate::openapi::ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    tenant: Tenant,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Page>, ApiError> {
    let Query(params) = params.map_err(|_| ApiError::InvalidQuery)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidParameter(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let after = params.after.as_deref().map(parse_id).transpose()?;
    let mut items = state.store.list(tenant.name(), after, limit + 1).await?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|record| record.media_id)
    } else {
        None
    };
    let items = items.into_iter().map(Record::public).collect();
    Ok(Json(Page { items, next }))
}
