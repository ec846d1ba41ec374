//! Media bytes in S3-compatible object storage, through the `object_store` crate (request
//! signing, retries, multipart uploads): objects `<prefix>/raw/<id>` and
//! `<prefix>/thumbnails/<id>` in one bucket.
//!
//! Configured as the AWS tools are: `media.url: s3://bucket/prefix`, and `media.s3.endpoint`,
//! `region`, `access_key_id`, `secret_access_key`, `allow_http`, each of which the standard
//! `AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_ALLOW_HTTP` variables supply when the file does not (see [`crate::config`]). With an
//! endpoint, requests use path-style addressing (`endpoint/bucket/key`), which every local
//! S3 server understands.
//!
//! An object up to [`MULTIPART_THRESHOLD`] is one PUT; a larger one is a multipart upload of
//! [`PART_SIZE`] parts, which S3 makes visible only once completed. Either way a reader sees
//! the whole object or none of it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::signer::Signer;
use object_store::{ObjectStore, PutPayload, RetryConfig, WriteMultipart};
use tempfile::NamedTempFile;

use super::{Key, Kind, Listed, Local, StorageError};
use crate::config::S3Config;

/// Objects larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 16 * 1024 * 1024;
/// The size of each part of a multipart upload.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// S3 as media storage. Cheap to clone.
#[derive(Debug, Clone)]
pub struct S3Storage {
    store: Arc<AmazonS3>,
    prefix: Option<Path>,
    bucket: String,
}

impl S3Storage {
    /// The storage at `url` (`s3://bucket` or `s3://bucket/prefix`) with `settings`.
    pub fn new(url: &str, settings: &S3Config) -> Result<Self, StorageError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| StorageError::Config("media.url must start with s3://".into()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StorageError::Config("media.url names no bucket".into()));
        }
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(settings.region.as_deref().unwrap_or("us-east-1"))
            .with_allow_http(settings.allow_http)
            .with_retry(RetryConfig {
                max_retries: 4,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            });
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        let store = builder.build()?;
        let prefix = prefix.trim_matches('/');
        Ok(Self {
            store: Arc::new(store),
            prefix: (!prefix.is_empty()).then(|| Path::from(prefix)),
            bucket: bucket.to_owned(),
        })
    }

    /// The bucket, for logs.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn folder(&self, kind: Kind) -> Path {
        match &self.prefix {
            Some(prefix) => prefix.child(kind.folder()),
            None => Path::from(kind.folder()),
        }
    }

    fn path(&self, key: Key) -> Path {
        self.folder(key.kind).child(key.name())
    }

    /// Writes `bytes` as `key`: one PUT, or a multipart upload for large objects.
    pub async fn put(&self, key: Key, bytes: Bytes) -> Result<(), StorageError> {
        let path = self.path(key);
        if bytes.len() <= MULTIPART_THRESHOLD {
            self.store.put(&path, PutPayload::from(bytes)).await?;
            return Ok(());
        }
        let upload = self.store.put_multipart(&path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        writer.put(bytes);
        if let Err(error) = writer.finish().await {
            // finish aborts the upload on failure; nothing partial is ever visible.
            return Err(error.into());
        }
        Ok(())
    }

    /// Uploads the file `file` as `key`, one part in memory at a time, then removes it.
    pub async fn put_file(&self, key: Key, file: NamedTempFile) -> Result<(), StorageError> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let (file, path) = file.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        file.seek(std::io::SeekFrom::Start(0)).await?;
        let size = file.metadata().await?.len();
        if size <= MULTIPART_THRESHOLD as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes).await?;
            drop(path);
            return self.put(key, Bytes::from(bytes)).await;
        }
        let upload = self.store.put_multipart(&self.path(key)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut chunk = vec![0; PART_SIZE];
        loop {
            let read = match file.read(&mut chunk).await {
                Ok(0) => break,
                Ok(read) => read,
                Err(error) => {
                    writer.abort().await?;
                    return Err(error.into());
                }
            };
            // At most two parts in flight: memory stays a few parts, whatever the size.
            writer.wait_for_capacity(2).await?;
            writer.write(&chunk[..read]);
        }
        writer.finish().await?;
        drop(path);
        Ok(())
    }

    /// The object `key`, if any.
    pub async fn get(&self, key: Key) -> Result<Option<Bytes>, StorageError> {
        match self.store.get(&self.path(key)).await {
            Ok(result) => Ok(Some(result.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// The object `key` streamed into a temporary file in `temp_dir`, if there is one.
    pub async fn local(
        &self,
        key: Key,
        temp_dir: &std::path::Path,
    ) -> Result<Option<Local>, StorageError> {
        use futures_lite::StreamExt;
        use tokio::io::AsyncWriteExt;

        let result = match self.store.get(&self.path(key)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let temp_dir = temp_dir.to_owned();
        let file = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&temp_dir)?;
            NamedTempFile::new_in(&temp_dir)
        })
        .await
        .map_err(std::io::Error::other)??;
        let mut writer = tokio::fs::File::from_std(file.reopen()?);
        let mut stream = result.into_stream();
        while let Some(chunk) = stream.next().await {
            writer.write_all(&chunk?).await?;
        }
        writer.flush().await?;
        Ok(Some(Local::Copy(file)))
    }

    /// Removes the object `key`, if any.
    pub async fn delete(&self, key: Key) -> Result<(), StorageError> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Every object of `kind` named by a media id, with its last-modified time.
    pub async fn list(&self, kind: Kind) -> Result<Vec<Listed>, StorageError> {
        use futures_lite::StreamExt;
        let folder = self.folder(kind);
        let mut objects = self.store.list(Some(&folder));
        let mut listed = Vec::new();
        while let Some(meta) = objects.next().await {
            let meta = meta?;
            if let Some(key) = meta
                .location
                .filename()
                .and_then(|name| Key::parse(kind, name))
            {
                listed.push(Listed {
                    key,
                    modified: meta.last_modified.into(),
                });
            }
        }
        Ok(listed)
    }

    /// A presigned GET URL for `key`, valid for `expires_in`.
    pub async fn presign(&self, key: Key, expires_in: Duration) -> Result<String, StorageError> {
        let url = self
            .store
            .signed_url(http::Method::GET, &self.path(key), expires_in)
            .await?;
        Ok(url.to_string())
    }

    /// Whether the bucket answers (a listing of at most one object).
    pub async fn check(&self) -> Result<(), StorageError> {
        use futures_lite::StreamExt;
        let folder = self.folder(Kind::Thumbnail);
        let mut objects = self.store.list(Some(&folder));
        if let Some(first) = objects.next().await {
            first?;
        }
        Ok(())
    }
}
