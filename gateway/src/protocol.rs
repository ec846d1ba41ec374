//! HTTP checks every request passes before it is routed, each refusal the JSON error.
//!
//! | check | refusal |
//! |---|---|
//! | an HTTP/1.1 request has exactly one `Host` header (RFC 9112 §3.2) | 400 `invalid_host` |
//! | the request target is at most [`MAX_URI_BYTES`] | 414 `uri_too_long` |
//! | at most [`MAX_HEADERS`] headers of [`MAX_HEADER_BYTES`] in all | 431 `headers_too_large` |
//!
//! hyper itself refuses what it cannot parse, before any of this runs: a request head over
//! [`HYPER_MAX_HEAD_BYTES`] or with more than [`HYPER_MAX_HEADERS`] headers gets 431, a
//! malformed request line or header gets 400, and the connection is closed. hyper writes
//! those with an empty body; [`crate::json_errors`] rewrites them as the JSON error. The
//! limits here sit well below hyper's, so that a request hyper can read gets the error that
//! names the limit it passed.

use axum::extract::Request;
use axum::http::header::HOST;
use axum::http::{Method, Version};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The longest request target (path and query) answered.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// The most headers a request may have.
pub const MAX_HEADERS: usize = 100;
/// The most bytes all the headers may take (names, values, and 4 bytes each for `: ` and the
/// line break).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// hyper's read buffer: a request head larger than this is refused by hyper itself.
pub const HYPER_MAX_HEAD_BYTES: usize = 64 * 1024;
/// The most headers hyper parses; more are refused by hyper itself.
pub const HYPER_MAX_HEADERS: usize = 256;

/// The middleware.
pub async fn check(request: Request, next: Next) -> Response {
    match refusal(&request) {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    }
}

fn refusal(request: &Request) -> Option<ApiError> {
    let hosts = request.headers().get_all(HOST).iter().count();
    if request.version() == Version::HTTP_11 && hosts != 1 {
        return Some(ApiError::InvalidHost(if hosts == 0 {
            "an HTTP/1.1 request needs a Host header"
        } else {
            "the Host header is given more than once"
        }));
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > MAX_URI_BYTES && request.method() != Method::CONNECT {
        return Some(ApiError::UriTooLong { max: MAX_URI_BYTES });
    }
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Some(ApiError::HeadersTooLarge {
            max_headers: MAX_HEADERS,
            max_bytes: MAX_HEADER_BYTES,
        });
    }
    None
}
