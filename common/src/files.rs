//! The data directory's layout, and atomic writes: where raw uploads and thumbnails live on
//! disk when media storage is the data directory ([`crate::storage::dir`]).
//!
//! ```text
//! <data_dir>/
//!   records.sqlite3      the gateway's SQLite store (with -wal, -shm and .lock beside it)
//!   db/                  a sled store from before SQLite, until it is imported
//!   db.imported-<time>/  that sled store, moved aside once imported
//!   raw/<media_id>       the uploaded bytes, as decoded from base64
//!   thumbnails/<media_id> the thumbnail (its media type is in the record)
//!   spool/.tmp-*         multipart parts and fetched sources on their way in
//! ```
//!
//! Files are named by media id alone: a client's file name never reaches the file system.
//! Every write is atomic ([`write_atomic`]): a reader sees the whole file or none of it, even
//! across a crash.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use uuid::Uuid;

/// The data directory and the paths below it.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// The raw directory's name below the data directory (and the raw key prefix in S3).
pub const RAW: &str = "raw";
/// The thumbnails directory's name below the data directory (and the key prefix in S3).
pub const THUMBNAILS: &str = "thumbnails";

/// The spool directory's name below the data directory: where streamed uploads are written
/// before they become raw uploads.
pub const SPOOL: &str = "spool";

/// The path of an image's raw upload relative to the data directory (its key below the
/// prefix in S3), as a job carries it.
pub fn raw_relative_path(media_id: Uuid) -> String {
    crate::storage::Key::raw(media_id).relative()
}

impl DataDir {
    /// The data directory at `root`. Nothing is created until [`DataDir::create`].
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Creates the raw and thumbnails directories (and the root) if absent.
    pub fn create(&self) -> io::Result<()> {
        std::fs::create_dir_all(self.raw_dir())?;
        std::fs::create_dir_all(self.thumbnails_dir())
    }

    /// The data directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The gateway's SQLite store, when `store.url` does not name another.
    pub fn store_file(&self) -> PathBuf {
        self.root.join("records.sqlite3")
    }

    /// Where a sled store from before SQLite lives, until it is imported.
    pub fn sled_dir(&self) -> PathBuf {
        self.root.join("db")
    }

    /// Where raw uploads live.
    pub fn raw_dir(&self) -> PathBuf {
        self.root.join(RAW)
    }

    /// Where thumbnails live.
    pub fn thumbnails_dir(&self) -> PathBuf {
        self.root.join(THUMBNAILS)
    }

    /// Where streamed uploads are written as they arrive.
    pub fn spool_dir(&self) -> PathBuf {
        self.root.join(SPOOL)
    }
}

/// The media id of a job's `raw_path`. Only the form `raw/<uuid>` is accepted, so that a
/// message can never point anywhere but at a raw upload.
pub fn raw_id(relative: &str) -> Option<Uuid> {
    let id = relative.strip_prefix(RAW)?.strip_prefix('/')?;
    Uuid::try_parse(id).ok()
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename
/// over `path`, fsync of the directory. Blocking: call it from a blocking thread.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let mut file = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|error| error.error)?;
    sync_dir(dir)
}

/// Removes the temporary files a crash left in `dir` (names starting `.tmp-`). Call it only
/// while nothing else writes there.
pub fn remove_temp_files(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            remove_if_exists(&entry.path())?;
        }
    }
    Ok(())
}

/// Flushes a directory's entries (a rename or unlink in it) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Removes a file; a file that is already gone is not an error.
pub fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        data.create().unwrap();
        let id = Uuid::now_v7();
        let path = data.raw_dir().join(id.to_string());
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(data.raw_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(id.to_string())]);
        remove_if_exists(&path).unwrap();
        remove_if_exists(&path).unwrap();
        assert!(!path.exists());

        let leftover = data.raw_dir().join(".tmp-crashed");
        std::fs::write(&leftover, b"partial").unwrap();
        write_atomic(&path, b"kept").unwrap();
        remove_temp_files(&data.raw_dir()).unwrap();
        assert!(!leftover.exists());
        assert!(path.exists());
    }

    #[test]
    fn resolves_only_raw_ids() {
        let id = Uuid::now_v7();
        assert_eq!(raw_id(&raw_relative_path(id)), Some(id));
        assert_eq!(raw_id("raw/../../etc/passwd"), None);
        assert_eq!(raw_id("/etc/passwd"), None);
        assert_eq!(raw_id(&format!("thumbnails/{id}")), None);
    }
}
