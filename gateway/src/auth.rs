//! API keys and the tenants they belong to: when keys are configured, every endpoint but
//! `/healthz`, `/openapi.json`, `/docs` and the `/dashboard` page (which holds no data)
//! requires `Authorization: Bearer <key>`, and the request acts for the key's [`Tenant`].
//!
//! - **Keys** are kept only as SHA-256 digests (`auth.api_keys` and `auth.tenants` are hashed
//!   at start-up; `auth.api_keys_file` holds digests). A presented key is hashed and compared
//!   with every digest in constant time, so neither its length nor which key it matched
//!   shows in the timing. Keys are never logged.
//! - **Tenants.** A key in `auth.api_keys`, or a digest in the file without a name, is a
//!   tenant of its own, named `key-` and the first 12 hex digits of its digest; the keys of
//!   `auth.tenants`, and file lines `<digest> <name>`, belong to the tenant named. A tenant
//!   sees, lists, waits for, fetches and deletes only its own uploads: any other record is
//!   404 `not_found`, as one that does not exist, so ids are never confirmed. With no keys
//!   configured the API is open and one tenant, everybody, sees every record.
//! - **Operators.** The dashboard's data and its actions on dead letters span every tenant:
//!   only the tenants named in `auth.operators` may use them (403 `forbidden` for others).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use common::config::AuthConfig;
use common::record::Record;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};
use uuid::Uuid;

use crate::error::{ApiError, GatewayError};

/// Who a request acts for: the tenant of its API key, or everybody when the API is open.
/// Extracted by every handler of records; cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    name: Option<Arc<str>>,
    operator: bool,
}

impl Default for Tenant {
    /// Everybody: the API is open, every record is theirs, the dashboard too.
    fn default() -> Self {
        Self {
            name: None,
            operator: true,
        }
    }
}

impl Tenant {
    /// The tenant named `name`, not an operator.
    pub fn named(name: &str) -> Self {
        Self {
            name: Some(Arc::from(name)),
            operator: false,
        }
    }

    /// The tenant's name; `None` for everybody (no keys configured).
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether `record` is this tenant's to see.
    pub fn owns(&self, record: &Record) -> bool {
        match &self.name {
            None => true,
            Some(name) => record.tenant.as_deref() == Some(name),
        }
    }

    /// Refuses a tenant that is not an operator (`auth.operators`): the dashboard's data and
    /// actions span every tenant's records.
    pub fn require_operator(&self) -> Result<(), ApiError> {
        if self.operator {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this API key's tenant is not one of auth.operators",
            ))
        }
    }

    /// `record` if it exists and is this tenant's; else 404, the same for both.
    pub fn check(&self, id: Uuid, record: Option<Record>) -> Result<Record, ApiError> {
        record
            .filter(|record| self.owns(record))
            .ok_or(ApiError::NotFound(id))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Tenant>()
            .cloned()
            .unwrap_or_default())
    }
}

/// The accepted keys' digests, each with its tenant.
#[derive(Debug)]
pub struct ApiKeys {
    digests: Vec<[u8; 32]>,
    tenants: Vec<Tenant>,
}

/// The longest tenant name.
const MAX_TENANT: usize = 64;

/// Checks a tenant's name: 1 to 64 ASCII letters, digits, `.`, `_` and `-`, starting with a
/// letter or digit (so that the `-` `sha256sum` prints after a digest is no tenant).
fn check_tenant(name: &str) -> Result<(), String> {
    let good = (1..=MAX_TENANT).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if good {
        Ok(())
    } else {
        Err(format!(
            "a tenant's name is 1 to {MAX_TENANT} ASCII letters, digits, '.', '_' or '-', \
             starting with a letter or digit (a line of sha256sum ends in '-': remove it)"
        ))
    }
}

/// The tenant of a key known only by its digest.
fn own_tenant(digest: &[u8; 32]) -> Tenant {
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    Tenant::named(&format!("key-{hex}"))
}

impl ApiKeys {
    /// The configured keys; `None` when there are none (the API is open).
    pub fn load(config: &AuthConfig) -> Result<Option<Arc<Self>>, GatewayError> {
        let mut keys: BTreeMap<[u8; 32], Tenant> = BTreeMap::new();
        let mut add = |digest: [u8; 32], tenant: Tenant| match keys.insert(digest, tenant) {
            Some(_) => Err("the same API key is configured twice".to_owned()),
            None => Ok(()),
        };
        for key in &config.api_keys {
            let digest = digest(key);
            add(digest, own_tenant(&digest)).map_err(GatewayError::Auth)?;
        }
        for (name, tenant_keys) in &config.tenants {
            check_tenant(name).map_err(GatewayError::Auth)?;
            for key in tenant_keys {
                add(digest(key), Tenant::named(name)).map_err(GatewayError::Auth)?;
            }
        }
        if let Some(path) = &config.api_keys_file {
            let text = std::fs::read_to_string(path)?;
            for (number, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or_default();
                let mut words = line.split_whitespace();
                let Some(hex) = words.next() else {
                    continue;
                };
                let at = |what: &str| {
                    GatewayError::Auth(format!("{}:{}: {what}", path.display(), number + 1))
                };
                let digest =
                    parse_hex_digest(hex).ok_or_else(|| at("not a SHA-256 digest in hex"))?;
                let tenant = match (words.next(), words.next()) {
                    (None, _) => own_tenant(&digest),
                    (Some(name), None) => {
                        check_tenant(name).map_err(|why| at(&why))?;
                        Tenant::named(name)
                    }
                    (Some(_), Some(_)) => return Err(at("a digest, then at most a tenant's name")),
                };
                add(digest, tenant).map_err(|why| at(&why))?;
            }
        }
        if keys.is_empty() {
            return Ok(None);
        }
        for operator in &config.operators {
            check_tenant(operator).map_err(GatewayError::Auth)?;
        }
        let (digests, tenants) = keys
            .into_iter()
            .map(|(digest, mut tenant)| {
                tenant.operator = tenant
                    .name()
                    .is_some_and(|name| config.operators.iter().any(|operator| operator == name));
                (digest, tenant)
            })
            .unzip();
        Ok(Some(Arc::new(Self { digests, tenants })))
    }

    /// The tenant of `key`, if it is one of the accepted keys. Every digest is compared,
    /// and the match chosen without a branch on it.
    pub fn tenant_of(&self, key: &str) -> Option<Tenant> {
        let presented = digest(key);
        let (found, index) = self.digests.iter().enumerate().fold(
            (subtle::Choice::from(0), 0u64),
            |(found, index), (i, digest)| {
                let matched = digest.ct_eq(&presented);
                (
                    found | matched,
                    u64::conditional_select(&index, &(i as u64), matched),
                )
            },
        );
        bool::from(found).then(|| self.tenants[usize::try_from(index).unwrap_or(0)].clone())
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
/// requests with an accepted key through, the latter acting for the key's tenant.
pub async fn require_key(
    State(keys): State<Arc<ApiKeys>>,
    mut request: Request,
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
    match presented.map(|key| keys.tenant_of(key)) {
        Some(Some(tenant)) => {
            request.extensions_mut().insert(tenant);
            next.run(request).await
        }
        Some(None) => ApiError::Unauthorized("the API key is not valid").into_response(),
        None => ApiError::Unauthorized("an API key is required: Authorization: Bearer <key>")
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B_DIGEST: &str = "b1b3ab2c2d0d2ad3a0e9e3b7a1b0bdd63e7e9a2c36eb3f7d8b6a1c6ad9e4b8b0";

    fn config(file: Option<std::path::PathBuf>) -> AuthConfig {
        AuthConfig {
            api_keys: vec!["first-key".into()],
            tenants: BTreeMap::from([(
                "acme".to_owned(),
                vec!["acme-old".to_owned(), "acme-new".to_owned()],
            )]),
            api_keys_file: file,
            operators: vec!["globex".to_owned()],
        }
    }

    #[test]
    fn each_key_acts_for_its_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keys");
        let hashed = "a".repeat(64);
        let named = digest("file-key-of-globex")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        std::fs::write(
            &file,
            format!("# team B\n{B_DIGEST}\n\n{hashed} # unused\n{named} globex # rotated\n"),
        )
        .unwrap();
        let keys = ApiKeys::load(&config(Some(file.clone()))).unwrap().unwrap();
        assert_eq!(keys.digests.len(), 6);
        let own = keys.tenant_of("first-key").unwrap();
        assert_eq!(own, own_tenant(&digest("first-key")));
        assert!(own.name().unwrap().starts_with("key-"));
        assert_eq!(own.name().unwrap().len(), 16);
        assert_eq!(keys.tenant_of("acme-old"), Some(Tenant::named("acme")));
        assert!(
            keys.tenant_of("acme-old")
                .unwrap()
                .require_operator()
                .is_err()
        );
        assert!(
            keys.tenant_of("file-key-of-globex")
                .unwrap()
                .require_operator()
                .is_ok()
        );
        assert!(Tenant::default().require_operator().is_ok());
        assert_eq!(keys.tenant_of("acme-new"), Some(Tenant::named("acme")));
        assert_eq!(
            keys.tenant_of("file-key-of-globex").unwrap().name(),
            Some("globex")
        );
        assert!(keys.tenant_of("first-key ").is_none());
        assert!(keys.tenant_of("").is_none());
        assert!(ApiKeys::load(&AuthConfig::default()).unwrap().is_none());

        for (line, words) in [
            ("not-a-digest\n", ":1: not a SHA-256 digest"),
            (
                &format!("{B_DIGEST} two words\n"),
                ":1: a digest, then at most",
            ),
            (&format!("{B_DIGEST} bad/name\n"), ":1: a tenant's name is"),
            (&format!("{B_DIGEST}  -\n"), ":1: a tenant's name is"),
            (
                &format!("{B_DIGEST}\n{B_DIGEST} again\n"),
                ":2: the same API key",
            ),
        ] {
            std::fs::write(&file, line).unwrap();
            let error = ApiKeys::load(&AuthConfig {
                api_keys_file: Some(file.clone()),
                ..AuthConfig::default()
            })
            .unwrap_err();
            assert!(error.to_string().contains(words), "{line}: {error}");
        }
    }

    #[test]
    fn a_tenant_owns_its_records_and_everybody_owns_all() {
        let mut record: Record = serde_json::from_value(serde_json::json!({
            "media_id": Uuid::nil(), "media_type": "image/png", "name": null,
            "service": "gateway", "state": "Processing", "message": "", "code": 102,
            "size": 1, "md5": "", "sha256": "", "width": null, "height": null,
            "created_at": "", "updated_at": "", "thumbnail": null
        }))
        .unwrap();
        record.tenant = Some("acme".to_owned());
        assert!(Tenant::named("acme").owns(&record));
        assert!(!Tenant::named("globex").owns(&record));
        assert!(Tenant::default().owns(&record));
        let refused = Tenant::named("globex").check(Uuid::nil(), Some(record));
        assert!(matches!(refused, Err(ApiError::NotFound(_))));
    }
}
