//! The spool: streamed uploads (the gateway's multipart parts, the worker's fetched sources)
//! written to temporary files in `<data_dir>/spool` as they arrive, hashed on the way, so
//! that an upload of any size costs a few chunks of memory.
//!
//! A finished file is fsynced ([`SpoolFile::finish`]), checked from a read-only map
//! ([`Spooled::map`]: the header probe touches the pages it reads, not the whole file), and
//! handed to media storage whole ([`crate::storage::Storage::put_file`]: a rename in the data
//! directory, an upload in parts to S3). A file that is not handed on is removed when dropped;
//! what a crash leaves behind is removed at the next start ([`Spool::remove_stale`]).

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use memmap2::Mmap;
use tempfile::NamedTempFile;

use crate::digest::{Digests, Hasher};
use crate::files::{DataDir, remove_if_exists};

/// Where spooled files go. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// The spool of `data`. The directory is made with the first spooled file, so that a
    /// gateway keeping everything in PostgreSQL and S3 has no data directory until it spools.
    pub fn new(data: &DataDir) -> Self {
        Self {
            dir: data.spool_dir(),
        }
    }

    /// Removes spooled files older than `age`: what a crashed process left. Other gateways
    /// sharing the directory spool only while a request lasts, far less than `age`.
    pub fn remove_stale(&self, age: Duration) -> io::Result<usize> {
        let mut removed = 0;
        let now = SystemTime::now();
        let entries = match std::fs::read_dir(&self.dir) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            other => other?,
        };
        for entry in entries {
            let entry = entry?;
            let modified = entry.metadata()?.modified()?;
            if now.duration_since(modified).unwrap_or_default() > age {
                remove_if_exists(&entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// A new, empty spooled file.
    pub async fn file(&self) -> io::Result<SpoolFile> {
        let dir = self.dir.clone();
        let temp = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(SpoolFile {
            temp: Some(temp),
            hasher: Some(Hasher::default()),
            pending: Vec::with_capacity(WRITE_BATCH),
            size: 0,
        })
    }
}

/// How many bytes a spooled file gathers before they are hashed and written, together, on
/// a blocking thread.
const WRITE_BATCH: usize = 256 * 1024;

/// A spooled file being written. Hashing and writing run on blocking threads, a batch at a
/// time, never on the reactor.
#[derive(Debug)]
pub struct SpoolFile {
    /// The file and the hasher, away on a blocking thread while a batch is written (`None`
    /// only if that thread failed).
    temp: Option<NamedTempFile>,
    hasher: Option<Hasher>,
    pending: Vec<u8>,
    size: u64,
}

impl SpoolFile {
    /// Appends `chunk`.
    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(chunk);
        self.size += chunk.len() as u64;
        if self.pending.len() >= WRITE_BATCH {
            self.write_pending().await?;
        }
        Ok(())
    }

    /// How many bytes have been written.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Hashes and writes the gathered bytes on a blocking thread.
    async fn write_pending(&mut self) -> io::Result<()> {
        let gone = || io::Error::other("the spooled file was lost with a failed write");
        let (mut temp, mut hasher) = (
            self.temp.take().ok_or_else(gone)?,
            self.hasher.take().ok_or_else(gone)?,
        );
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(WRITE_BATCH));
        let (temp, hasher) = tokio::task::spawn_blocking(move || {
            hasher.update(&batch);
            temp.write_all(&batch)?;
            Ok::<_, io::Error>((temp, hasher))
        })
        .await
        .map_err(io::Error::other)??;
        (self.temp, self.hasher) = (Some(temp), Some(hasher));
        Ok(())
    }

    /// Flushes the file to disk: from here it may become an object.
    pub async fn finish(mut self) -> io::Result<Spooled> {
        self.write_pending().await?;
        let gone = || io::Error::other("the spooled file was lost with a failed write");
        let file = self.temp.take().ok_or_else(gone)?;
        let hasher = self.hasher.take().ok_or_else(gone)?;
        let file = tokio::task::spawn_blocking(move || file.as_file().sync_all().map(|()| file))
            .await
            .map_err(io::Error::other)??;
        Ok(Spooled {
            file,
            digests: hasher.finish(),
            size: self.size,
        })
    }
}

/// A finished spooled file.
#[derive(Debug)]
pub struct Spooled {
    /// The file.
    pub file: NamedTempFile,
    /// Its digests.
    pub digests: Digests,
    /// Its size in bytes.
    pub size: u64,
}

impl Spooled {
    /// The file's bytes, mapped read-only (not read: the pages load as they are touched).
    /// Blocking. An empty file maps to nothing, which the caller refuses first.
    pub fn map(&self) -> io::Result<Mmap> {
        // SAFETY: the file is this process's own temporary file, private to the spool, written
        // completely and never written again; nothing truncates it while the map lives.
        unsafe { Mmap::map(self.file.as_file()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_spooled_file_holds_what_was_written_and_its_digests() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(&DataDir::new(dir.path()));
        let mut file = spool.file().await.unwrap();
        let mut whole = Vec::new();
        for i in 0..100u8 {
            let chunk = vec![i; 10_000];
            file.write(&chunk).await.unwrap();
            whole.extend_from_slice(&chunk);
        }
        assert_eq!(file.size(), 1_000_000);
        let spooled = file.finish().await.unwrap();
        assert_eq!(&spooled.map().unwrap()[..], &whole[..]);
        let mut hasher = Hasher::default();
        hasher.update(&whole);
        assert_eq!(spooled.digests, hasher.finish());
        let path = spooled.file.path().to_owned();
        drop(spooled);
        assert!(!path.exists(), "a file not handed on is removed");
    }

    #[tokio::test]
    async fn stale_files_are_removed_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(&DataDir::new(dir.path()));
        let (_, left) = spool.file().await.unwrap().temp.unwrap().keep().unwrap();
        assert_eq!(spool.remove_stale(Duration::from_secs(3600)).unwrap(), 0);
        assert!(left.exists());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(spool.remove_stale(Duration::from_millis(10)).unwrap(), 1);
        assert!(!left.exists());
    }
}
