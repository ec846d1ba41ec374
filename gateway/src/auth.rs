//! API keys: when configured, every endpoint but `/healthz`, `/openapi.json`, `/docs` and the
//! `/dashboard` page (which holds no data) requires
//! `Authorization: Bearer <key>`.
//!
//! Keys are kept only as SHA-256 digests (`auth.api_keys` are hashed at start-up;
//! `auth.api_keys_file` holds digests). A presented key is hashed and compared with every
//! digest in constant time, so neither its length nor which key it matched shows in the
//! timing. Keys are never logged.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::config::AuthConfig;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{ApiError, GatewayError};

/// The accepted keys' digests.
#[derive(Debug)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
}

impl ApiKeys {
    /// The configured keys; `None` when there are none (the API is open).
    pub fn load(config: &AuthConfig) -> Result<Option<Arc<Self>>, GatewayError> {
        let mut digests: Vec<[u8; 32]> = config.api_keys.iter().map(|key| digest(key)).collect();
        if let Some(path) = &config.api_keys_file {
            let text = std::fs::read_to_string(path)?;
            for (number, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or_default().trim();
                if line.is_empty() {
                    continue;
                }
                digests.push(parse_hex_digest(line).ok_or_else(|| {
                    GatewayError::Auth(format!(
                        "{}:{}: not a SHA-256 digest in hex",
                        path.display(),
                        number + 1
                    ))
                })?);
            }
        }
        Ok((!digests.is_empty()).then(|| Arc::new(Self { digests })))
    }

    /// Whether `key` is one of the accepted keys.
    pub fn accepts(&self, key: &str) -> bool {
        let presented = digest(key);
        let matched = self
            .digests
            .iter()
            .fold(subtle::Choice::from(0), |found, digest| {
                found | digest.ct_eq(&presented)
            });
        matched.into()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

fn parse_hex_digest(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0; 32];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// The middleware: lets `/healthz`, the contract, the dashboard's page (not its data) and
/// requests with an accepted key through.
pub async fn require_key(
    State(keys): State<Arc<ApiKeys>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path == "/healthz" || path == "/dashboard" || crate::openapi::is_public(path) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, key) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
        });
    match presented {
        Some(key) if keys.accepts(key) => next.run(request).await,
        Some(_) => ApiError::Unauthorized("the API key is not valid").into_response(),
        None => ApiError::Unauthorized("an API key is required: Authorization: Bearer <key>")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_configured_and_hashed_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        let hashed = "a".repeat(64);
        std::fs::write(
            &file,
            format!(
                "# team B\n{}\n\n{hashed} # unused\n",
                "b1b3ab2c2d0d2ad3a0e9e3b7a1b0bdd63e7e9a2c36eb3f7d8b6a1c6ad9e4b8b0"
            ),
        )
        .unwrap();
        let keys = ApiKeys::load(&AuthConfig {
            api_keys: vec!["first-key".into()],
            api_keys_file: Some(file.clone()),
        })
        .unwrap()
        .unwrap();
        assert_eq!(keys.digests.len(), 3);
        assert!(keys.accepts("first-key"));
        assert!(!keys.accepts("first-key "));
        assert!(!keys.accepts(""));
        assert!(ApiKeys::load(&AuthConfig::default()).unwrap().is_none());

        std::fs::write(&file, "not-a-digest\n").unwrap();
        let error = ApiKeys::load(&AuthConfig {
            api_keys: vec![],
            api_keys_file: Some(file),
        })
        .unwrap_err();
        assert!(
            error.to_string().contains(":1: not a SHA-256 digest"),
            "{error}"
        );
    }
}
