//! The back-ends: `store` (sled or PostgreSQL), `media` (the data directory or S3),
//! `queue` (in-process, RabbitMQ or Redis Streams) and `recovery` (what is redone after a crash).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    /// Unset or empty: SQLite in `<data_dir>/records.sqlite3` (one gateway).
    /// `sqlite://PATH`: SQLite in the file at PATH (one gateway). `postgres://…`: PostgreSQL
    /// (any number of gateways).
    pub url: Option<String>,
    /// A file holding `url` (a mounted secret); set one of the two.
    pub url_file: Option<PathBuf>,
    /// PostgreSQL: connections each gateway opens at most.
    pub max_connections: u32,
}

/// Where `store.url` says the records are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation<'a> {
    /// SQLite in the data directory.
    DataDir,
    /// SQLite in this file.
    Sqlite(&'a std::path::Path),
    /// PostgreSQL at this URL.
    Postgres(&'a str),
}

impl StoreConfig {
    /// Where the records are; `None` for a URL of no known scheme.
    pub fn location(&self) -> Option<StoreLocation<'_>> {
        match self.url.as_deref() {
            None | Some("") => Some(StoreLocation::DataDir),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Some(StoreLocation::Postgres(url))
            }
            Some(url) => url
                .strip_prefix("sqlite://")
                .filter(|path| !path.is_empty())
                .map(|path| StoreLocation::Sqlite(std::path::Path::new(path))),
        }
    }
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

/// The job queue.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Unset: the embedded in-process queue. `amqp://…`: RabbitMQ. `redis://…` or
    /// `rediss://…` (TLS): Redis Streams.
    pub url: Option<String>,
    /// A file holding `url` (a mounted secret); set one of the two.
    pub url_file: Option<PathBuf>,
    /// RabbitMQ and Redis: the prefix of the queue, exchange and stream names.
    pub prefix: String,
    /// RabbitMQ and Redis: deliveries of one job before it is dead-lettered (its worker died
    /// each time).
    pub delivery_limit: u32,
    /// Redis: how long a job may go unconfirmed by the worker holding it (a live worker
    /// confirms every third of this) before another worker takes it: how soon the job of a
    /// worker that died runs again.
    pub visibility_secs: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            prefix: "thumbnailify".to_owned(),
            delivery_limit: 5,
            visibility_secs: 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn location(url: Option<&str>) -> Option<StoreLocation<'static>> {
        let config = StoreConfig {
            url: url.map(str::to_owned),
            ..StoreConfig::default()
        };
        // Leaked so that the borrowed location outlives the configuration, in a test.
        Box::leak(Box::new(config)).location()
    }

    #[test]
    fn the_store_url_names_sqlite_or_postgres() {
        assert_eq!(location(None), Some(StoreLocation::DataDir));
        assert_eq!(location(Some("")), Some(StoreLocation::DataDir));
        assert_eq!(
            location(Some("sqlite:///var/lib/thumbs/records.sqlite3")),
            Some(StoreLocation::Sqlite(Path::new(
                "/var/lib/thumbs/records.sqlite3"
            )))
        );
        assert_eq!(
            location(Some("sqlite://relative/records.sqlite3")),
            Some(StoreLocation::Sqlite(Path::new("relative/records.sqlite3")))
        );
        assert_eq!(
            location(Some("postgresql://db/thumbs")),
            Some(StoreLocation::Postgres("postgresql://db/thumbs"))
        );
        for refused in ["sqlite://", "mysql://db/x", "/var/lib/records.sqlite3"] {
            assert_eq!(location(Some(refused)), None, "{refused}");
        }
    }
}
