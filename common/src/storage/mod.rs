//! Media bytes: raw uploads and thumbnails, in the data directory or in S3-compatible object
//! storage.
//!
//! Two implementations behind one interface, chosen by `media.url`:
//!
//! | `media.url` | implementation | who can reach the bytes |
//! |---|---|---|
//! | unset | [`DirStorage`]: `<data_dir>/raw/<id>`, `<data_dir>/thumbnails/<id>` | processes sharing the directory |
//! | `s3://bucket/prefix` | [`S3Storage`]: objects `prefix/raw/<id>`, `prefix/thumbnails/<id>` | any process with the credentials |
//!
//! The contract both keep:
//! - [`Storage::put`] is atomic: a reader sees the whole object or none of it, even across a
//!   crash (a temporary file renamed into place; a single S3 PUT, or a multipart upload that
//!   becomes visible only when completed). Writing the same key twice is harmless: jobs may
//!   run twice.
//! - [`Storage::get`] of a missing object is `None`, not an error; [`Storage::delete`] of one
//!   is a success.
//! - [`Storage::list`] gives every object of a kind with its age, for sweeps of objects no
//!   record points at.

pub mod dir;
pub mod s3;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tempfile::NamedTempFile;
use uuid::Uuid;

use crate::config::Config;
pub use dir::DirStorage;
pub use s3::S3Storage;

/// The two kinds of object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An upload as received (decoded from base64).
    Raw,
    /// A thumbnail.
    Thumbnail,
}

impl Kind {
    /// The folder (or key prefix) of this kind.
    pub fn folder(self) -> &'static str {
        match self {
            Kind::Raw => crate::files::RAW,
            Kind::Thumbnail => crate::files::THUMBNAILS,
        }
    }
}

/// One object: its kind, the media id it belongs to and, for a thumbnail, which variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// Raw or thumbnail.
    pub kind: Kind,
    /// The media id.
    pub media_id: Uuid,
    /// The variant's index in the record's `thumbnails` (0 for a raw upload).
    pub variant: u16,
}

impl Key {
    /// The raw upload of `media_id`.
    pub fn raw(media_id: Uuid) -> Self {
        Self {
            kind: Kind::Raw,
            media_id,
            variant: 0,
        }
    }

    /// The first thumbnail of `media_id`.
    pub fn thumbnail(media_id: Uuid) -> Self {
        Self::variant(media_id, 0)
    }

    /// Variant `index` of `media_id`'s thumbnails.
    pub fn variant(media_id: Uuid, index: u16) -> Self {
        Self {
            kind: Kind::Thumbnail,
            media_id,
            variant: index,
        }
    }

    /// The object's name in its folder: `<id>` (raw uploads and the first variant, as before
    /// variants existed) or `<id>.<index>`.
    pub fn name(&self) -> String {
        match self.variant {
            0 => self.media_id.to_string(),
            index => format!("{}.{index}", self.media_id),
        }
    }

    /// The key an object name found in `kind`'s folder stands for, if it is one of ours.
    pub fn parse(kind: Kind, name: &str) -> Option<Self> {
        let (id, variant) = match name.split_once('.') {
            None => (name, 0),
            Some((id, index)) if kind == Kind::Thumbnail && !index.starts_with(['0', '+']) => {
                (id, index.parse().ok()?)
            }
            Some(_) => return None,
        };
        Some(Self {
            kind,
            media_id: Uuid::try_parse(id).ok()?,
            variant,
        })
    }

    /// `raw/<id>`, `thumbnails/<id>` or `thumbnails/<id>.<index>`: the path below the data
    /// directory or the prefix.
    pub fn relative(&self) -> String {
        format!("{}/{}", self.kind.folder(), self.name())
    }
}

/// An object found by [`Storage::list`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    /// The object.
    pub key: Key,
    /// When it was last written.
    pub modified: SystemTime,
}

/// Why media storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The data directory failed.
    #[error("media storage: {0}")]
    Io(#[from] std::io::Error),
    /// The object store failed or could not be reached.
    #[error("media storage: {0}")]
    Object(#[from] object_store::Error),
    /// `media.url` or the S3 settings are not usable.
    #[error("media storage: {0}")]
    Config(String),
}

/// An object as a local file ([`Storage::local`]).
#[derive(Debug)]
pub enum Local {
    /// The data directory's own file: to be read, never changed.
    InPlace(PathBuf),
    /// A copy, removed when dropped.
    Copy(NamedTempFile),
}

impl Local {
    /// Where the file is.
    pub fn path(&self) -> &Path {
        match self {
            Local::InPlace(path) => path,
            Local::Copy(file) => file.path(),
        }
    }
}

/// Where media bytes live. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Storage {
    /// The data directory.
    Dir(DirStorage),
    /// S3-compatible object storage.
    S3(S3Storage),
}

/// Runs the same call on whichever storage this is.
macro_rules! on_storage {
    ($self:ident, $storage:ident => $call:expr) => {
        match $self {
            Storage::Dir($storage) => $call,
            Storage::S3($storage) => $call,
        }
    };
}

impl Storage {
    /// The storage `config` names: S3 when `media.url` is set, else the data directory
    /// (created if absent).
    pub fn from_config(config: &Config) -> Result<Self, StorageError> {
        match &config.media.url {
            Some(url) => Ok(Storage::S3(S3Storage::new(url, &config.media.s3)?)),
            None => Ok(Storage::Dir(DirStorage::create(&config.data_dir)?)),
        }
    }

    /// What kind of storage this is, for logs and `/readyz`.
    pub fn kind(&self) -> &'static str {
        match self {
            Storage::Dir(_) => "dir",
            Storage::S3(_) => "s3",
        }
    }

    /// Writes `bytes` as the object `key`, atomically.
    pub async fn put(&self, key: Key, bytes: Bytes) -> Result<(), StorageError> {
        on_storage!(self, storage => storage.put(key, bytes).await)
    }

    /// Makes the finished, fsynced file `file` the object `key`, atomically, and removes the
    /// file: a rename in the data directory (`file` must be on its file system), an upload
    /// read from the file in S3 (memory stays one part, whatever the file's size).
    pub async fn put_file(&self, key: Key, file: NamedTempFile) -> Result<(), StorageError> {
        on_storage!(self, storage => storage.put_file(key, file).await)
    }

    /// The object `key`, or `None` if there is none.
    pub async fn get(&self, key: Key) -> Result<Option<Bytes>, StorageError> {
        on_storage!(self, storage => storage.get(key).await)
    }

    /// The object `key` as a local file, or `None` if there is none: the data directory's own
    /// file, or an S3 object streamed into a temporary file in `temp_dir` (memory stays one
    /// chunk, whatever the object's size). For tools that read files, such as FFmpeg.
    pub async fn local(&self, key: Key, temp_dir: &Path) -> Result<Option<Local>, StorageError> {
        match self {
            Storage::Dir(storage) => storage.local(key).await,
            Storage::S3(storage) => storage.local(key, temp_dir).await,
        }
    }

    /// Removes the object `key`; a missing one is not an error.
    pub async fn delete(&self, key: Key) -> Result<(), StorageError> {
        on_storage!(self, storage => storage.delete(key).await)
    }

    /// Every object of `kind` named by a media id, with when it was written.
    pub async fn list(&self, kind: Kind) -> Result<Vec<Listed>, StorageError> {
        on_storage!(self, storage => storage.list(kind).await)
    }

    /// A URL that lets anyone holding it read `key` for `expires_in`, where the storage can
    /// make one (S3); `None` otherwise.
    pub async fn presign(
        &self,
        key: Key,
        expires_in: Duration,
    ) -> Result<Option<String>, StorageError> {
        match self {
            Storage::Dir(_) => Ok(None),
            Storage::S3(storage) => storage.presign(key, expires_in).await.map(Some),
        }
    }

    /// Whether the storage answers.
    pub async fn check(&self) -> Result<(), StorageError> {
        on_storage!(self, storage => storage.check().await)
    }
}

/// The same tests on both storages: the data directory, and a real S3 server (s3s-fs, which
/// `scripts/test` installs) on a loopback port.
#[cfg(test)]
mod tests {
    use std::process::{Child, Command, Stdio};

    use super::*;
    use crate::config::S3Config;

    /// An s3s-fs server with one bucket, killed when dropped.
    struct Server {
        child: Child,
        _root: tempfile::TempDir,
        storage: Storage,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn s3() -> Server {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("bucket")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", "key", "--secret-key", "secret"])
            .arg(root.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs (scripts/test installs it)");
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let settings = S3Config {
            endpoint: Some(format!("http://127.0.0.1:{port}")),
            region: Some("us-east-1".into()),
            access_key_id: Some("key".into()),
            secret_access_key: Some("secret".into()),
            allow_http: true,
            ..S3Config::default()
        };
        let storage = Storage::S3(S3Storage::new("s3://bucket/some/prefix", &settings).unwrap());
        Server {
            child,
            _root: root,
            storage,
        }
    }

    #[tokio::test]
    async fn objects_are_written_read_listed_and_deleted_alike() {
        let dir = tempfile::tempdir().unwrap();
        let server = s3().await;
        let directory = Storage::Dir(DirStorage::create(dir.path()).unwrap());
        for storage in [&directory, &server.storage] {
            let kind = storage.kind();
            storage.check().await.unwrap();
            let (one, two) = (Uuid::now_v7(), Uuid::now_v7());
            assert_eq!(storage.get(Key::raw(one)).await.unwrap(), None, "{kind}");
            storage
                .put(Key::raw(one), Bytes::from_static(b"first"))
                .await
                .unwrap();
            storage
                .put(Key::raw(one), Bytes::from_static(b"again"))
                .await
                .unwrap();
            storage
                .put(Key::raw(two), Bytes::from_static(b"two"))
                .await
                .unwrap();
            storage
                .put(Key::thumbnail(one), Bytes::from_static(b"thumb"))
                .await
                .unwrap();
            storage
                .put(Key::variant(one, 3), Bytes::from_static(b"variant"))
                .await
                .unwrap();
            assert_eq!(
                storage.get(Key::variant(one, 3)).await.unwrap().as_deref(),
                Some(&b"variant"[..]),
                "{kind}"
            );
            assert_eq!(
                storage.get(Key::raw(one)).await.unwrap().as_deref(),
                Some(&b"again"[..]),
                "{kind}"
            );
            let mut raw: Vec<Uuid> = storage
                .list(Kind::Raw)
                .await
                .unwrap()
                .into_iter()
                .map(|listed| listed.key.media_id)
                .collect();
            raw.sort();
            assert_eq!(raw, vec![one, two], "{kind}");
            let mut thumbnails = storage.list(Kind::Thumbnail).await.unwrap();
            thumbnails.sort_by_key(|listed| listed.key.variant);
            let keys: Vec<Key> = thumbnails.iter().map(|listed| listed.key).collect();
            assert_eq!(keys, [Key::thumbnail(one), Key::variant(one, 3)], "{kind}");
            let age = SystemTime::now().duration_since(thumbnails[0].modified);
            assert!(age.unwrap_or_default() < Duration::from_secs(60), "{kind}");
            storage.delete(Key::raw(one)).await.unwrap();
            storage.delete(Key::raw(one)).await.unwrap();
            assert_eq!(storage.get(Key::raw(one)).await.unwrap(), None, "{kind}");
            assert_eq!(storage.list(Kind::Raw).await.unwrap().len(), 1, "{kind}");
        }
    }

    #[tokio::test]
    async fn large_objects_go_up_in_parts_and_come_back_whole() {
        let server = s3().await;
        let large: Vec<u8> = (0..s3::MULTIPART_THRESHOLD + 3 * s3::PART_SIZE / 2)
            .map(|i| (i % 251) as u8)
            .collect();
        let id = Uuid::now_v7();
        server
            .storage
            .put(Key::raw(id), Bytes::from(large.clone()))
            .await
            .unwrap();
        let back = server.storage.get(Key::raw(id)).await.unwrap().unwrap();
        assert!(back == large, "the object came back different");
    }

    #[tokio::test]
    async fn spooled_files_become_objects_whole_and_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let server = s3().await;
        let directory = Storage::Dir(DirStorage::create(dir.path()).unwrap());
        let spool = dir.path().join(crate::files::SPOOL);
        std::fs::create_dir_all(&spool).unwrap();
        // One small file (a single PUT) and one over the multipart threshold.
        let sizes = [1000, s3::MULTIPART_THRESHOLD + s3::PART_SIZE + 17];
        for storage in [&directory, &server.storage] {
            for size in sizes {
                let bytes: Vec<u8> = (0..size).map(|i| (i % 241) as u8).collect();
                let mut file = tempfile::Builder::new()
                    .prefix(".tmp-")
                    .tempfile_in(&spool)
                    .unwrap();
                std::io::Write::write_all(&mut file, &bytes).unwrap();
                file.as_file().sync_all().unwrap();
                let path = file.path().to_owned();
                let id = Uuid::now_v7();
                storage.put_file(Key::raw(id), file).await.unwrap();
                assert!(!path.exists(), "{}: the spool file is gone", storage.kind());
                let back = storage.get(Key::raw(id)).await.unwrap().unwrap();
                assert!(
                    back == bytes,
                    "{}: {size} bytes came back different",
                    storage.kind()
                );
            }
        }
    }

    #[tokio::test]
    async fn presigned_urls_read_without_credentials() {
        let server = s3().await;
        let id = Uuid::now_v7();
        server
            .storage
            .put(Key::thumbnail(id), Bytes::from_static(b"a thumbnail"))
            .await
            .unwrap();
        let url = server
            .storage
            .presign(Key::thumbnail(id), Duration::from_secs(60))
            .await
            .unwrap()
            .unwrap();
        assert!(url.contains("X-Amz-Signature="), "{url}");
        // Fetch it as a browser would, with no credentials of its own.
        let rest = url.strip_prefix("http://").unwrap();
        let (host, target) = rest.split_at(rest.find('/').unwrap());
        let mut stream = std::net::TcpStream::connect(host).unwrap();
        use std::io::{Read, Write};
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("a thumbnail"), "{answer}");
        let directory = tempfile::tempdir().unwrap();
        let dir = Storage::Dir(DirStorage::create(directory.path()).unwrap());
        assert_eq!(
            dir.presign(Key::thumbnail(id), Duration::from_secs(60))
                .await
                .unwrap(),
            None
        );
    }

    #[test]
    fn object_names_parse_back_to_their_keys() {
        let id = Uuid::now_v7();
        for key in [Key::raw(id), Key::thumbnail(id), Key::variant(id, 7)] {
            assert_eq!(Key::parse(key.kind, &key.name()), Some(key));
        }
        for bad in [
            format!("{id}.01"),
            format!("{id}.x"),
            format!("{id}.+1"),
            format!("{id}.99999"),
            ".tmp-abc".to_owned(),
        ] {
            assert_eq!(Key::parse(Kind::Thumbnail, &bad), None, "{bad}");
        }
        assert_eq!(Key::parse(Kind::Raw, &format!("{id}.1")), None);
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in ["s3://", "http://bucket", "bucket"] {
            assert!(S3Storage::new(url, &S3Config::default()).is_err(), "{url}");
        }
    }
}
