//! Timestamps as RFC 3339 text, the form records carry.

use std::time::SystemTime;

/// The current time in RFC 3339 form with millisecond precision, in UTC
/// (for example `2026-11-24T06:08:10.123Z`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
