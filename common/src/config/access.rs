//! Who may use the service: `server` (the hosts it answers to) and `auth` (API keys and
//! their tenants).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What the HTTP server answers to.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The host names (and addresses) requests may name in `Host`, compared without case or
    /// port; a name starting with `.` admits its subdomains. Empty: any. Set it where a
    /// browser can reach the service, so that a page whose name is pointed at it (DNS
    /// rebinding) is refused.
    pub allowed_hosts: Vec<String>,
    /// Seconds after SIGTERM during which the gateway serves as before while `/readyz`
    /// answers 503, so that load balancers stop sending it requests; then new connections
    /// are answered 503 with `Retry-After`.
    pub drain_secs: u64,
    /// Seconds after SIGTERM by which requests still in flight are cut off. Keep it a few
    /// seconds under what the supervisor allows (Kubernetes' `terminationGracePeriodSeconds`,
    /// 30 by default): the gateway exits shortly after.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            drain_secs: 5,
            shutdown_grace_secs: 20,
        }
    }
}

/// API keys. With none configured, the API is open.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Keys accepted as `Authorization: Bearer <key>`, each a tenant of its own (named
    /// `key-` and the first 12 hex digits of its SHA-256).
    pub api_keys: Vec<String>,
    /// Tenants by name, each with the keys it is known by (several while a key is rotated).
    /// A tenant sees, lists and deletes its own uploads only.
    pub tenants: std::collections::BTreeMap<String, Vec<String>>,
    /// A file of accepted keys' SHA-256 digests, hex, one per line, each optionally followed
    /// by its tenant's name (`#` starts a comment); a digest without a name is a tenant of
    /// its own, named as in `api_keys`.
    pub api_keys_file: Option<PathBuf>,
    /// The tenants that may read the dashboard's data and act on dead letters: every
    /// tenant's records. Other keys are refused there (403).
    pub operators: Vec<String>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenants: Vec<(&String, usize)> = self
            .tenants
            .iter()
            .map(|(name, keys)| (name, keys.len()))
            .collect();
        f.debug_struct("AuthConfig")
            .field("api_keys", &vec!["***"; self.api_keys.len()])
            .field("tenants", &tenants)
            .field("api_keys_file", &self.api_keys_file)
            .field("operators", &self.operators)
            .finish()
    }
}
