//! Every error the API answers, and the one place where each becomes an HTTP response.
//!
//! The body is always `{"error": {"code": "<slug>", "message": "<text>"}}`, with
//! `parameter` naming the parameter at fault where there is one, and `variants` listing the
//! variants that exist for `unknown_variant`.

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
    /// A file of a multipart form is empty.
    #[error("the file is empty")]
    EmptyFile,
    /// A multipart form carries more files than `limits.max_files_per_request`.
    #[error("a request may carry at most {max} files")]
    TooManyFiles {
        /// The limit.
        max: usize,
    },
    /// A multipart form carries more parts than `limits.max_form_parts`.
    #[error("a form may carry at most {max} parts, files and fields together")]
    TooManyParts {
        /// The limit.
        max: usize,
    },
    /// A multipart body is over `limits.max_request_bytes`.
    #[error("the request body is larger than the limit of {limit} bytes")]
    RequestTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// A multipart body that does not parse.
    #[error("malformed multipart/form-data: {0}")]
    InvalidMultipart(&'static str),
    /// A multipart form without a file.
    #[error(
        "the form has no file: send each image as a part with a filename (curl -F image=@photo.jpg)"
    )]
    NoFiles,
    /// The image's header declares more pixels than allowed.
    #[error("{0}")]
    TooManyPixels(String),
    /// The image carries more metadata than allowed.
    #[error("{0}")]
    MetadataTooLarge(String),
    /// The JSON body is malformed or lacks a field.
    #[error("invalid JSON body: {0}")]
    InvalidJson(String),
    /// The `Host` header is missing or repeated.
    #[error("{0}")]
    InvalidHost(&'static str),
    /// The request target is too long.
    #[error("the request target is longer than {max} bytes")]
    UriTooLong {
        /// The limit.
        max: usize,
    },
    /// Too many headers, or too large.
    #[error("at most {max_headers} headers of {max_bytes} bytes in all are read")]
    HeadersTooLarge {
        /// The most headers.
        max_headers: usize,
        /// The most bytes.
        max_bytes: usize,
    },
    /// A header is malformed or repeated.
    #[error("{0}")]
    InvalidHeader(&'static str),
    /// A parameter or field is out of range.
    #[error("{0}")]
    InvalidParameter(String),
    /// The client left its body idle longer than `limits.read_timeout_secs`.
    #[error("the body stopped arriving for {0} s")]
    RequestTimeout(u64),
    /// The body arrived slower than `limits.min_body_bytes_per_sec`.
    #[error("the body arrived slower than {min_rate} bytes per second")]
    TooSlow {
        /// The minimum rate.
        min_rate: u64,
    },
    /// The body could not be read (the client went away, or sent a broken stream).
    #[error("cannot read the request body: {0}")]
    BodyRead(String),
    /// The id in the path is not a media id; with the id it spells another way.
    #[error("{}", match .0 {
        None => "not a media id: media ids are UUIDs, lower case with hyphens".to_owned(),
        Some(id) => format!("media ids are spelled lower case with hyphens: {id}"),
    })]
    InvalidId(Option<uuid::Uuid>),
    /// The query string does not parse.
    #[error("the query string is malformed, or a parameter has a value of the wrong kind")]
    InvalidQuery,
    /// No API key, or one that is not accepted.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A request line or header that does not parse (refused by hyper, answered by
    /// [`crate::json_errors`]).
    #[error("the request line or a header does not parse as HTTP/1.1")]
    MalformedRequest,
    /// The client has `sources.max_in_flight_per_client` uploads by URL in flight.
    #[error("this client has {max} uploads by URL in flight already; retry when one is final")]
    TooManySources {
        /// The limit.
        max: usize,
    },
    /// An accepted key whose tenant may not use this endpoint.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No record has this id.
    #[error("no image has the id {0}")]
    NotFound(uuid::Uuid),
    /// A dead-letter action on a record that is no dead letter.
    #[error("the record {0} is no dead letter: only a job given up on can be retried or discarded")]
    NotADeadLetter(uuid::Uuid),
    /// No route has this path.
    #[error("no such endpoint")]
    NoRoute,
    /// The route does not take this method.
    #[error("method not allowed on this endpoint")]
    MethodNotAllowed,
    /// The thumbnail is not made yet.
    #[error("the thumbnail of {0} is still processing")]
    Processing(uuid::Uuid),
    /// A variant parameter cannot be used.
    #[error("{0}")]
    InvalidVariant(common::variant::VariantError),
    /// A callback URL that callbacks may not reach, or callbacks are off.
    #[error("callback_url: {0}")]
    CallbackNotAllowed(String),
    /// An address mail may not go to, or mail is off.
    #[error("notify_email: {0}")]
    EmailNotAllowed(String),
    /// No variant of that name, and none can be made on demand.
    #[error("{message}")]
    UnknownVariant {
        /// Why, with the variants that exist.
        message: String,
        /// The variants that exist.
        variants: Vec<String>,
    },
    /// The record has as many variants as it may.
    #[error("this image has {0} variants, the most one may have")]
    TooManyVariants(usize),
    /// The variant could not be made.
    #[error("the variant failed: {0}")]
    VariantFailed(String),
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
    /// Too many connections are open, in all or from this client.
    #[error("too many open connections; retry shortly")]
    TooManyConnections,
    /// The gateway is shutting down and takes no new connection.
    #[error("this gateway is shutting down; retry shortly (another answers)")]
    ShuttingDown,
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
    /// Media storage failed or cannot be reached.
    #[error(transparent)]
    Storage(#[from] common::storage::StorageError),
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
            ApiError::EmptyBody | ApiError::EmptyFile => (StatusCode::BAD_REQUEST, "empty_body"),
            ApiError::TooManyFiles { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_files"),
            ApiError::TooManyParts { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_parts"),
            ApiError::RequestTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "request_too_large")
            }
            ApiError::InvalidMultipart(_) => (StatusCode::BAD_REQUEST, "invalid_multipart"),
            ApiError::NoFiles => (StatusCode::BAD_REQUEST, "no_files"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::TooManyPixels(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_many_pixels"),
            ApiError::MetadataTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "metadata_too_large"),
            ApiError::InvalidHeader(_) => (StatusCode::BAD_REQUEST, "invalid_header"),
            ApiError::InvalidHost(_) => (StatusCode::BAD_REQUEST, "invalid_host"),
            ApiError::UriTooLong { .. } => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            ApiError::HeadersTooLarge { .. } => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::InvalidParameter(_) | ApiError::InvalidQuery => {
                (StatusCode::BAD_REQUEST, "invalid_parameter")
            }
            ApiError::BodyRead(_) => (StatusCode::BAD_REQUEST, "body_read_failed"),
            ApiError::RequestTimeout(_) | ApiError::TooSlow { .. } => {
                (StatusCode::REQUEST_TIMEOUT, "request_timeout")
            }
            ApiError::InvalidId(_) => (StatusCode::BAD_REQUEST, "invalid_id"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::MalformedRequest => (StatusCode::BAD_REQUEST, "malformed_request"),
            ApiError::TooManySources { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_sources"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::NoRoute => (StatusCode::NOT_FOUND, "no_route"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Processing(_) => (StatusCode::CONFLICT, "processing"),
            ApiError::NotADeadLetter(_) => (StatusCode::CONFLICT, "not_a_dead_letter"),
            ApiError::InvalidVariant(_) => (StatusCode::BAD_REQUEST, "invalid_parameter"),
            ApiError::CallbackNotAllowed(_) => (StatusCode::BAD_REQUEST, "callback_not_allowed"),
            ApiError::EmailNotAllowed(_) => (StatusCode::BAD_REQUEST, "email_not_allowed"),
            ApiError::UnknownVariant { .. } => (StatusCode::NOT_FOUND, "unknown_variant"),
            ApiError::TooManyVariants(_) => (StatusCode::BAD_REQUEST, "too_many_variants"),
            ApiError::VariantFailed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "variant_failed"),
            ApiError::JobFailed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "job_failed"),
            ApiError::NotReady(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Overloaded(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::QueueFull => (StatusCode::SERVICE_UNAVAILABLE, "queue_full"),
            ApiError::TooManyConnections => {
                (StatusCode::SERVICE_UNAVAILABLE, "too_many_connections")
            }
            ApiError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            ApiError::InsufficientStorage { .. } => {
                (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
            }
            ApiError::Store(StoreError::Unavailable(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
            ApiError::Store(StoreError::Full(_)) => {
                (StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage")
            }
            ApiError::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            ApiError::Store(_) | ApiError::Io(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
        }
    }
}

impl ApiError {
    /// The error's JSON body.
    fn body(&self) -> serde_json::Value {
        json!({ "error": self.detail() })
    }

    /// The error object of the body: `{"code", "message", ...}`.
    pub fn detail(&self) -> serde_json::Value {
        let (_, code) = self.status_and_code();
        let mut error = json!({ "code": code, "message": self.to_string() });
        match self {
            ApiError::InvalidVariant(variant) => {
                error["parameter"] = json!(variant.parameter);
            }
            ApiError::CallbackNotAllowed(_) => error["parameter"] = json!("callback_url"),
            ApiError::EmailNotAllowed(_) => error["parameter"] = json!("notify_email"),
            ApiError::UnknownVariant { variants, .. } => error["variants"] = json!(variants),
            _ => {}
        }
        error
    }

    /// The header the error adds to its response, if any.
    fn extra_header(&self) -> Option<(header::HeaderName, String)> {
        match self {
            ApiError::Unauthorized(_) => Some((header::WWW_AUTHENTICATE, "Bearer".into())),
            ApiError::RateLimited { retry_after } => {
                Some((header::RETRY_AFTER, retry_after.to_string()))
            }
            ApiError::Overloaded(_) | ApiError::TooManyConnections | ApiError::ShuttingDown => {
                Some((header::RETRY_AFTER, "1".into()))
            }
            ApiError::TooManySources { .. } => Some((header::RETRY_AFTER, "5".into())),
            ApiError::QueueFull
            | ApiError::Store(StoreError::Unavailable(_) | StoreError::Full(_))
            | ApiError::Storage(_) => Some((header::RETRY_AFTER, "5".into())),
            _ => None,
        }
    }

    /// The whole HTTP/1.1 response, for a connection answered before any HTTP handling (and
    /// closed after it).
    pub fn to_http1_bytes(&self) -> Vec<u8> {
        let (status, _) = self.status_and_code();
        let body = self.body().to_string();
        let mut head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
            body.len()
        );
        if let Some((name, value)) = self.extra_header() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        [head.into_bytes(), body.into_bytes()].concat()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.status_and_code();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, Json(self.body())).into_response();
        if let Some((name, value)) = self.extra_header()
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
    /// Callbacks cannot be set up.
    #[error(transparent)]
    Callbacks(#[from] crate::callbacks::CallbackError),
    /// The listen address cannot be bound (in use, not local, not permitted).
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The configured address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The data directory cannot be created or written.
    #[error("cannot use the data directory {}: {source}", path.display())]
    DataDir {
        /// The configured directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Media storage cannot be set up.
    #[error("{0}")]
    Storage(#[from] common::storage::StorageError),
    /// File set-up failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The configuration asks for something this build cannot do.
    #[error("configuration: {0}")]
    Config(String),
}
