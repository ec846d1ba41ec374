//! The record store: every record, and the outbox of jobs accepted but not yet confirmed by
//! the queue, written in the same transaction as their record.
//!
//! Two implementations behind one interface, chosen by `store.url`, with one schema and one
//! set of statements ([`sql`]: what the two dialects share, and what each does its own way):
//!
//! | `store.url` | implementation | gateways |
//! |---|---|---|
//! | unset or empty | [`SqliteStore`]: SQLite in `<data_dir>/records.sqlite3` | one per file |
//! | `sqlite://PATH` | [`SqliteStore`]: SQLite in the file at PATH | one per file |
//! | `postgres://…` | [`PostgresStore`]: PostgreSQL, migrations run at start | any number |
//!
//! A data directory whose records are still in sled (`<data_dir>/db`, from before SQLite) is
//! imported into SQLite when the store opens ([`crate::migrate::import_sled`]).
//!
//! The contract both keep, which the rest of the gateway relies on:
//! - Every write has reached the disk when it returns (SQLite: its commit and an fsync of the
//!   log shared with the writes committed meanwhile; PostgreSQL: its commit);
//!   [`Store::insert`] writes a record and its outbox job atomically.
//! - [`Store::update`] is compare-and-swap: the change is applied to the record as stored,
//!   and again if another writer changed it meanwhile, so racing results, sweeps and DELETEs
//!   never lose a change or resurrect a record.
//! - [`Store::outbox`] hands out each waiting job to one publisher at a time (claimed for
//!   [`CLAIM`]; PostgreSQL with `FOR UPDATE SKIP LOCKED`, so several gateways
//!   publish without duplicates or stalls); [`Store::published`] takes it out.
//! - [`Store::list`] pages in id (upload) order, a range scan on both.
//! - Every write of a record keeps its indexes in the same transaction: whether it has work
//!   left ([`Store::processing`]) and when its callback is due ([`Store::due_callbacks`]),
//!   so that the pending delivery is as durable as the final state it announces.
//! - An unreachable store is [`StoreError::Unavailable`] (503 with `Retry-After`), a full disk
//!   [`StoreError::Full`] (507), never a lost write: nothing is acknowledged before the store
//!   has it.

pub mod group_commit;
pub mod migrations;
pub mod postgres;
pub mod sled;
pub mod sql;
pub mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

use common::config::{StoreConfig, StoreLocation};
use common::files::DataDir;
use common::message::Job;
use common::record::Record;
use uuid::Uuid;

pub use self::postgres::PostgresStore;
pub use self::sqlite::SqliteStore;

/// How long a publisher holds the outbox jobs it took.
pub const CLAIM: std::time::Duration = std::time::Duration::from_secs(30);

/// The record store. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Store {
    /// Embedded: SQLite, one gateway per file.
    Sqlite(SqliteStore),
    /// Shared: PostgreSQL.
    Postgres(PostgresStore),
}

/// A held lock of one content id: while it is held, no other upload of the same bytes
/// decides whether it is a duplicate, no result decides which uploads waited for it, and no
/// deletion decides whether the original is still needed. Let it go with
/// [`ContentLock::release`].
#[derive(Debug)]
pub struct ContentLock {
    /// This process's stripe, so that one gateway's contenders queue here rather than each
    /// holding a database connection.
    _local: tokio::sync::OwnedMutexGuard<()>,
    /// With PostgreSQL, the advisory lock that gateways share, on a connection of its own.
    shared: Option<postgres::PgContentLock>,
}

impl ContentLock {
    /// Lets the lock go.
    pub async fn release(self) {
        if let Some(shared) = self.shared {
            shared.release().await;
        }
    }
}

/// How many locks the content ids of one process are spread over.
const STRIPES: usize = 64;

/// The in-process content locks.
#[derive(Debug, Clone)]
struct Stripes(Arc<Vec<Arc<tokio::sync::Mutex<()>>>>);

impl Stripes {
    fn new() -> Self {
        Self(Arc::new(
            (0..STRIPES)
                .map(|_| Arc::new(tokio::sync::Mutex::new(())))
                .collect(),
        ))
    }

    async fn lock(&self, original: Uuid) -> tokio::sync::OwnedMutexGuard<()> {
        let stripe = usize::from(original.as_bytes()[15]) % STRIPES;
        Arc::clone(&self.0[stripe]).lock_owned().await
    }
}

/// The stripes every store of this process shares.
fn stripes() -> &'static Stripes {
    static STRIPED: std::sync::OnceLock<Stripes> = std::sync::OnceLock::new();
    STRIPED.get_or_init(Stripes::new)
}

/// The result of [`Store::update`].
#[derive(Debug)]
pub enum Update {
    /// There is no such record.
    Missing,
    /// The change declined to change the record; here it is as stored.
    Unchanged(Record),
    /// The record as changed and stored.
    Changed(Record),
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file of the embedded store cannot be opened or created.
    #[error("cannot open the store's file {}: {source}", path.display())]
    OpenFile {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another process holds the embedded store.
    #[error(
        "the store is in use by another gateway, which holds its lock {}: one gateway owns an SQLite store (gateways share a store through PostgreSQL)",
        lock.display()
    )]
    InUse {
        /// The lock file.
        lock: PathBuf,
    },
    /// The SQLite file is damaged or truncated: the gateway does not start on it.
    #[error(
        "the store {} is damaged ({detail}); the gateway will not start on it. Stop every gateway using it, keep a copy of the file, then either restore a backup made by `gateway backup` or recover what it holds: `sqlite3 {} .recover | sqlite3 {}.recovered`, and move the recovered file into its place",
        path.display(), path.display(), path.display()
    )]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What SQLite found.
        detail: String,
    },
    /// A sled store from before SQLite cannot be read.
    #[error("cannot read the sled store in {}: {detail}", path.display())]
    Sled {
        /// Its directory.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// The disk holding the store is full: nothing was written.
    #[error("store: the disk is full: {0}")]
    Full(String),
    /// A stored value is not a record (a bug or a damaged database).
    #[error("store: a stored record cannot be read: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// `store.url` is not a usable URL.
    #[error("store: invalid store.url: {0}")]
    Url(String),
    /// The schema could not be brought up to date.
    #[error("store: migrating the schema failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database cannot be reached now (down, restarting, out of connections).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The database refused a statement.
    #[error("store: {0}")]
    Database(sqlx::Error),
    /// A backup could not be written.
    #[error("store: backup failed: {0}")]
    Backup(String),
    /// Importing a sled store failed.
    #[error("store: importing the sled store failed: {0}")]
    Import(String),
}

/// Runs the same call on whichever store this is.
macro_rules! on_store {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            Store::Sqlite($store) => $call,
            Store::Postgres($store) => $call,
        }
    };
}

/// What the dashboard shows of the store: records by state, the jobs waiting for a worker,
/// the latest failures and the dead letters.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Overview {
    /// Records processing.
    pub processing: u64,
    /// Records completed.
    pub completed: u64,
    /// Records failed.
    pub error: u64,
    /// Records processing that no worker has taken yet: the queue's depth.
    pub waiting: u64,
    /// When the oldest of those was accepted (RFC 3339).
    pub oldest_waiting: Option<String>,
    /// The latest failed records, newest first.
    pub failures: Vec<Record>,
    /// The dead letters ([`Record::dead_letter`]), newest first.
    pub dead_letters: Vec<Record>,
}

impl Overview {
    /// The view from records counted by state, the jobs waiting (and when the oldest was
    /// accepted), and the latest failures and dead letters.
    fn from_counts(
        counts: &[(Option<String>, i64)],
        waiting: i64,
        oldest_waiting: Option<String>,
        failures: Vec<Record>,
        dead_letters: Vec<Record>,
    ) -> Self {
        let count = |state: &str| {
            counts
                .iter()
                .find(|(name, _)| name.as_deref() == Some(state))
                .map_or(0, |(_, count)| u64::try_from(*count).unwrap_or(0))
        };
        Self {
            processing: count("Processing"),
            completed: count("Completed"),
            error: count("Error"),
            waiting: u64::try_from(waiting).unwrap_or(0),
            oldest_waiting,
            failures,
            dead_letters,
        }
    }
}

impl Store {
    /// Opens the store `config` names: PostgreSQL (connecting and migrating the schema), or
    /// SQLite in the file `store.url` names or in `data`'s (importing `data`'s sled store
    /// first if it still has one). Call it inside a Tokio runtime.
    pub async fn open(config: &StoreConfig, data: &DataDir) -> Result<Self, StoreError> {
        let file = match config.location() {
            Some(StoreLocation::Postgres(url)) => {
                return Ok(Store::Postgres(
                    PostgresStore::connect(url, config.max_connections).await?,
                ));
            }
            Some(StoreLocation::Sqlite(path)) => path.to_owned(),
            Some(StoreLocation::DataDir) => data.store_file(),
            None => {
                return Err(StoreError::Url(
                    "not a postgres:// or sqlite://PATH URL".to_owned(),
                ));
            }
        };
        crate::migrate::import_sled(&data.sled_dir(), &file).await?;
        Ok(Store::Sqlite(SqliteStore::open(&file).await?))
    }

    /// What kind of store this is, for logs and `/readyz`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Whether this is the embedded store, which one gateway owns.
    pub fn is_embedded(&self) -> bool {
        matches!(self, Store::Sqlite(_))
    }

    /// Inserts a new record and its job in the outbox, atomically.
    pub async fn insert(&self, record: &Record, job: &Job) -> Result<(), StoreError> {
        on_store!(self, store => store.insert(record, job).await)
    }

    /// Adds a record made elsewhere (a migration), with its job in the outbox when it has
    /// one, unless a record with its id exists; returns whether it was added.
    pub async fn import(&self, record: &Record, job: Option<&Job>) -> Result<bool, StoreError> {
        on_store!(self, store => store.import(record, job).await)
    }

    /// Puts a job in the outbox (to be published again).
    pub async fn enqueue(&self, job: &Job) -> Result<(), StoreError> {
        on_store!(self, store => store.enqueue(job).await)
    }

    /// Up to `limit` jobs waiting in the outbox, oldest first, for this caller to publish.
    pub async fn outbox(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        on_store!(self, store => store.outbox(limit).await)
    }

    /// Takes a job out of the outbox once the queue has it.
    pub async fn published(&self, media_id: Uuid) -> Result<(), StoreError> {
        on_store!(self, store => store.published(media_id).await)
    }

    /// The record of `media_id`, if any.
    pub async fn get(&self, media_id: Uuid) -> Result<Option<Record>, StoreError> {
        on_store!(self, store => store.get(media_id).await)
    }

    /// Every record whose original is stored under the content id `original`.
    pub async fn with_original(&self, original: Uuid) -> Result<Vec<Record>, StoreError> {
        on_store!(self, store => store.with_original(original).await)
    }

    /// Takes the lock of the content id `original` (gateways sharing PostgreSQL take the same
    /// lock).
    pub async fn lock_content(&self, original: Uuid) -> Result<ContentLock, StoreError> {
        let local = stripes().lock(original).await;
        let shared = match self {
            Store::Sqlite(_) => None,
            Store::Postgres(store) => Some(store.lock_content(original).await?),
        };
        Ok(ContentLock {
            _local: local,
            shared,
        })
    }

    /// Up to `limit` records of `tenant` (every record when `None`) with ids after `after`
    /// (from the first when `None`), in id order.
    pub async fn list(
        &self,
        tenant: Option<&str>,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        on_store!(self, store => store.list(tenant, after, limit).await)
    }

    /// The dashboard's view of the store, with at most `limit` failures and dead letters.
    pub async fn overview(&self, limit: usize) -> Result<Overview, StoreError> {
        on_store!(self, store => store.overview(limit).await)
    }

    /// Every record with work left ([`Record::needs_work`]: processing, or with a variant
    /// asked for on demand), in id order.
    pub async fn processing(&self) -> Result<Vec<Record>, StoreError> {
        on_store!(self, store => store.processing().await)
    }

    /// Applies `change` to the record of `media_id` atomically. `change` returns whether it
    /// changed the record; it may run more than once if the record changes meanwhile.
    pub async fn update(
        &self,
        media_id: Uuid,
        change: impl FnMut(&mut Record) -> bool + Send,
    ) -> Result<Update, StoreError> {
        on_store!(self, store => store.update(media_id, change, false).await)
    }

    /// As [`Store::update`], and a changed record's [`Record::job`] (what is left to make)
    /// goes to the outbox in the same transaction: for variants asked for on demand, so that
    /// two requests racing never leave one of them out of the job.
    pub async fn update_and_enqueue(
        &self,
        media_id: Uuid,
        change: impl FnMut(&mut Record) -> bool + Send,
    ) -> Result<Update, StoreError> {
        on_store!(self, store => store.update(media_id, change, true).await)
    }

    /// Up to `limit` records whose completion callback is due ([`Record::callback_due`]),
    /// each held by this caller for `lease`: not handed out again meanwhile, unless a change
    /// to the record (the outcome of the delivery) sets a new due time.
    pub async fn due_callbacks(
        &self,
        limit: usize,
        lease: std::time::Duration,
    ) -> Result<Vec<Record>, StoreError> {
        on_store!(self, store => store.due_callbacks(limit, lease).await)
    }

    /// Removes the record of `media_id` (and its job if still in the outbox); returns it if it
    /// existed.
    pub async fn remove(&self, media_id: Uuid) -> Result<Option<Record>, StoreError> {
        on_store!(self, store => store.remove(media_id).await)
    }

    /// Tells the other gateways sharing the store that the record of `media_id` became final,
    /// so that they wake its waiters (PostgreSQL `NOTIFY`; SQLite has no other gateway).
    pub async fn announce_final(&self, media_id: Uuid) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(store) => store.announce_final(media_id).await,
        }
    }

    /// Closes the store's connections, for every clone: at shutdown, once nothing writes.
    /// SQLite's log is checkpointed into its file and removed.
    pub async fn close(&self) {
        on_store!(self, store => store.close().await)
    }

    /// Whether the store answers reads.
    pub async fn check(&self) -> Result<(), StoreError> {
        on_store!(self, store => store.check().await)
    }
}

/// The same tests on both stores: SQLite in a temporary directory, and PostgreSQL in a schema of
/// its own in the database `THUMBNAILIFY_TEST_DATABASE_URL` names (default
/// `postgres://root:root@127.0.0.1:5432/test`, which `scripts/test` provides).
#[cfg(test)]
pub mod tests;
