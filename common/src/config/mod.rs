//! Configuration: `config.yaml`, its defaults, and the layers over it.
//!
//! Every key has a default, so an empty file (or none) is a valid configuration. [`load`]
//! reads the file, then the environment (every key, as `THUMBNAILIFY_LIMITS__MAX_PIXELS`),
//! then the secrets kept in files; [`print`] shows the result with secrets masked. The root
//! `config.yaml` documents every key.

mod load;
mod print;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::media::MediaType;

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
    /// Completion callbacks (webhooks).
    pub callbacks: CallbacksConfig,
    /// Sources fetched from URLs.
    pub sources: SourcesConfig,
    /// Video: the FFmpeg tools that probe videos and take their poster frames.
    pub video: VideoConfig,
    /// How the binaries log.
    pub logging: LoggingConfig,
    /// Where the binaries send their traces.
    pub tracing: TracingConfig,
}

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

/// Video: FFmpeg's `ffprobe` and `ffmpeg`, run as subprocesses on a file, each under a
/// wall-clock timeout and an address-space cap.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoConfig {
    /// The `ffprobe` program (a name looked up in `PATH`, or a path).
    pub ffprobe: PathBuf,
    /// The `ffmpeg` program (a name looked up in `PATH`, or a path).
    pub ffmpeg: PathBuf,
    /// Seconds one probe or one poster decode may take before it is killed.
    pub timeout_secs: u64,
    /// Address space one FFmpeg process may map, in bytes (`RLIMIT_AS`).
    pub max_memory_bytes: u64,
    /// Decoding threads per FFmpeg process.
    pub threads: u32,
    /// Seconds of video read, from the seek point on, looking for a frame that is not black.
    pub black_scan_secs: u64,
}

impl Default for VideoConfig {
    fn default() -> Self {
        Self {
            ffprobe: PathBuf::from("ffprobe"),
            ffmpeg: PathBuf::from("ffmpeg"),
            timeout_secs: 60,
            max_memory_bytes: 2 * 1024 * 1024 * 1024,
            threads: 2,
            black_scan_secs: 10,
        }
    }
}

/// Sources fetched from a URL (`{"url": ...}` uploads), by the worker that runs the job.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcesConfig {
    /// Hosts (names or addresses, as written in URLs) that may be fetched although they
    /// resolve to loopback, private, link-local or other internal addresses.
    pub allowed_hosts: Vec<String>,
    /// Redirects followed at most, each to a URL checked as the first was.
    pub max_redirects: usize,
    /// Seconds to connect.
    pub connect_timeout_secs: u64,
    /// Seconds for the whole fetch, body included.
    pub timeout_secs: u64,
    /// Sources one worker process fetches at once. Fetches have slots of their own: they
    /// never hold one of the `worker.concurrency` decode slots.
    pub max_fetches: usize,
    /// Sources one worker process fetches at once from one host; the others for that host
    /// wait their turn.
    pub max_fetches_per_host: usize,
    /// Uploads by URL one client (its tenant with API keys, else its IP address) may have in
    /// flight at once, per gateway; past it, 429 `too_many_sources`.
    pub max_in_flight_per_client: usize,
}

impl Default for SourcesConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            max_redirects: 3,
            connect_timeout_secs: 5,
            timeout_secs: 60,
            max_fetches: 16,
            max_fetches_per_host: 4,
            max_in_flight_per_client: 32,
        }
    }
}

/// Completion callbacks: a signed POST of the record when it becomes final.
#[derive(Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallbacksConfig {
    /// A URL that every record is posted to when final, besides any `callback_url` of its
    /// upload (which then wins).
    pub url: Option<String>,
    /// The Standard Webhooks signing secret (`whsec_` and base64).
    pub secret: Option<String>,
    /// A file holding the secret instead (its first line).
    pub secret_file: Option<PathBuf>,
    /// Hosts (names or addresses, as written in URLs) that callbacks may reach although they
    /// resolve to loopback, private, link-local or other internal addresses.
    pub allowed_hosts: Vec<String>,
    /// Attempts of one delivery before it is recorded as failed.
    pub max_attempts: u32,
    /// Wait before the first retry, in milliseconds; doubled each time, with jitter.
    pub initial_backoff_ms: u64,
    /// The longest wait between attempts, in seconds.
    pub max_backoff_secs: u64,
    /// Seconds to connect, and for the whole request.
    pub connect_timeout_secs: u64,
    /// Seconds for the whole request (connect, send, answer).
    pub timeout_secs: u64,
    /// Deliveries in flight at once, per gateway.
    pub concurrency: usize,
    /// Deliveries in flight at once to one receiver host, per gateway: a receiver that is
    /// slow, or never answers, holds up only its own callbacks.
    pub concurrency_per_host: usize,
}

impl Default for CallbacksConfig {
    fn default() -> Self {
        Self {
            url: None,
            secret: None,
            secret_file: None,
            allowed_hosts: Vec::new(),
            max_attempts: 10,
            initial_backoff_ms: 1000,
            max_backoff_secs: 3600,
            connect_timeout_secs: 5,
            timeout_secs: 10,
            concurrency: 16,
            concurrency_per_host: 4,
        }
    }
}

impl std::fmt::Debug for CallbacksConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbacksConfig")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("secret_file", &self.secret_file)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff_ms", &self.initial_backoff_ms)
            .field("max_backoff_secs", &self.max_backoff_secs)
            .field("connect_timeout_secs", &self.connect_timeout_secs)
            .field("timeout_secs", &self.timeout_secs)
            .field("concurrency", &self.concurrency)
            .field("concurrency_per_host", &self.concurrency_per_host)
            .finish()
    }
}

/// What becomes of jobs that do not finish.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecoveryConfig {
    /// A record unchanged this long while processing is queued again.
    pub stuck_after_secs: u64,
    /// Times a job is queued in all; a record stuck after the last is recorded as failed.
    pub max_attempts: u32,
    /// How often the objects no record needs are swept (orphans of crashes and failures).
    pub orphan_sweep_secs: u64,
    /// How old such an object must be before it is swept: younger ones may be being written
    /// by another process.
    pub orphan_grace_secs: u64,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            stuck_after_secs: 600,
            max_attempts: 3,
            orphan_sweep_secs: 3600,
            orphan_grace_secs: 3600,
        }
    }
}

/// The record store.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Unset: sled in `<data_dir>/db` (one gateway). `postgres://…`: PostgreSQL (any number
    /// of gateways).
    pub url: Option<String>,
    /// A file holding `url` (a mounted secret); set one of the two.
    pub url_file: Option<PathBuf>,
    /// PostgreSQL: connections each gateway opens at most.
    pub max_connections: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            max_connections: 16,
        }
    }
}

/// Where media bytes live.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Unset: the data directory. `s3://bucket/prefix`: S3-compatible object storage.
    pub url: Option<String>,
    /// S3: answer thumbnail requests for raw bytes with a redirect to a presigned URL instead
    /// of streaming them through the gateway.
    pub presign: bool,
    /// S3 settings.
    pub s3: S3Config,
}

/// S3 settings, named as the AWS tools name them.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// The endpoint, for S3-compatible services (MinIO, Garage, s3s-fs, …); unset: AWS.
    pub endpoint: Option<String>,
    /// The region (default `us-east-1`).
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// A file holding `access_key_id`; set one of the two.
    pub access_key_id_file: Option<PathBuf>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
    /// A file holding `secret_access_key`; set one of the two.
    pub secret_access_key_file: Option<PathBuf>,
    /// Allow `http://` endpoints (local servers).
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("access_key_id_file", &self.access_key_id_file)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("secret_access_key_file", &self.secret_access_key_file)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// What the HTTP server answers to.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// The host names (and addresses) requests may name in `Host`, compared without case or
    /// port; a name starting with `.` admits its subdomains. Empty: any. Set it where a
    /// browser can reach the service, so that a page whose name is pointed at it (DNS
    /// rebinding) is refused.
    pub allowed_hosts: Vec<String>,
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

/// The job queue.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Unset: the embedded in-process queue. `amqp://…`: RabbitMQ.
    pub url: Option<String>,
    /// A file holding `url` (a mounted secret); set one of the two.
    pub url_file: Option<PathBuf>,
    /// RabbitMQ: the prefix of the queue and exchange names.
    pub prefix: String,
    /// RabbitMQ: deliveries of one job before it is dead-lettered (its worker died each time).
    pub delivery_limit: u32,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            prefix: "thumbnailify".to_owned(),
            delivery_limit: 5,
        }
    }
}

/// Limits that keep hostile or huge inputs from exhausting the machine.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted upload, in decoded bytes (each file of a multipart request): every
    /// base64 upload, and each image.
    pub max_upload_bytes: u64,
    /// Largest accepted video, in bytes, sent as a multipart file or fetched from a URL.
    pub max_video_bytes: u64,
    /// Files one multipart request may carry; the files past it are refused (read through,
    /// counted in one item of the answer).
    pub max_files_per_request: usize,
    /// Parts one multipart request may carry, files and fields together; the body is not
    /// read past it.
    pub max_form_parts: usize,
    /// Largest multipart request body, in bytes, all parts together.
    pub max_request_bytes: u64,
    /// Largest accepted image, in pixels (width × height).
    pub max_pixels: u64,
    /// Most memory one decode may allocate, in bytes.
    pub max_alloc_bytes: u64,
    /// Most bytes of metadata (ICC profiles, EXIF, XMP, comments, tables) a file may make a
    /// decoder keep; compressed metadata is never inflated.
    pub max_metadata_bytes: u64,
    /// How long a new connection may take to send a complete request head, and a body may
    /// stay idle, before the connection is closed (a body: refused with 408). Also the grace
    /// period before `min_body_bytes_per_sec` applies.
    pub read_timeout_secs: u64,
    /// How long a keep-alive connection may wait, idle between requests, before it is closed.
    pub keep_alive_secs: u64,
    /// The slowest average rate, in bytes per second, an upload body may arrive at once
    /// `read_timeout_secs` have passed (a body may take `read_timeout_secs + received /
    /// min_body_bytes_per_sec`); slower is refused with 408. 0: no minimum.
    pub min_body_bytes_per_sec: u64,
    /// Open connections at most; more are answered 503 and closed.
    pub max_connections: usize,
    /// Open connections from one client IP address at most; more are answered 503 and closed.
    pub max_connections_per_client: usize,
    /// Memory all uploads being read may hold together, in decoded bytes; an upload that cannot
    /// get its share within 5 s is refused (503). At least `max_upload_bytes`.
    pub max_upload_memory_bytes: u64,
    /// Uploads read at once; more wait up to 5 s with their bodies unread, then are refused
    /// (503, `Retry-After`).
    pub max_inflight_uploads: usize,
    /// Jobs waiting or running at once; past it uploads are refused (503, `Retry-After`).
    pub max_queued_jobs: u64,
    /// Free space the data directory keeps; below it uploads are refused (507).
    pub min_free_disk_bytes: u64,
    /// Uploads one client (IP address) may make per second, with bursts of twice that;
    /// beyond, 429. 0: no per-client limit.
    pub uploads_per_client_per_second: u32,
    /// The longest side a client may ask a thumbnail for, in pixels.
    pub max_thumbnail_side: u32,
    /// Variants one record may have, asked for at upload and on demand together.
    pub max_variants: usize,
    /// The longest `?wait=` a client may ask for, in seconds.
    pub max_wait_secs: u64,
}

/// The output format of thumbnails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// PNG for sources with alpha, JPEG otherwise.
    Auto,
    /// Always JPEG (alpha is composed over white).
    Jpeg,
    /// Always PNG.
    Png,
    /// Always WebP (lossless).
    Webp,
    /// Always AVIF (lossy, at the variant's quality; alpha kept). Only in builds with the
    /// worker's `heif` feature: elsewhere a variant asking for it is refused at the door.
    Avif,
}

impl OutputFormat {
    /// The name the `format` parameter and the configuration use.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Auto => "auto",
            OutputFormat::Jpeg => "jpeg",
            OutputFormat::Png => "png",
            OutputFormat::Webp => "webp",
            OutputFormat::Avif => "avif",
        }
    }
}

impl std::str::FromStr for OutputFormat {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "auto" => Ok(OutputFormat::Auto),
            "jpeg" | "jpg" => Ok(OutputFormat::Jpeg),
            "png" => Ok(OutputFormat::Png),
            "webp" => Ok(OutputFormat::Webp),
            "avif" => Ok(OutputFormat::Avif),
            _ => Err(()),
        }
    }
}

/// What thumbnails to make.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThumbnailConfig {
    /// Width of the box the thumbnail fits in.
    pub width: u32,
    /// Height of the box the thumbnail fits in.
    pub height: u32,
    /// Output format.
    pub format: OutputFormat,
    /// JPEG quality, 1–100.
    pub jpeg_quality: u8,
    /// Named variants clients may ask for by name in `sizes`.
    pub presets: std::collections::BTreeMap<String, crate::variant::Preset>,
}

/// The workers.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Jobs processed at once per worker process; 0 means one per CPU core.
    pub concurrency: usize,
    /// Seconds between a worker's heartbeats (the dashboard's list of workers).
    pub heartbeat_secs: u64,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 0,
            heartbeat_secs: 5,
        }
    }
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
            sources: SourcesConfig::default(),
            video: VideoConfig::default(),
            logging: LoggingConfig::default(),
            tracing: TracingConfig::default(),
        }
    }
}

impl LimitsConfig {
    /// The largest accepted file of `media_type`: `max_video_bytes` for a video, else
    /// `max_upload_bytes`.
    pub fn max_bytes(&self, media_type: MediaType) -> u64 {
        if media_type.is_video() {
            self.max_video_bytes
        } else {
            self.max_upload_bytes
        }
    }

    /// The largest accepted file that starts with `head`: by what its magic bytes say, and
    /// `max_upload_bytes` when they say nothing supported.
    pub fn max_bytes_of(&self, head: &[u8]) -> u64 {
        match crate::media::sniff(head) {
            crate::media::Sniffed::Media(media_type) => self.max_bytes(media_type),
            _ => self.max_upload_bytes,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_upload_bytes: 50 * 1024 * 1024,
            max_video_bytes: 1024 * 1024 * 1024,
            max_files_per_request: 100,
            max_form_parts: 1000,
            max_request_bytes: 2 * 1024 * 1024 * 1024,
            max_pixels: 100_000_000,
            max_alloc_bytes: 1024 * 1024 * 1024,
            max_metadata_bytes: 4 * 1024 * 1024,
            read_timeout_secs: 30,
            keep_alive_secs: 60,
            min_body_bytes_per_sec: 8 * 1024,
            max_connections: 4096,
            max_connections_per_client: 512,
            max_upload_memory_bytes: 1024 * 1024 * 1024,
            max_inflight_uploads: 64,
            max_queued_jobs: 100_000,
            min_free_disk_bytes: 256 * 1024 * 1024,
            uploads_per_client_per_second: 0,
            max_thumbnail_side: 4096,
            max_variants: 8,
            max_wait_secs: 60,
        }
    }
}

impl Default for ThumbnailConfig {
    fn default() -> Self {
        Self {
            width: 100,
            height: 100,
            format: OutputFormat::Auto,
            jpeg_quality: 85,
            presets: std::collections::BTreeMap::new(),
        }
    }
}

impl WorkerConfig {
    /// The number of jobs to process at once: `concurrency`, or the number of cores when 0.
    pub fn effective_concurrency(&self) -> usize {
        if self.concurrency > 0 {
            self.concurrency
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
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
        {
            return invalid("queue.url must be an amqp:// URL (TLS is not built in)");
        }
        if let Some(url) = &self.store.url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return invalid(
                "store.url must be a postgres:// URL (or unset for the embedded store)",
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
        if self.queue.prefix.is_empty() || self.queue.delivery_limit == 0 {
            return invalid(
                "queue.prefix must not be empty and queue.delivery_limit must be at least 1",
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
        config = Config::from_yaml("queue: {url: 'redis://x'}").unwrap();
        assert!(config.validate().is_err());
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
