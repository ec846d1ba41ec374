//! Configuration: `config.yaml`, its defaults, and the layers over it.
//!
//! Every key has a default, so an empty file (or none) is a valid configuration. [`load`]
//! reads the file, then the environment (every key, as `THUMBNAILIFY_LIMITS__MAX_PIXELS`),
//! then the secrets kept in files; [`print`] shows the result with secrets masked. The root
//! `config.yaml` documents every key.

mod access;
mod backends;
#[cfg(test)]
mod documented;
mod limits;
mod load;
mod observability;
mod outbound;
mod print;
mod thumbnail;

pub use access::{AuthConfig, ServerConfig};
pub use backends::{
    MediaConfig, QueueConfig, RecoveryConfig, S3Config, StoreConfig, StoreLocation,
};
pub use limits::LimitsConfig;
pub use observability::{LogFormat, LoggingConfig, TracingConfig};
pub use outbound::{CallbacksConfig, EmailConfig, SourcesConfig};
pub use thumbnail::{
    ColorMode, DocumentsConfig, OutputFormat, PlaceholderKind, ThumbnailConfig, VideoConfig,
    WorkerConfig,
};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port the gateway listens on.
    pub listen: String,
    /// Directory holding the store, raw uploads and thumbnails.
    pub data_dir: PathBuf,
    /// Whether to keep raw uploads once their job is final.
    pub keep_raw: bool,
    /// Whether uploads of bytes already stored share the stored original, and complete from
    /// (or wait for) an upload of the same bytes and variants instead of being decoded again.
    pub dedup: bool,
    /// What the HTTP server answers to.
    pub server: ServerConfig,
    /// The job queue.
    pub queue: QueueConfig,
    /// The record store.
    pub store: StoreConfig,
    /// Where media bytes (raw uploads, thumbnails) live.
    pub media: MediaConfig,
    /// Size limits on uploads and decoding.
    pub limits: LimitsConfig,
    /// What thumbnails to make.
    pub thumbnail: ThumbnailConfig,
    /// The workers.
    pub worker: WorkerConfig,
    /// Who may use the API.
    pub auth: AuthConfig,
    /// What becomes of jobs that do not finish.
    pub recovery: RecoveryConfig,
    /// Completion callbacks (webhooks, and mail).
    pub callbacks: CallbacksConfig,
    /// The SMTP server final records are mailed through.
    pub email: EmailConfig,
    /// Sources fetched from URLs.
    pub sources: SourcesConfig,
    /// Video: the FFmpeg tools that probe videos and take their poster frames.
    pub video: VideoConfig,
    /// Documents (SVG, PDF): how they are rendered, and their bounds.
    pub documents: DocumentsConfig,
    /// How the binaries log.
    pub logging: LoggingConfig,
    /// Where the binaries send their traces.
    pub tracing: TracingConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from("./data"),
            keep_raw: false,
            dedup: true,
            server: ServerConfig::default(),
            queue: QueueConfig::default(),
            store: StoreConfig::default(),
            media: MediaConfig::default(),
            limits: LimitsConfig::default(),
            thumbnail: ThumbnailConfig::default(),
            worker: WorkerConfig::default(),
            auth: AuthConfig::default(),
            recovery: RecoveryConfig::default(),
            callbacks: CallbacksConfig::default(),
            email: EmailConfig::default(),
            sources: SourcesConfig::default(),
            video: VideoConfig::default(),
            documents: DocumentsConfig::default(),
            logging: LoggingConfig::default(),
            tracing: TracingConfig::default(),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid configuration.
    #[error("invalid configuration in {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_norway::Error,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
    /// The file and the environment together do not make a configuration (a value of the
    /// wrong type, an unknown key); the message names the key and the layer it came from.
    #[error("invalid configuration: {0}")]
    Layers(Box<figment::Error>),
}

impl Config {
    /// Parses a configuration file (no environment overrides).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Parses configuration text. An empty document is the default configuration.
    pub fn from_yaml(text: &str) -> Result<Self, serde_norway::Error> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_norway::from_str(text)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: &str| Err(ConfigError::Invalid(message.to_owned()));
        if self.thumbnail.width == 0 || self.thumbnail.height == 0 {
            return invalid("thumbnail.width and thumbnail.height must be at least 1");
        }
        if !(1..=100).contains(&self.thumbnail.jpeg_quality) {
            return invalid("thumbnail.jpeg_quality must be between 1 and 100");
        }
        if self.sources.max_fetches == 0
            || self.sources.max_fetches_per_host == 0
            || self.sources.max_in_flight_per_client == 0
        {
            return invalid(
                "sources.max_fetches, max_fetches_per_host and max_in_flight_per_client must be at least 1",
            );
        }
        if self.limits.max_upload_bytes == 0
            || self.limits.max_video_bytes == 0
            || self.limits.max_pixels == 0
            || self.limits.read_timeout_secs == 0
            || self.limits.max_inflight_uploads == 0
            || self.limits.max_queued_jobs == 0
            || self.limits.max_files_per_request == 0
            || self.limits.max_form_parts == 0
            || self.limits.max_request_bytes == 0
        {
            return invalid(
                "limits.max_upload_bytes, max_video_bytes, max_pixels, read_timeout_secs, max_inflight_uploads, max_queued_jobs, max_files_per_request, max_form_parts and max_request_bytes must be at least 1",
            );
        }
        if self.limits.keep_alive_secs == 0
            || self.limits.max_connections == 0
            || self.limits.max_connections_per_client == 0
        {
            return invalid(
                "limits.keep_alive_secs, max_connections and max_connections_per_client must be at least 1",
            );
        }
        if self.limits.max_upload_memory_bytes < self.limits.max_upload_bytes {
            return invalid(
                "limits.max_upload_memory_bytes must be at least limits.max_upload_bytes, or no upload at the size limit could ever be read",
            );
        }
        if let Some(url) = &self.queue.url
            && !url.starts_with("amqp://")
            && !crate::queue::is_redis_url(url)
        {
            return invalid(
                "queue.url must be an amqp:// (RabbitMQ), redis:// or rediss:// (Redis) URL",
            );
        }
        if self.store.location().is_none() {
            return invalid(
                "store.url must be a postgres:// or sqlite://PATH URL (or unset for SQLite in the data directory)",
            );
        }
        if let Some(url) = &self.media.url
            && !url.starts_with("s3://")
        {
            return invalid("media.url must be an s3:// URL (or unset for the data directory)");
        }
        if self.media.presign && self.media.url.is_none() {
            return invalid(
                "media.presign needs media.url: only S3 can presign URLs, the data directory cannot",
            );
        }
        if self.store.max_connections == 0 {
            return invalid("store.max_connections must be at least 1");
        }
        if self.worker.heartbeat_secs == 0 {
            return invalid("worker.heartbeat_secs must be at least 1");
        }
        if self.video.timeout_secs == 0 || self.video.threads == 0 {
            return invalid("video.timeout_secs and video.threads must be at least 1");
        }
        if self.video.max_memory_bytes < 64 * 1024 * 1024 {
            return invalid(
                "video.max_memory_bytes must be at least 64 MiB: FFmpeg cannot start in less",
            );
        }
        if self.email.timeout_secs == 0 {
            return invalid("email.timeout_secs must be at least 1");
        }
        if self.callbacks.email.is_some() && self.email.allowed_domains.is_empty() {
            return invalid(
                "callbacks.email needs its domain in email.allowed_domains (and email.smtp_url)",
            );
        }
        if self.documents.timeout_secs == 0
            || self.documents.max_elements == 0
            || self.documents.max_depth == 0
            || self.documents.max_pages == 0
            || self.documents.max_page_points == 0
        {
            return invalid(
                "documents.timeout_secs, max_elements, max_depth, max_pages and max_page_points must be at least 1",
            );
        }
        if self.documents.max_memory_bytes < 64 * 1024 * 1024 {
            return invalid("documents.max_memory_bytes must be at least 64 MiB");
        }
        if self.recovery.stuck_after_secs == 0 || self.recovery.max_attempts == 0 {
            return invalid(
                "recovery.stuck_after_secs and recovery.max_attempts must be at least 1",
            );
        }
        if self.limits.max_thumbnail_side == 0 || self.limits.max_variants == 0 {
            return invalid("limits.max_thumbnail_side and limits.max_variants must be at least 1");
        }
        for (name, preset) in &self.thumbnail.presets {
            if !crate::variant::is_preset_name(name) {
                return Err(ConfigError::Invalid(format!(
                    "thumbnail.presets: `{name}` is not a preset name (1 to 32 of a-z, 0-9, _ and -, starting with a letter)"
                )));
            }
            if crate::variant::check_size(preset.size, &self.limits).is_err()
                || preset.quality.is_some_and(|q| !(1..=100).contains(&q))
            {
                return Err(ConfigError::Invalid(format!(
                    "thumbnail.presets.{name}: a side over limits.max_thumbnail_side, or a quality outside 1-100"
                )));
            }
        }
        if self.callbacks.max_attempts == 0
            || self.callbacks.concurrency == 0
            || self.callbacks.concurrency_per_host == 0
        {
            return invalid(
                "callbacks.max_attempts, concurrency and concurrency_per_host must be at least 1",
            );
        }
        if self.server.shutdown_grace_secs <= self.server.drain_secs {
            return invalid("server.shutdown_grace_secs must be more than server.drain_secs");
        }
        if self.queue.prefix.is_empty()
            || self.queue.delivery_limit == 0
            || self.queue.visibility_secs == 0
        {
            return invalid(
                "queue.prefix must not be empty, and queue.delivery_limit and visibility_secs must be at least 1",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_held_to_the_limit_of_what_its_first_bytes_are() {
        let limits = LimitsConfig {
            max_upload_bytes: 10,
            max_video_bytes: 20,
            ..LimitsConfig::default()
        };
        let mp4 = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2";
        assert_eq!(limits.max_bytes_of(mp4), 20);
        assert_eq!(limits.max_bytes_of(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), 10);
        assert_eq!(limits.max_bytes_of(b"just text"), 10);
    }

    #[test]
    fn empty_document_is_the_default() {
        let config = Config::from_yaml("").unwrap();
        assert_eq!(config.listen, "127.0.0.1:8080");
        assert_eq!(config.thumbnail.width, 100);
        assert_eq!(config.limits.max_upload_bytes, 50 * 1024 * 1024);
        assert!(config.queue.url.is_none());
    }

    #[test]
    fn the_documented_file_parses_and_matches_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.yaml");
        let config = Config::from_file(&path).unwrap();
        let default = Config::default();
        assert_eq!(config.listen, default.listen);
        assert_eq!(config.data_dir, default.data_dir);
        assert_eq!(config.keep_raw, default.keep_raw);
        assert_eq!(config.dedup, default.dedup);
        assert_eq!(config.queue.url, default.queue.url);
        assert_eq!(config.queue.prefix, default.queue.prefix);
        assert_eq!(config.queue.delivery_limit, default.queue.delivery_limit);
        assert_eq!(
            config.limits.max_upload_bytes,
            default.limits.max_upload_bytes
        );
        assert_eq!(config.limits.max_pixels, default.limits.max_pixels);
        assert_eq!(
            config.limits.max_alloc_bytes,
            default.limits.max_alloc_bytes
        );
        assert_eq!(config.thumbnail.width, default.thumbnail.width);
        assert_eq!(config.thumbnail.height, default.thumbnail.height);
        assert_eq!(config.thumbnail.format, default.thumbnail.format);
        assert_eq!(
            config.thumbnail.jpeg_quality,
            default.thumbnail.jpeg_quality
        );
        assert_eq!(config.worker.concurrency, default.worker.concurrency);
        assert!(config.auth.api_keys.is_empty() && config.auth.api_keys_file.is_none());
        assert_eq!(
            config.recovery.stuck_after_secs,
            default.recovery.stuck_after_secs
        );
        assert_eq!(config.recovery.max_attempts, default.recovery.max_attempts);
        let (file, default) = (&config.limits, &default.limits);
        assert_eq!(file.max_metadata_bytes, default.max_metadata_bytes);
        assert_eq!(file.read_timeout_secs, default.read_timeout_secs);
        assert_eq!(file.keep_alive_secs, default.keep_alive_secs);
        assert_eq!(file.min_body_bytes_per_sec, default.min_body_bytes_per_sec);
        assert_eq!(file.max_connections, default.max_connections);
        assert_eq!(
            file.max_connections_per_client,
            default.max_connections_per_client
        );
        assert_eq!(
            file.max_upload_memory_bytes,
            default.max_upload_memory_bytes
        );
        assert_eq!(file.max_thumbnail_side, default.max_thumbnail_side);
        assert_eq!(file.max_variants, default.max_variants);
        assert_eq!(file.max_wait_secs, default.max_wait_secs);
        assert!(config.thumbnail.presets.is_empty());
        let (file, default) = (&config.callbacks, &Config::default().callbacks);
        assert_eq!(file.url, default.url);
        assert!(file.secret.is_none() && file.secret_file.is_none());
        assert_eq!(file.allowed_hosts, default.allowed_hosts);
        assert_eq!(file.max_attempts, default.max_attempts);
        assert_eq!(file.initial_backoff_ms, default.initial_backoff_ms);
        assert_eq!(file.max_backoff_secs, default.max_backoff_secs);
        assert_eq!(file.connect_timeout_secs, default.connect_timeout_secs);
        assert_eq!(file.timeout_secs, default.timeout_secs);
        assert_eq!(file.concurrency, default.concurrency);
        let (file, default) = (&config.sources, &Config::default().sources);
        assert_eq!(file.allowed_hosts, default.allowed_hosts);
        assert_eq!(file.max_redirects, default.max_redirects);
        assert_eq!(file.connect_timeout_secs, default.connect_timeout_secs);
        assert_eq!(file.timeout_secs, default.timeout_secs);
        let (file, default) = (&config.limits, &Config::default().limits);
        assert_eq!(file.max_files_per_request, default.max_files_per_request);
        assert_eq!(file.max_request_bytes, default.max_request_bytes);
    }

    #[test]
    fn presets_are_checked() {
        let good = "thumbnail: {presets: {card: {size: 400x300, fit: cover, format: webp}}}";
        let config = Config::from_yaml(good).unwrap();
        config.validate().unwrap();
        assert_eq!(config.thumbnail.presets["card"].size.to_string(), "400x300");
        for bad in [
            "thumbnail: {presets: {Card: {size: 400x300}}}",
            "thumbnail: {presets: {'4x4': {size: 400x300}}}",
            "thumbnail: {presets: {big: {size: 9000x300}}}",
            "thumbnail: {presets: {q: {size: 10x10, quality: 0}}}",
            "callbacks: {url: 'https://x.example/'}\nlimits: {max_variants: 0}",
        ] {
            let refused = Config::from_yaml(bad).map(|c| c.validate().is_err());
            assert!(refused.unwrap_or(true), "{bad}");
        }
        assert!(Config::from_yaml("thumbnail: {presets: {a: {size: 0x1}}}").is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::from_yaml("listne: x").is_err());
        let mut config = Config::from_yaml("thumbnail: {width: 0}").unwrap();
        assert!(config.validate().is_err());
        config = Config::from_yaml("queue: {url: 'nats://x'}").unwrap();
        assert!(config.validate().is_err());
        for url in ["amqp://x", "redis://x:6379/0", "rediss://x"] {
            config = Config::from_yaml(&format!("queue: {{url: '{url}'}}")).unwrap();
            assert!(config.validate().is_ok(), "{url}");
        }
        config = Config::from_yaml("queue: {visibility_secs: 0}").unwrap();
        assert!(config.validate().is_err());
        // Requests in flight are cut off after the drain, never before it.
        config = Config::from_yaml("server: {drain_secs: 20, shutdown_grace_secs: 20}").unwrap();
        assert!(config.validate().is_err());
        config = Config::from_yaml("server: {drain_secs: 0, shutdown_grace_secs: 1}").unwrap();
        assert!(config.validate().is_ok());
    }

    #[test]
    fn the_store_url_comes_from_the_file_or_the_environment() {
        let from = |yaml: &str, vars: &[(&str, &str)]| {
            let mut config = Config::from_yaml(yaml).unwrap();
            config.apply_env(|name| {
                vars.iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| (*value).to_owned())
            });
            config.store.url
        };
        let file = "store: {url: 'postgres://file/db'}";
        assert_eq!(from("", &[]), None);
        assert_eq!(from(file, &[]).as_deref(), Some("postgres://file/db"));
        let database_url = [("DATABASE_URL", "postgres://env/db")];
        assert_eq!(
            from("", &database_url).as_deref(),
            Some("postgres://env/db")
        );
        assert_eq!(
            from(file, &database_url).as_deref(),
            Some("postgres://file/db")
        );
        let mut config = Config::from_yaml("store: {url: 'mysql://x'}").unwrap();
        assert!(config.validate().is_err());
        assert!(
            Config::from_yaml("media: {presign: true}")
                .unwrap()
                .validate()
                .is_err()
        );
        assert!(
            Config::from_yaml("media: {url: 'http://x'}")
                .unwrap()
                .validate()
                .is_err()
        );
        Config::from_yaml("media: {url: 's3://bucket', presign: true}")
            .unwrap()
            .validate()
            .unwrap();
        config.store.url = None;
        config.validate().unwrap();
    }
}
