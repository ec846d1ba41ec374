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

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, HeaderValue, Method, Version};
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

/// The middleware, with the hosts of `server.allowed_hosts` (empty: any).
pub async fn check(
    State(allowed): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    match refusal(&request, &allowed) {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    }
}

fn refusal(request: &Request, allowed: &[String]) -> Option<ApiError> {
    let hosts = request.headers().get_all(HOST).iter().count();
    if request.version() == Version::HTTP_11 && hosts != 1 {
        return Some(ApiError::InvalidHost(if hosts == 0 {
            "an HTTP/1.1 request needs a Host header"
        } else {
            "the Host header is given more than once"
        }));
    }
    if !allowed.is_empty() && !host_allowed(request.headers().get(HOST), allowed) {
        return Some(ApiError::InvalidHost(
            "the Host is not one this service answers to (server.allowed_hosts)",
        ));
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

/// The name of a `Host` value without its port, lower case (IPv6 in brackets).
fn host_name(value: &str) -> String {
    let value = value.trim();
    let name = match value.strip_prefix('[') {
        Some(rest) => rest.split(']').next().map(|inner| format!("[{inner}]")),
        None => value.split(':').next().map(str::to_owned),
    };
    name.unwrap_or_default().to_ascii_lowercase()
}

/// Whether a `Host` header names one of `allowed` (a `.name` admits its subdomains).
fn host_allowed(host: Option<&HeaderValue>, allowed: &[String]) -> bool {
    let Some(name) = host.and_then(|value| value.to_str().ok()).map(host_name) else {
        return false;
    };
    allowed.iter().any(|entry| {
        let entry = entry.to_ascii_lowercase();
        match entry.strip_prefix('.') {
            Some(domain) => name == domain || name.ends_with(&entry),
            None => name == entry,
        }
    })
}

/// Refuses a request a browser sent from another site: `Sec-Fetch-Site` other than
/// `same-origin` or `none`, or an `Origin` whose host is not the request's `Host`. For
/// actions a page can be tricked into (a cross-site form post needs no script and no
/// CORS): the dashboard's.
pub fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let refused = || {
        Err(ApiError::Forbidden(
            "a request from another site may not act here",
        ))
    };
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.to_str(), Ok("same-origin" | "none"))
    {
        return refused();
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|origin| origin.split_once("://"))
            .map(|(_, authority)| authority.to_ascii_lowercase());
        let host = headers
            .get(HOST)
            .and_then(|host| host.to_str().ok())
            .map(|host| host.trim().to_ascii_lowercase());
        if origin_host.is_none() || origin_host != host {
            return refused();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn only_allowed_hosts_are_answered() {
        let allowed = ["thumbs.example.org".to_owned(), ".internal.test".to_owned()];
        for (host, expected) in [
            ("thumbs.example.org", true),
            ("THUMBS.example.org:8080", true),
            ("a.internal.test", true),
            ("internal.test", true),
            ("evil.example", false),
            ("thumbs.example.org.evil.example", false),
            ("xinternal.test", false),
            ("[::1]:8080", false),
        ] {
            let value = HeaderValue::from_str(host).unwrap();
            assert_eq!(host_allowed(Some(&value), &allowed), expected, "{host}");
        }
        assert!(!host_allowed(None, &allowed));
        let v6 = HeaderValue::from_static("[::1]:8080");
        assert!(host_allowed(Some(&v6), &["[::1]".to_owned()]));
    }

    #[test]
    fn cross_site_actions_are_refused() {
        for (pairs, ok) in [
            (vec![("host", "h:8080")], true),
            (
                vec![("host", "h:8080"), ("sec-fetch-site", "same-origin")],
                true,
            ),
            (vec![("host", "h:8080"), ("sec-fetch-site", "none")], true),
            (vec![("host", "h:8080"), ("origin", "http://h:8080")], true),
            (
                vec![("host", "h:8080"), ("sec-fetch-site", "cross-site")],
                false,
            ),
            (
                vec![("host", "h:8080"), ("sec-fetch-site", "same-site")],
                false,
            ),
            (
                vec![("host", "h:8080"), ("origin", "http://evil.example")],
                false,
            ),
            (vec![("host", "h:8080"), ("origin", "null")], false),
        ] {
            assert_eq!(same_origin(&headers(&pairs)).is_ok(), ok, "{pairs:?}");
        }
    }
}
