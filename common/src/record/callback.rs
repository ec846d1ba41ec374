//! A record's completion callback (webhook) and mail, and where their deliveries stand.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a record's completion callback stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallbackState {
    /// To be delivered once the record is final (and retried until it is, or fails).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: a 4xx answer, a refused address, or every attempt failed.
    Failed,
}

/// A record's completion callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Callback {
    /// Where the record is posted.
    pub url: String,
    /// Where the delivery stands.
    pub state: CallbackState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The HTTP status of the last answer, if there was one.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When the next attempt is due (RFC 3339), while pending and after a failed attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

/// A record's mail: the record, and its first thumbnail attached, sent to an address when the
/// record is final.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Email {
    /// Whom it is sent to.
    pub to: String,
    /// Where the delivery stands.
    pub state: CallbackState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The SMTP server's reply code to the last attempt, if it gave one.
    pub last_code: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When the next attempt is due (RFC 3339), while pending and after a failed attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

impl Email {
    /// A mail to `to`, pending until the record is final.
    pub fn to(to: String) -> Self {
        Self {
            to,
            state: CallbackState::Pending,
            attempts: 0,
            last_code: None,
            last_error: None,
            next_attempt_at: None,
        }
    }
}
