//! The spool: streamed uploads (the gateway's multipart parts, the worker's fetched sources,
//! local copies of S3 objects for FFmpeg) written to temporary files as they arrive, hashed
//! on the way, so that an upload of any size costs a few chunks of memory.
//!
//! Each process spools into a directory of its own, `<data_dir>/spool/<pid>-<uuid>`, which it
//! holds an exclusive lock on (`.lock`, `flock`) for as long as it lives. The lock dies with
//! the process however it ends, so at start a process removes every directory whose lock it
//! can take ([`Spool::remove_dead`]): what a killed gateway or worker left, at once, whatever
//! its age, and never a live process's files (gateways and workers may share the directory).
//!
//! A finished file is fsynced ([`SpoolFile::finish`]), checked from a read-only map
//! ([`Spooled::map`]: the header probe touches the pages it reads, not the whole file), and
//! handed to media storage whole ([`crate::storage::Storage::put_file`]: a rename in the data
//! directory, an upload in parts to S3). A file that is not handed on is removed when dropped;
//! what a crash leaves behind is removed at the next start of any process.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use memmap2::Mmap;
use tempfile::NamedTempFile;

use crate::digest::{Digests, Hasher};
use crate::files::{DataDir, remove_if_exists};

/// Where spooled files go. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Spool {
    /// `<data_dir>/spool`, shared by every process.
    root: PathBuf,
}

/// The lock file in each process's spool directory.
const LOCK: &str = ".lock";

/// How long a directory without its lock file may be a process's that is making it.
const UNLOCKED_GRACE: Duration = Duration::from_secs(60);

/// How old a file left directly in the spool (before spools were per process) must be to
/// belong to no request still running.
const LOOSE_FILE_AGE: Duration = Duration::from_secs(24 * 3600);

/// This process's directory name in any spool: `<pid>-<uuid>`, unique across hosts sharing
/// a volume.
fn own_name() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("{}-{}", std::process::id(), uuid::Uuid::now_v7().simple()))
}

/// The spool directories this process has made, with their held lock files.
fn claimed() -> &'static Mutex<HashMap<PathBuf, File>> {
    static CLAIMED: OnceLock<Mutex<HashMap<PathBuf, File>>> = OnceLock::new();
    CLAIMED.get_or_init(Mutex::default)
}

impl Spool {
    /// The spool of `data`. The directories are made with the first spooled file, so that a
    /// gateway keeping everything in PostgreSQL and S3 has no data directory until it spools.
    pub fn new(data: &DataDir) -> Self {
        Self {
            root: data.spool_dir(),
        }
    }

    /// This process's directory, made and locked the first time. Blocking.
    pub fn dir(&self) -> io::Result<PathBuf> {
        let dir = self.root.join(own_name());
        let mut claimed = claimed().lock().unwrap_or_else(|e| e.into_inner());
        if !claimed.contains_key(&dir) {
            std::fs::create_dir_all(&dir)?;
            let lock = File::create(dir.join(LOCK))?;
            lock.try_lock().map_err(io::Error::other)?;
            claimed.insert(dir.clone(), lock);
        }
        Ok(dir)
    }

    /// Removes what dead processes left: every other process's directory whose lock is free
    /// (and one without a lock file after a minute), and loose files older than a day.
    /// Returns how many directories and files were removed. Blocking.
    pub fn remove_dead(&self) -> io::Result<usize> {
        let mut removed = 0;
        let entries = match std::fs::read_dir(&self.root) {
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(0),
            other => other?,
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let metadata = entry.metadata()?;
            if !metadata.is_dir() {
                if age(&metadata) > LOOSE_FILE_AGE {
                    remove_if_exists(&path)?;
                    removed += 1;
                }
                continue;
            }
            if entry.file_name() == own_name() || !is_dead(&path, &metadata)? {
                continue;
            }
            match std::fs::remove_dir_all(&path) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                _ => removed += 1,
            }
        }
        Ok(removed)
    }

    /// A new, empty spooled file.
    pub async fn file(&self) -> io::Result<SpoolFile> {
        let spool = self.clone();
        let temp = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix(".tmp-")
                .tempfile_in(spool.dir()?)
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

/// How long ago a file was last written.
fn age(metadata: &std::fs::Metadata) -> Duration {
    metadata
        .modified()
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .unwrap_or_default()
}

/// Whether the process that made the spool directory `dir` is gone: its lock can be taken.
fn is_dead(dir: &Path, metadata: &std::fs::Metadata) -> io::Result<bool> {
    let lock = match File::open(dir.join(LOCK)) {
        Ok(lock) => lock,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(age(metadata) > UNLOCKED_GRACE);
        }
        Err(error) => return Err(error),
    };
    match lock.try_lock() {
        Ok(()) => Ok(true),
        Err(std::fs::TryLockError::WouldBlock) => Ok(false),
        Err(std::fs::TryLockError::Error(error)) => Err(error),
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

    #[test]
    fn a_dead_process_directory_is_removed_and_a_live_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(&DataDir::new(dir.path()));
        let own = spool.dir().unwrap();
        std::fs::write(own.join("mine"), b"x").unwrap();
        // A live process: its lock is held (here by an open file of this test).
        let live = dir.path().join("spool/1-live");
        std::fs::create_dir_all(&live).unwrap();
        let held = File::create(live.join(LOCK)).unwrap();
        held.try_lock().unwrap();
        // A dead one: its lock file is there, and nobody holds it.
        let dead = dir.path().join("spool/2-dead");
        std::fs::create_dir_all(&dead).unwrap();
        File::create(dead.join(LOCK)).unwrap();
        std::fs::write(dead.join(".tmp-left"), b"half a video").unwrap();
        // One being made this moment, without its lock yet.
        let young = dir.path().join("spool/3-young");
        std::fs::create_dir_all(&young).unwrap();

        assert_eq!(spool.remove_dead().unwrap(), 1);
        assert!(!dead.exists());
        assert!(live.exists() && young.exists());
        assert!(own.join("mine").exists(), "this process's own files stay");
        drop(held);
        assert_eq!(
            spool.remove_dead().unwrap(),
            1,
            "a lock let go is a dead process"
        );
        assert!(!live.exists());
    }
}
