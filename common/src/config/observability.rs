//! What the service tells its operators: `logging` and `tracing`.

use serde::{Deserialize, Serialize};

/// Traces: one per upload, across the gateway and the workers (see `common::trace`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TracingConfig {
    /// An OTLP/HTTP traces endpoint (`http://collector:4318/v1/traces`); unset: no export.
    /// Needs a build with the `otlp` feature.
    pub otlp_endpoint: Option<String>,
}

/// How the binaries log (to standard error; `RUST_LOG` sets the level, default `info`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// The line format.
    pub format: LogFormat,
}

/// The line format of the logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: one line per event, the spans' fields before the message.
    #[default]
    Text,
    /// For log collectors: one JSON object per line, with `timestamp`, `level`, `target`,
    /// the event's fields (`message`, `media_id`, …), the current `span` and the list of
    /// `spans` (`request_id`, `method`, `route` of the request it belongs to).
    Json,
}
