//! `POST /images`: accept an image as base64, store it, queue its job, answer 202.
//!
//! An upload is first let in by [`crate::admission`] (in-flight, queue and disk limits).
//! The body is the image in base64 and `Content-Type` is its media type; or `Content-Type:
//! application/json` with `{"data", "media_type", "name"}`. A `name` may also come as the
//! `name` query parameter. The answer is `202 Accepted`, `Location: /images/{media_id}` and
//! the record; it is sent only once the raw file, the record and its job (in the outbox) are
//! on disk. The job reaches the queue through [`crate::outbox`], never in the request.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, EXPECT, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::media::MediaType;
use common::message::Job;
use serde::Deserialize;

use crate::body;
use crate::error::ApiError;
use crate::ingest::ingest;
use crate::metrics::Refusal;
use crate::state::AppState;

/// The longest file name kept.
const MAX_NAME: usize = 255;

/// Query parameters of an upload.
#[derive(Debug, Deserialize)]
pub struct UploadParams {
    /// The client's file name.
    name: Option<String>,
}

/// The handler.
pub async fn upload(
    State(state): State<AppState>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    params: Result<Query<UploadParams>, QueryRejection>,
    headers: HeaderMap,
    mut body: Body,
) -> Response {
    let outcome = match (
        params,
        state.admission.admit(&state.metrics, client.ip()).await,
    ) {
        (Ok(Query(params)), Ok(_permit)) => accept(&state, params.name, &headers, &mut body).await,
        (Err(rejection), _) => Err(ApiError::InvalidParameter(rejection.body_text())),
        (_, Err(refusal)) => Err(refusal),
    };
    // A client told to wait for "100 Continue" has sent nothing: there is nothing to drain.
    if outcome.is_err() && !expects_continue(&headers) {
        tokio::spawn(body::drain(body));
    }
    match outcome {
        Ok(response) => {
            state.metrics.uploads_accepted.inc();
            response
        }
        Err(error) => {
            let (_, code) = error.status_and_code();
            state
                .metrics
                .uploads_refused
                .get_or_create(&Refusal { code })
                .inc();
            error.into_response()
        }
    }
}

async fn accept(
    state: &AppState,
    name: Option<String>,
    headers: &HeaderMap,
    body: &mut Body,
) -> Result<Response, ApiError> {
    let limit = state.config.limits.max_upload_bytes;
    let idle = Duration::from_secs(state.config.limits.read_timeout_secs);
    let content_type = headers
        .get(CONTENT_TYPE)
        .ok_or(ApiError::MissingContentType)?
        .to_str()
        .map_err(|_| ApiError::UnsupportedMediaType("the Content-Type is not text".to_owned()))?;
    let essence = content_type.split(';').next().unwrap_or_default().trim();

    let (bytes, media_type, name) = if essence.eq_ignore_ascii_case("application/json") {
        let envelope = body::read_envelope(body, limit, idle).await?;
        let media_type = parse_media_type(&envelope.media_type)?;
        let bytes = body::decode_base64(&envelope.data, limit)?;
        (bytes, media_type, envelope.name.or(name))
    } else {
        let media_type = parse_media_type(content_type)?;
        let length = headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse().ok());
        (
            body::read_base64(body, limit, length, idle).await?,
            media_type,
            name,
        )
    };
    let name = check_name(name)?;

    let data = state.data.clone();
    let limits = state.config.limits.clone();
    let record =
        tokio::task::spawn_blocking(move || ingest(&bytes, media_type, name, &data, &limits))
            .await
            .map_err(|error| ApiError::Io(std::io::Error::other(error)))??;

    state
        .store
        .insert(&record, &Job::new(record.media_id, record.media_type))?;
    state.store.flush().await?;
    state.metrics.jobs_processing.inc();
    state.outbox.wake();
    tracing::debug!(media_id = %record.media_id, media_type = %record.media_type, size = record.size, "upload accepted");
    let location = format!("/images/{}", record.media_id);
    Ok((StatusCode::ACCEPTED, [(LOCATION, location)], Json(record)).into_response())
}

fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

fn parse_media_type(text: &str) -> Result<MediaType, ApiError> {
    text.parse()
        .map_err(|error: common::media::UnsupportedMediaType| {
            ApiError::UnsupportedMediaType(error.to_string())
        })
}

/// A name is metadata only (files are named by id), but keep it printable and short.
fn check_name(name: Option<String>) -> Result<Option<String>, ApiError> {
    match name {
        Some(name) if name.len() > MAX_NAME => Err(ApiError::InvalidParameter(format!(
            "name is longer than {MAX_NAME} bytes"
        ))),
        Some(name) if name.chars().any(char::is_control) => Err(ApiError::InvalidParameter(
            "name contains control characters".to_owned(),
        )),
        Some(name) if name.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}
