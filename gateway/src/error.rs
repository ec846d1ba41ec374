//! Every error the API answers, and the one place where each becomes an HTTP response.
//!
//! The body is always `{"error": {"code": "<slug>", "message": "<text>"}}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// An error answered to an API client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `POST /images` without a `Content-Type`.
    #[error(
        "the Content-Type header is required: the media type of the image (e.g. image/png), or application/json"
    )]
    MissingContentType,
    /// A media type that is not a supported image.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The data's magic bytes disagree with the declared media type.
    #[error("declared {declared} but the data is {found}")]
    MediaTypeMismatch {
        /// The declared media type.
        declared: String,
        /// What the magic bytes say.
        found: String,
    },
    /// The body is not valid base64.
    #[error("the body is not valid base64: {0}")]
    InvalidBase64(String),
    /// The body (or the decoded image) is empty.
    #[error("the body is empty: send the image as base64")]
    EmptyBody,
    /// The decoded upload is over `limits.max_upload_bytes`.
    #[error("the image is larger than the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The image's header declares more pixels than allowed.
    #[error("{0}")]
    TooManyPixels(String),
    /// The image carries more metadata than allowed.
    #[error("{0}")]
    MetadataTooLarge(String),
    /// The JSON body is malformed or lacks a field.
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    /// A parameter or field is out of range.
    #[error("{0}")]
    InvalidParameter(String),
    /// The client left its body idle longer than `limits.read_timeout_secs`.
    #[error("the body stopped arriving for {0} s")]
    RequestTimeout(u64),
    /// The body could not be read (the client went away, or sent a broken stream).
    #[error("cannot read the request body: {0}")]
    BodyRead(String),
    /// The id in the path is not a media id.
    #[error("{0:?} is not a media id (a UUID)")]
    InvalidId(String),
    /// No API key, or one that is not accepted.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// No record has this id.
    #[error("no image has the id {0}")]
    NotFound(String),
    /// No route has this path.
    #[error("no such endpoint")]
    NoRoute,
    /// The route does not take this method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// The thumbnail is not made yet.
    #[error("the thumbnail of {0} is still processing")]
    Processing(String),
    /// The job failed, so there is no thumbnail.
    #[error("the job failed: {0}")]
    JobFailed(String),
    /// This client sends uploads faster than allowed.
    #[error("too many uploads from this client; retry in {retry_after} s")]
    RateLimited {
        /// Seconds until an upload would be let in.
        retry_after: u64,
    },
    /// Too many uploads at once.
    #[error("{0}; retry shortly")]
    Overloaded(&'static str),
    /// Too many jobs not final yet.
    #[error("too many jobs are waiting; retry shortly")]
    QueueFull,
    /// The data directory is short of space.
    #[error("storage is nearly full ({free} bytes free, {floor} kept free); uploads are refused")]
    InsufficientStorage {
        /// Bytes free.
        free: u64,
        /// The configured floor.
        floor: u64,
    },
    /// The service cannot serve now.
    #[error("not ready: {0}")]
    NotReady(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file operation failed.
    #[error("storage: {0}")]
    Io(#[from] std::io::Error),
}

impl ApiError {
    /// The HTTP status and the error's slug.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::MissingContentType => (StatusCode::BAD_REQUEST, "missing_content_type"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::MediaTypeMismatch { .. } => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "media_type_mismatch")
            }
            ApiError::InvalidBase64(_) => (StatusCode::BAD_REQUEST, "invalid_base64"),
            ApiError::EmptyBody => (StatusCode::BAD_REQUEST, "empty_body"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::TooManyPixels(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_pixels"),
            ApiError::MetadataTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "metadata_too_large"),
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidParameter(_) => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            ApiError::BodyRead(_) => (StatusCode::BAD_REQUEST, "body_read_failed"),
            ApiError::RequestTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::InvalidId(_) => (StatusCode::BAD_REQUEST, "invalid_id"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Processing(_) => (StatusCode::CONFLICT, "processing"),
            ApiError::JobFailed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "job_failed"),
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::QueueFull => (StatusCode::SERVICE_UNAVAILABLE, "queue_full"),
            ApiError::InsufficientStorage { .. } => {
                (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
            }
            ApiError::Store(_) | ApiError::Io(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
        }
        let body = json!({ "error": { "code": code, "message": self.to_string() } });
        let mut response = (status, Json(body)).into_response();
        let extra = match self {
            ApiError::Unauthorized(_) => Some((header::WWW_AUTHENTICATE, "Bearer".into())),
            ApiError::RateLimited { retry_after } => {
                Some((header::RETRY_AFTER, retry_after.to_string()))
            }
            ApiError::Overloaded(_) => Some((header::RETRY_AFTER, "1".into())),
            ApiError::QueueFull => Some((header::RETRY_AFTER, "5".into())),
            _ => None,
        };
        if let Some((name, value)) = extra
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// Why the gateway could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue failed.
    #[error("queue: {0}")]
    Queue(#[from] common::queue::QueueError),
    /// The API keys cannot be loaded.
    #[error("auth: {0}")]
    Auth(String),
    /// Listening or file set-up failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
