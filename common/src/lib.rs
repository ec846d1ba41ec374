//! The vocabulary that Thumbnailify's gateway and workers share.
//!
//! A job travels as one straight line:
//!
//! ```text
//! gateway: route → store (Record) → queue (Job)
//! worker:  storage (raw) → decode → resize → encode → storage (thumbnail) → queue (JobResult)
//! gateway: results → store (Record, final)
//! ```
//!
//! This crate holds every type that crosses a process boundary on that line:
//!
//! - [`config`]: the configuration file, its defaults and environment overrides.
//! - [`media`]: the supported media types and sniffing of the real format from magic bytes.
//! - [`record`]: the record of one image that the gateway stores and the API returns.
//! - [`message`]: the job message (gateway → worker) and the result event (worker → gateway).
//! - [`files`]: the data directory's layout, and atomic writes.
//! - [`storage`]: media bytes, in the data directory or in S3-compatible object storage.
//! - [`queue`]: the queue interface with its embedded and RabbitMQ back-ends.
//! - [`shutdown`]: the graceful-shutdown signal shared by every long-running task.
//! - [`time`]: RFC 3339 timestamps.
//! - [`digest`]: MD5 and SHA-256 of uploads, fed as the bytes arrive.
//! - [`spool`]: streamed uploads and fetched sources, written to temporary files as they
//!   arrive.
//! - [`address`]: where outbound requests (callbacks, fetched sources) may go.

pub mod address;
pub mod config;
pub mod digest;
pub mod files;
pub mod media;
pub mod message;
pub mod queue;
pub mod record;
pub mod shutdown;
pub mod spool;
pub mod storage;
pub mod time;
pub mod trace;
pub mod variant;

pub use config::Config;
pub use media::MediaType;
pub use message::{Job, JobResult, Outcome};
pub use record::{Record, Service, State, ThumbnailInfo};
