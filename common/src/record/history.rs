//! A record's history: one event per step, bounded.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::time::now_rfc3339;

use super::Service;

/// One step in a record's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// When it happened (RFC 3339).
    pub at: String,
    /// What happened: `accepted`, `queued`, `started`, `completed`, `failed`, `requeued`,
    /// `variant_requested`, `variant_completed`, `variant_failed`, `deduplicated`, `callback_delivered`,
    /// `callback_retry`, `callback_failed`, `warning` (what a worker worked around, such as a
    /// colour profile it could not use).
    pub event: String,
    /// The service that wrote it: `gateway` or `worker`.
    pub service: Service,
    /// The process, for a worker (`host:pid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// More about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The most events a record keeps; older ones beyond the first are dropped.
pub const MAX_EVENTS: usize = 64;

impl Event {
    /// An event happening now.
    pub fn new(event: &str, service: Service, message: Option<String>) -> Self {
        Self {
            at: now_rfc3339(),
            event: event.to_owned(),
            service,
            by: None,
            message,
        }
    }
}
