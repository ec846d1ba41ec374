//! The embedded record store: SQLite, in one file of the data directory, which one gateway
//! alone owns.
//!
//! The schema is PostgreSQL's in SQLite's types (`gateway/migrations/sqlite/`): `records`
//! (the record as JSON text, the `processing` flag and `callback_due` time every write keeps,
//! a `version` every change bumps) and `outbox`; the statements both stores run alike are in
//! [`super::sql`]. SQLite is bundled (sqlx's `sqlite` feature): the binary needs no library.
//!
//! Durability: the database runs in WAL mode with `synchronous=NORMAL`, and every write
//! returns only once its commit is on disk, by an fsync of the log shared with the writes
//! committed meanwhile ([`super::group_commit`]): a record answered 202 survives SIGKILL of
//! the process and loss of power. One writer connection takes the writes in turn
//! (SQLite allows one writer at a time; queueing them here, not in SQLite's sleeping busy
//! handler, keeps their latency even) while readers use a pool of their own and never wait
//! for it.
//!
//! Ownership: the store holds an exclusive lock on `<file>.lock` for its lifetime (released
//! by the kernel if the process dies). A second gateway pointed at the same file is refused
//! at start and told which lock holds it: sharing a store between gateways is PostgreSQL's
//! job.
//!
//! Damage: at start the file is checked (its header, then `PRAGMA quick_check`); a damaged
//! or truncated file is refused with an error naming it and how to recover, never replaced
//! by an empty one.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::message::Job;
use common::record::Record;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqlitePool, SqlitePoolOptions};
use sqlx::types::Json;
use sqlx::{Connection, Sqlite};
use uuid::Uuid;

use super::group_commit::GroupCommit;
use super::migrations::Embedded;
use super::sql::{self, SQLITE as SQL};
use super::{CLAIM, StoreError, Update};

mod file;

pub use file::{backup, lock_path};
use file::{check_file, create, options, own, wal_path};
pub(crate) use file::{remove_database, rename_database, sibling, sync_parent};

/// The schema's migrations, embedded in the binary.
const MIGRATIONS: [(i64, &str, &str); 1] = [(
    1,
    "records and outbox",
    include_str!("../../../migrations/sqlite/0001_records_and_outbox.sql"),
)];

/// How long a statement waits for a lock SQLite holds (a checkpoint, a backup) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Readers' connections.
const READERS: u32 = 4;

/// The SQLite record store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// One connection: writes queue for it.
    writer: SqlitePool,
    readers: SqlitePool,
    path: Arc<Path>,
    /// Makes commits durable, several at a time.
    durable: GroupCommit,
    /// The exclusive lock of `<file>.lock`, held while any clone lives.
    _owner: Arc<File>,
}

/// Maps a database error: a full disk is [`StoreError::Full`]; a file SQLite finds damaged
/// is [`StoreError::Damaged`].
fn map_error(path: &Path) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |error| {
        let code = match &error {
            sqlx::Error::Database(database) => database.code().map(|code| code.into_owned()),
            _ => None,
        };
        // SQLite's primary result codes (the low byte of an extended one): 13 SQLITE_FULL,
        // 11 SQLITE_CORRUPT, 26 SQLITE_NOTADB, 10 SQLITE_IOERR.
        match code
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff)
        {
            Some(13) => StoreError::Full(error.to_string()),
            Some(11 | 26) => damaged(path, &error.to_string()),
            Some(10) => StoreError::Unavailable(error.to_string()),
            _ => match error {
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                    StoreError::Unavailable(error.to_string())
                }
                error => StoreError::Database(error),
            },
        }
    }
}

/// The error for a damaged database file at `path`.
fn damaged(path: &Path, detail: &str) -> StoreError {
    StoreError::Damaged {
        path: path.to_owned(),
        detail: detail.to_owned(),
    }
}

/// Milliseconds since the epoch of an RFC 3339 time (0 if it cannot be read: due at once).
fn millis(rfc3339: &str) -> i64 {
    humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Milliseconds since the epoch, now.
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

/// When `record`'s callback is due, in milliseconds since the epoch.
fn callback_due(record: &Record) -> Option<i64> {
    record.callback_due().as_deref().map(millis)
}

impl SqliteStore {
    /// Opens (or creates) the store in the file at `path`: takes its lock, checks the file,
    /// brings its schema up to date. Fails if another process holds it, or if the file is
    /// damaged.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::OpenFile {
                path: parent.to_owned(),
                source,
            })?;
        }
        let owner = own(path)?;
        check_file(path)?;
        if !path.exists() {
            create(path).await?;
        }
        let options = options(path);
        let errors = map_error(path);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(BUSY_TIMEOUT)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .map_err(&errors)?;
        let (problems,): (String,) = sqlx::query_as("PRAGMA quick_check(1)")
            .fetch_one(&writer)
            .await
            .map_err(&errors)?;
        if problems != "ok" {
            return Err(damaged(path, &problems));
        }
        Migrator::new(Embedded(&MIGRATIONS))
            .await?
            .run(&writer)
            .await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.read_only(true))
            .await
            .map_err(&errors)?;
        // The log's directory entry, made when the log was, durable once.
        sync_parent(path).map_err(|source| StoreError::OpenFile {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            writer,
            readers,
            durable: GroupCommit::start(wal_path(path)),
            path: path.into(),
            _owner: Arc::new(owner),
        })
    }

    /// Closes the connections of every clone (the last one checkpoints the log into the
    /// file and removes it); the lock goes with the last clone.
    pub async fn close(&self) {
        self.readers.close().await;
        // Into the file now, rather than trusting the close to: the file is then whole alone.
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await
        {
            tracing::warn!(%error, path = %self.path.display(), "cannot checkpoint the store's log");
        }
        self.writer.close().await;
    }

    fn errors(&self) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        map_error(&self.path)
    }

    /// The writer connection, waiting for the call before this one to give it back.
    async fn writer(&self) -> Result<PoolConnection<Sqlite>, StoreError> {
        self.writer.acquire().await.map_err(self.errors())
    }

    /// The outcome of a write on `connection`, once durable: the connection goes back to the
    /// next writer and this one waits for the log's next fsync ([`GroupCommit`]).
    ///
    /// After a failure the connection is closed, not given back: a COMMIT that failed (a full
    /// disk) may have ended SQLite's transaction while sqlx still counts it open, and the
    /// next transaction on that connection would then never commit. A new connection starts
    /// clean, and SQLite rolls back what the closed one left.
    async fn settle<T>(
        &self,
        mut connection: PoolConnection<Sqlite>,
        outcome: Result<T, sqlx::Error>,
    ) -> Result<T, StoreError> {
        if outcome.is_err() {
            connection.close_on_drop();
        }
        drop(connection);
        let value = outcome.map_err(self.errors())?;
        self.durable
            .sync()
            .await
            .map_err(|error| StoreError::Unavailable(format!("syncing the log: {error}")))?;
        Ok(value)
    }

    /// Inserts a new record and its job in the outbox, in one transaction.
    pub async fn insert(&self, record: &Record, job: &Job) -> Result<(), StoreError> {
        self.import(record, Some(job)).await.map(drop)
    }

    /// Adds `record` (and `job` to the outbox) unless a record with its id exists, in one
    /// transaction.
    pub async fn import(&self, record: &Record, job: Option<&Job>) -> Result<bool, StoreError> {
        let mut connection = self.writer().await?;
        let outcome = async {
            let mut transaction = connection.begin().await?;
            let added = sqlx::query(SQL.insert_record)
                .bind(record.media_id)
                .bind(record.needs_work())
                .bind(Json(record))
                .bind(callback_due(record))
                .execute(&mut *transaction)
                .await?
                .rows_affected()
                == 1;
            if let (true, Some(job)) = (added, job) {
                sqlx::query(sql::INSERT_JOB)
                    .bind(job.media_id)
                    .bind(Json(job))
                    .execute(&mut *transaction)
                    .await?;
            }
            transaction.commit().await?;
            Ok(added)
        }
        .await;
        self.settle(connection, outcome).await
    }

    /// Puts a job in the outbox (to be published again), unclaimed. A job whose record is gone
    /// is not queued.
    pub async fn enqueue(&self, job: &Job) -> Result<(), StoreError> {
        let mut connection = self.writer().await?;
        let outcome = sqlx::query(SQL.enqueue)
            .bind(job.media_id)
            .bind(Json(job))
            .execute(&mut *connection)
            .await;
        self.settle(connection, outcome).await.map(drop)
    }

    /// Claims up to `limit` unclaimed jobs for [`CLAIM`], oldest first.
    pub async fn outbox(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let now = now_millis();
        let until = now.saturating_add(i64::try_from(CLAIM.as_millis()).unwrap_or(i64::MAX));
        let mut connection = self.writer().await?;
        let outcome = sqlx::query_as(SQL.claim_jobs)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(now)
            .bind(until)
            .fetch_all(&mut *connection)
            .await;
        let mut claimed: Vec<(Uuid, Json<Job>)> = self.settle(connection, outcome).await?;
        claimed.sort_by_key(|(media_id, _)| *media_id);
        Ok(claimed.into_iter().map(|(_, Json(job))| job).collect())
    }

    /// Takes a job out of the outbox once the queue has it.
    pub async fn published(&self, media_id: Uuid) -> Result<(), StoreError> {
        let mut connection = self.writer().await?;
        let outcome = sqlx::query(sql::DELETE_JOB)
            .bind(media_id)
            .execute(&mut *connection)
            .await;
        self.settle(connection, outcome).await.map(drop)
    }

    /// The records `query` returns, read on a reader connection.
    async fn records<'q>(
        &self,
        query: sqlx::query::QueryAs<'q, Sqlite, (Json<Record>,), sqlx::sqlite::SqliteArguments<'q>>,
    ) -> Result<Vec<Record>, StoreError> {
        let rows = query
            .fetch_all(&self.readers)
            .await
            .map_err(self.errors())?;
        Ok(rows.into_iter().map(|(Json(record),)| record).collect())
    }

    /// The record of `media_id`, if any.
    pub async fn get(&self, media_id: Uuid) -> Result<Option<Record>, StoreError> {
        let row: Option<(Json<Record>,)> = sqlx::query_as(sql::GET_RECORD)
            .bind(media_id)
            .fetch_optional(&self.readers)
            .await
            .map_err(self.errors())?;
        Ok(row.map(|(Json(record),)| record))
    }

    /// Every record whose original is stored under the content id `original`.
    pub async fn with_original(&self, original: Uuid) -> Result<Vec<Record>, StoreError> {
        self.records(sqlx::query_as(SQL.with_original).bind(original.to_string()))
            .await
    }

    /// Up to `limit` records with ids after `after`, in id order: a range scan of the key (or
    /// of the tenant's index).
    pub async fn list(
        &self,
        tenant: Option<&str>,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let query = sqlx::query_as(match tenant {
            None => SQL.list,
            Some(_) => SQL.list_tenant,
        });
        self.records(
            query
                .bind(after)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .bind(tenant),
        )
        .await
    }

    /// The dashboard's view: counts by state and the waiting jobs computed in the database,
    /// the latest failures and dead letters read.
    pub async fn overview(&self, limit: usize) -> Result<super::Overview, StoreError> {
        let errors = self.errors();
        let counts: Vec<(Option<String>, i64)> = sqlx::query_as(sql::COUNT_BY_STATE)
            .fetch_all(&self.readers)
            .await
            .map_err(&errors)?;
        let (waiting, oldest_waiting): (i64, Option<String>) = sqlx::query_as(sql::WAITING)
            .fetch_one(&self.readers)
            .await
            .map_err(&errors)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let failures = self
            .records(sqlx::query_as(sql::LATEST_FAILURES).bind(limit))
            .await?;
        let dead_letters = self
            .records(sqlx::query_as(SQL.dead_letters).bind(limit))
            .await?;
        Ok(super::Overview::from_counts(
            &counts,
            waiting,
            oldest_waiting,
            failures,
            dead_letters,
        ))
    }

    /// Every record with work left ([`Record::needs_work`]), in id order.
    pub async fn processing(&self) -> Result<Vec<Record>, StoreError> {
        self.records(sqlx::query_as(sql::PROCESSING)).await
    }

    /// Applies `change` to the record of `media_id`, compare-and-swap on its version; with
    /// `enqueue`, a changed record's [`Record::job`] goes to the outbox in the same
    /// transaction.
    pub async fn update(
        &self,
        media_id: Uuid,
        mut change: impl FnMut(&mut Record) -> bool + Send,
        enqueue: bool,
    ) -> Result<Update, StoreError> {
        let errors = self.errors();
        loop {
            let row: Option<(i64, Json<Record>)> = sqlx::query_as(sql::GET_VERSIONED)
                .bind(media_id)
                .fetch_optional(&self.readers)
                .await
                .map_err(&errors)?;
            let Some((version, Json(mut record))) = row else {
                return Ok(Update::Missing);
            };
            if !change(&mut record) {
                return Ok(Update::Unchanged(record));
            }
            let mut connection = self.writer().await?;
            let outcome = async {
                let mut transaction = connection.begin().await?;
                let written = sqlx::query(SQL.update_record)
                    .bind(media_id)
                    .bind(version)
                    .bind(Json(&record))
                    .bind(record.needs_work())
                    .bind(callback_due(&record))
                    .execute(&mut *transaction)
                    .await?;
                if written.rows_affected() != 1 {
                    // Changed meanwhile: read again.
                    transaction.rollback().await?;
                    return Ok(false);
                }
                if enqueue {
                    sqlx::query(SQL.enqueue_changed)
                        .bind(media_id)
                        .bind(Json(record.job()))
                        .execute(&mut *transaction)
                        .await?;
                }
                transaction.commit().await?;
                Ok(true)
            }
            .await;
            if self.settle(connection, outcome).await? {
                return Ok(Update::Changed(record));
            }
        }
    }

    /// Claims up to `limit` records whose callback is due, each for `lease` (moving its due
    /// time forward; a change to the record sets a new one).
    pub async fn due_callbacks(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Record>, StoreError> {
        let now = now_millis();
        let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        let mut connection = self.writer().await?;
        let outcome = sqlx::query_as(SQL.claim_callbacks)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(now)
            .bind(until)
            .fetch_all(&mut *connection)
            .await;
        let rows: Vec<(Json<Record>,)> = self.settle(connection, outcome).await?;
        Ok(rows.into_iter().map(|(Json(record),)| record).collect())
    }

    /// Removes the record of `media_id` and its outbox job; returns the record if it existed.
    pub async fn remove(&self, media_id: Uuid) -> Result<Option<Record>, StoreError> {
        let mut connection = self.writer().await?;
        let outcome = sqlx::query_as(sql::DELETE_RECORD)
            .bind(media_id)
            .fetch_optional(&mut *connection)
            .await;
        let row: Option<(Json<Record>,)> = self.settle(connection, outcome).await?;
        Ok(row.map(|(Json(record),)| record))
    }

    /// Whether the database answers.
    pub async fn check(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map_err(self.errors())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
