//! Request ids: every request gets one, every log line of its handling carries it, and the
//! answer echoes it in `x-request-id`.
//!
//! A client's (or a proxy's) `x-request-id` is kept when it is 1 to [`MAX_LEN`] characters of
//! `A-Z a-z 0-9 - _ . : /`, so that it can be written into logs as it is; anything else is
//! replaced by a new UUID v7 (time-ordered, so ids sort by arrival). The request runs inside a
//! `request` span holding the id, the method and the route, so that with
//! `logging.format: json` each line names the request it belongs to.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header.
pub const HEADER: &str = "x-request-id";
/// The longest id kept from a request.
pub const MAX_LEN: usize = 128;

/// The middleware.
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .filter(|value| is_acceptable(value.as_bytes()))
        .cloned()
        .unwrap_or_else(|| {
            let id = uuid::Uuid::now_v7().to_string();
            HeaderValue::from_str(&id).expect("a UUID is a header value")
        });
    request.headers_mut().insert(HEADER, id.clone());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("-", MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = id.to_str().unwrap_or_default(),
        method = %request.method(),
        route,
    );
    let mut response = next.run(request).instrument(span).await;
    response.headers_mut().insert(HEADER, id);
    response
}

/// Whether a presented id may be kept as it is.
fn is_acceptable(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_kept() {
        assert!(is_acceptable(b"7f9c0d1e-aa"));
        assert!(is_acceptable(b"edge-01:req/67891233_abcdef.0123"));
        assert!(is_acceptable(&[b'a'; MAX_LEN]));
        assert!(!is_acceptable(&[b'a'; MAX_LEN + 1]));
        assert!(!is_acceptable(b""));
        assert!(!is_acceptable(b"a b"));
        assert!(!is_acceptable(b"id\"}{\"level\":\"ERROR"));
        assert!(!is_acceptable("é".as_bytes()));
    }
}
