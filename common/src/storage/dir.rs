//! Media bytes in the data directory: `raw/<id>` and `thumbnails/<id>`.
//!
//! Every write is a temporary file in the same directory, fsynced, renamed into place, with
//! the directory fsynced after ([`crate::files::write_atomic`]); the file system does the
//! blocking work on Tokio's blocking threads.

use std::io;
use std::path::Path;

use bytes::Bytes;
use tempfile::NamedTempFile;

use super::{Key, Kind, Listed, Local, StorageError};
use crate::files::{DataDir, remove_if_exists, sync_dir, write_atomic};

/// The data directory as media storage. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DirStorage {
    data: DataDir,
}

/// Runs blocking file work off the reactor.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, StorageError> {
    Ok(tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)??)
}

/// Files from this size up are mapped rather than read.
const MAP_FROM: u64 = 1024 * 1024;

/// The bytes of the file at `path`. A file of [`MAP_FROM`] bytes or more (an original, as a
/// worker reads it) is mapped: its pages come straight from the page cache as the decoder
/// touches them, with no copy and no fresh zeroed memory, which for a photograph of several
/// megabytes is a measurable part of a thumbnail's CPU (BENCHMARKS.md). A smaller one (a
/// thumbnail being served) is read, cheaper than a mapping. Blocking.
fn read_or_map(path: &Path) -> io::Result<Bytes> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.len() < MAP_FROM {
        let mut bytes = Vec::new();
        io::Read::read_to_end(&mut &file, &mut bytes)?;
        return Ok(Bytes::from(bytes));
    }
    // SAFETY: media files are written whole to a temporary file and renamed into place
    // ([`write_atomic`]), never written again; one is only ever removed, which leaves a
    // mapping valid. Nothing truncates them while the map lives.
    let map = unsafe { memmap2::Mmap::map(&file)? };
    Ok(Bytes::from_owner(map))
}

impl DirStorage {
    /// The storage in `root`, creating its folders if absent.
    pub fn create(root: &Path) -> Result<Self, StorageError> {
        let data = DataDir::new(root);
        data.create()?;
        Ok(Self { data })
    }

    /// The data directory.
    pub fn data(&self) -> &DataDir {
        &self.data
    }

    fn path(&self, key: Key) -> std::path::PathBuf {
        self.data.root().join(key.relative())
    }

    /// Writes `bytes` as `key`: a temporary file renamed into place.
    pub async fn put(&self, key: Key, bytes: Bytes) -> Result<(), StorageError> {
        let path = self.path(key);
        blocking(move || write_atomic(&path, &bytes)).await
    }

    /// Renames the finished file `file` to `key` and flushes the directory entry.
    pub async fn put_file(&self, key: Key, file: NamedTempFile) -> Result<(), StorageError> {
        let path = self.path(key);
        blocking(move || {
            file.persist(&path).map_err(|error| error.error)?;
            sync_dir(path.parent().unwrap_or(Path::new(".")))
        })
        .await
    }

    /// The file of `key`, if any: a large one mapped rather than read (see [`read_or_map`]).
    pub async fn get(&self, key: Key) -> Result<Option<Bytes>, StorageError> {
        let path = self.path(key);
        match blocking(move || read_or_map(&path)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StorageError::Io(error)) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The file of `key`, if there is one.
    pub async fn local(&self, key: Key) -> Result<Option<Local>, StorageError> {
        let path = self.path(key);
        match tokio::fs::metadata(&path).await {
            Ok(_) => Ok(Some(Local::InPlace(path))),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Removes the file of `key`, if any.
    pub async fn delete(&self, key: Key) -> Result<(), StorageError> {
        let path = self.path(key);
        blocking(move || remove_if_exists(&path)).await
    }

    /// The files of `kind` named by a media id (temporary files are not), with their times.
    pub async fn list(&self, kind: Kind) -> Result<Vec<Listed>, StorageError> {
        let dir = self.data.root().join(kind.folder());
        blocking(move || {
            let mut listed = Vec::new();
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let Some(key) = entry
                    .file_name()
                    .to_str()
                    .and_then(|name| Key::parse(kind, name))
                else {
                    continue;
                };
                match entry.metadata() {
                    Ok(metadata) => listed.push(Listed {
                        key,
                        modified: metadata.modified()?,
                    }),
                    // Removed since the directory was read.
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(error),
                }
            }
            Ok(listed)
        })
        .await
    }

    /// Whether the directory is there.
    pub async fn check(&self) -> Result<(), StorageError> {
        tokio::fs::metadata(self.data.root()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    #[tokio::test]
    async fn a_large_file_is_mapped_whole_and_outlives_its_removal() {
        let dir = tempfile::tempdir().unwrap();
        let storage = DirStorage::create(dir.path()).unwrap();
        let large: Vec<u8> = (0..3 * MAP_FROM).map(|i| (i % 251) as u8).collect();
        let (big, small) = (Uuid::now_v7(), Uuid::now_v7());
        storage
            .put(Key::raw(big), Bytes::from(large.clone()))
            .await
            .unwrap();
        storage
            .put(Key::thumbnail(small), Bytes::from_static(b"small"))
            .await
            .unwrap();
        let back = storage.get(Key::raw(big)).await.unwrap().unwrap();
        storage.delete(Key::raw(big)).await.unwrap();
        assert!(back == large, "the mapped file came back different");
        assert_eq!(storage.get(Key::raw(big)).await.unwrap(), None);
        assert_eq!(
            storage.get(Key::thumbnail(small)).await.unwrap().as_deref(),
            Some(&b"small"[..])
        );
    }
}
