//! The SQLite store's files: the owner's lock beside the database, the check of its header
//! before SQLite opens it, a new database made whole under a temporary name, moving and
//! removing one with the files SQLite keeps beside it, and backups.

use std::fs::File;
use std::path::{Path, PathBuf};

use common::files::{remove_if_exists, sync_dir};
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

use super::super::StoreError;
use super::super::migrations::Embedded;
use super::{BUSY_TIMEOUT, MIGRATIONS, damaged, map_error};

/// The first bytes of every SQLite database file.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Takes the exclusive lock of the store at `path`, or says who holds it.
pub(super) fn own(path: &Path) -> Result<File, StoreError> {
    let lock_path = lock_path(path);
    let open = |source| StoreError::OpenFile {
        path: lock_path.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(open)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::InUse { lock: lock_path }),
        Err(std::fs::TryLockError::Error(error)) => Err(open(error)),
    }
}

/// The lock file of the store at `path`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Refuses a file that exists but is not a whole SQLite database (truncated to less than its
/// header, or not SQLite at all), and a write-ahead log whose database is gone: SQLite would
/// take either for a new, empty database.
pub(super) fn check_file(path: &Path) -> Result<(), StoreError> {
    use std::io::Read;
    let mut head = Vec::with_capacity(MAGIC.len());
    match File::open(path).and_then(|file| file.take(MAGIC.len() as u64).read_to_end(&mut head)) {
        Ok(_) if head == MAGIC => Ok(()),
        Ok(_) => Err(damaged(
            path,
            "the file does not begin with an SQLite header (truncated, or not a database)",
        )),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if wal_path(path).exists() {
                return Err(damaged(
                    path,
                    "the database file is missing but its write-ahead log is there",
                ));
            }
            Ok(())
        }
        Err(source) => Err(StoreError::OpenFile {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The write-ahead log of the database at `path`.
pub(super) fn wal_path(path: &Path) -> PathBuf {
    sibling(path, "-wal")
}

/// `path` with `suffix` added to its name.
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Removes the database at `path` and the files SQLite and the store keep beside it, those
/// that are there.
pub(crate) fn remove_database(path: &Path) -> Result<(), StoreError> {
    for file in [
        path.to_owned(),
        sibling(path, "-wal"),
        sibling(path, "-shm"),
        lock_path(path),
    ] {
        remove_if_exists(&file).map_err(|source| StoreError::OpenFile { path: file, source })?;
    }
    Ok(())
}

/// Makes a creation or rename in the directory of `path` durable.
pub(crate) fn sync_parent(path: &Path) -> std::io::Result<()> {
    let parent = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    sync_dir(parent)
}

/// Moves a closed database from `from` to `to`, durably, and removes what was left beside
/// it. Refuses one whose log still holds changes (not closed: they would be lost).
pub(crate) fn rename_database(from: &Path, to: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::OpenFile {
        path: to.to_owned(),
        source,
    };
    let wal = wal_path(from);
    if std::fs::metadata(&wal).is_ok_and(|log| log.len() > 0) {
        return Err(StoreError::OpenFile {
            path: wal,
            source: std::io::Error::other("the database was not closed: its log holds changes"),
        });
    }
    std::fs::rename(from, to).map_err(io)?;
    sync_parent(to).map_err(io)?;
    remove_database(from)
}

/// How every connection to the database at `path` is made: WAL, `synchronous=NORMAL` (the
/// log is synced by [`super::GroupCommit`]),
/// foreign keys on; the file must exist.
pub(super) fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
}

/// Creates the database at `path` whole: made and migrated under a temporary name, then
/// renamed into place, so that a file at `path` always has its header and schema (and one
/// that has not is damage, not a start cut short).
pub(super) async fn create(path: &Path) -> Result<(), StoreError> {
    let fresh = sibling(path, ".new");
    remove_database(&fresh)?;
    let errors = map_error(path);
    let mut connection =
        sqlx::SqliteConnection::connect_with(&options(&fresh).create_if_missing(true))
            .await
            .map_err(&errors)?;
    Migrator::new(Embedded(&MIGRATIONS))
        .await?
        .run(&mut connection)
        .await?;
    // The last connection to close checkpoints the log into the file and removes it.
    connection.close().await.map_err(&errors)?;
    rename_database(&fresh, path)?;
    tracing::info!(path = %path.display(), "created the record store");
    Ok(())
}

/// Writes a consistent copy of the SQLite store at `file` to `target`, which must not exist:
/// `VACUUM INTO` on a read-only connection of its own, so that it runs beside the gateway
/// that owns the store (in WAL mode a reader neither waits for the writer nor holds it up),
/// then the copy and its directory are fsynced. The copy is a whole database, without log:
/// restoring it is putting it in the store's place while no gateway runs.
pub async fn backup(file: &Path, target: &Path) -> Result<(), StoreError> {
    check_file(file)?;
    if !file.exists() {
        return Err(StoreError::OpenFile {
            path: file.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    if target.exists() {
        return Err(StoreError::Backup(format!(
            "{} exists already: name a new file",
            target.display()
        )));
    }
    let name = target
        .to_str()
        .ok_or_else(|| StoreError::Backup(format!("{} is not a UTF-8 path", target.display())))?;
    let errors = map_error(file);
    let mut connection = sqlx::SqliteConnection::connect_with(&options(file).read_only(true))
        .await
        .map_err(&errors)?;
    sqlx::query("VACUUM INTO $1")
        .bind(name)
        .execute(&mut connection)
        .await
        .map_err(|error| StoreError::Backup(error.to_string()))?;
    connection.close().await.map_err(&errors)?;
    File::open(target)
        .and_then(|copy| copy.sync_all())
        .and_then(|()| sync_parent(target))
        .map_err(|error| StoreError::Backup(error.to_string()))
}
