//! The shared record store: PostgreSQL, for any number of gateways.
//!
//! Two tables (`gateway/migrations/`): `records` (the record as `jsonb`, a `processing` flag
//! with a partial index for recovery and sweeps, a `callback_due` time with a partial index
//! for callback delivery, both kept by every write of the record, and a `version` that every
//! change bumps) and
//! `outbox` (jobs not yet confirmed by the queue, deleted with their record). The schema is
//! migrated at start by sqlx's migrator, under its advisory lock, so gateways starting at once
//! migrate once.
//!
//! - Every call commits before it returns.
//! - [`PostgresStore::update`] reads the record and its version, applies the change, and
//!   writes it only if the version is still the one read (`UPDATE … WHERE version = $n`);
//!   otherwise it reads again.
//! - [`PostgresStore::outbox`] claims jobs for [`CLAIM`] with `FOR UPDATE SKIP LOCKED`: two
//!   gateways never take the same job, and a job whose publisher died is taken again once
//!   its claim lapses.
//! - A connection that cannot be had within [`ACQUIRE_TIMEOUT`], or that the server drops
//!   (restart, `pg_terminate_backend`), is [`StoreError::Unavailable`]: the API answers 503
//!   with `Retry-After` and the pool reconnects on its own.

use std::time::Duration;

use common::message::Job;
use common::record::Record;
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, Postgres};
use sqlx::types::Json;
use uuid::Uuid;

use super::migrations::Embedded;
use super::sql::{self, POSTGRES as SQL};
use super::{CLAIM, StoreError, Update};

/// A held advisory lock of one content id.
#[derive(Debug)]
pub struct PgContentLock {
    connection: Option<PoolConnection<Postgres>>,
    key: i64,
}

impl PgContentLock {
    /// Lets the lock go.
    pub async fn release(mut self) {
        if let Some(mut connection) = self.connection.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .execute(&mut *connection)
                .await;
            if unlocked.is_err() {
                // The session ends with the connection, and the lock with it.
                connection.close_on_drop();
            }
        }
    }
}

impl Drop for PgContentLock {
    fn drop(&mut self) {
        // Not released (a panic, a cancelled request): the session ends with the connection.
        if let Some(connection) = self.connection.as_mut() {
            connection.close_on_drop();
        }
    }
}

/// How long a call waits for a connection before the store counts as unavailable.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The schema's migrations, embedded in the binary.
const MIGRATIONS: [(i64, &str, &str); 4] = [
    (
        1,
        "records and outbox",
        include_str!("../../migrations/0001_records_and_outbox.sql"),
    ),
    (
        2,
        "callbacks",
        include_str!("../../migrations/0002_callbacks.sql"),
    ),
    (
        3,
        "originals",
        include_str!("../../migrations/0003_originals.sql"),
    ),
    (
        4,
        "tenants",
        include_str!("../../migrations/0004_tenants.sql"),
    ),
];

/// The PostgreSQL record store. Cheap to clone: a connection pool.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

/// Maps a database error: connection failures are the store being unavailable.
fn map_error(error: sqlx::Error) -> StoreError {
    let unavailable = match &error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        // Class 08 (connection exception) and 57P0x (the server shutting down or starting).
        sqlx::Error::Database(database) => database
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Database(error)
    }
}

impl PostgresStore {
    /// A connection from the pool. Failing to get one (the server down, refusing
    /// connections, or every connection busy for [`ACQUIRE_TIMEOUT`]) is the store being
    /// unavailable, whatever the reason the server gave.
    async fn connection(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        self.pool
            .acquire()
            .await
            .map_err(|error| StoreError::Unavailable(error.to_string()))
    }

    /// Connects to the database at `url` with a pool of at most `max_connections`, and brings
    /// its schema up to date.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|error: sqlx::Error| StoreError::Url(error.to_string()))?;
        let options = options.application_name("thumbnailify");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(map_error)?;
        Migrator::new(Embedded(&MIGRATIONS))
            .await?
            .run(&pool)
            .await?;
        Ok(Self { pool })
    }

    /// Inserts a new record and its job in the outbox, in one transaction.
    pub async fn insert(&self, record: &Record, job: &Job) -> Result<(), StoreError> {
        self.import(record, Some(job)).await.map(drop)
    }

    /// Adds `record` (and `job` to the outbox) unless a record with its id exists, in one
    /// transaction.
    pub async fn import(&self, record: &Record, job: Option<&Job>) -> Result<bool, StoreError> {
        let mut connection = self.connection().await?;
        let mut transaction = connection.begin().await.map_err(map_error)?;
        let added = sqlx::query(SQL.insert_record)
            .bind(record.media_id)
            .bind(record.needs_work())
            .bind(Json(record))
            .bind(record.callback_due())
            .execute(&mut *transaction)
            .await
            .map_err(map_error)?
            .rows_affected()
            == 1;
        if let (true, Some(job)) = (added, job) {
            sqlx::query(sql::INSERT_JOB)
                .bind(job.media_id)
                .bind(Json(job))
                .execute(&mut *transaction)
                .await
                .map_err(map_error)?;
        }
        transaction.commit().await.map_err(map_error)?;
        Ok(added)
    }

    /// Puts a job in the outbox (to be published again), unclaimed. A job whose record is gone
    /// is not queued.
    pub async fn enqueue(&self, job: &Job) -> Result<(), StoreError> {
        let outcome = sqlx::query(SQL.enqueue)
            .bind(job.media_id)
            .bind(Json(job))
            .execute(&mut *self.connection().await?)
            .await;
        match outcome {
            Ok(_) => Ok(()),
            // The record went between the check and the insert.
            Err(sqlx::Error::Database(error)) if error.is_foreign_key_violation() => Ok(()),
            Err(error) => Err(map_error(error)),
        }
    }

    /// Claims up to `limit` unclaimed jobs for [`CLAIM`], oldest first.
    pub async fn outbox(&self, limit: usize) -> Result<Vec<Job>, StoreError> {
        let claimed: Vec<(Uuid, Json<Job>)> = sqlx::query_as(SQL.claim_jobs)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(CLAIM.as_secs_f64())
            .fetch_all(&mut *self.connection().await?)
            .await
            .map_err(map_error)?;
        let mut jobs: Vec<_> = claimed.into_iter().collect();
        jobs.sort_by_key(|(media_id, _)| *media_id);
        Ok(jobs.into_iter().map(|(_, Json(job))| job).collect())
    }

    /// Takes a job out of the outbox once the queue has it.
    pub async fn published(&self, media_id: Uuid) -> Result<(), StoreError> {
        sqlx::query(sql::DELETE_JOB)
            .bind(media_id)
            .execute(&mut *self.connection().await?)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    /// The record `query` (taking the media id as `$1`) returns, if any.
    async fn one_record(&self, query: &str, media_id: Uuid) -> Result<Option<Record>, StoreError> {
        let row: Option<(Json<Record>,)> = sqlx::query_as(query)
            .bind(media_id)
            .fetch_optional(&mut *self.connection().await?)
            .await
            .map_err(map_error)?;
        Ok(row.map(|(Json(record),)| record))
    }

    /// The record of `media_id`, if any.
    pub async fn get(&self, media_id: Uuid) -> Result<Option<Record>, StoreError> {
        self.one_record(sql::GET_RECORD, media_id).await
    }

    /// Every record whose original is stored under the content id `original`.
    pub async fn with_original(&self, original: Uuid) -> Result<Vec<Record>, StoreError> {
        let rows: Vec<(Json<Record>,)> = sqlx::query_as(SQL.with_original)
            .bind(original.to_string())
            .fetch_all(&mut *self.connection().await?)
            .await
            .map_err(map_error)?;
        Ok(rows.into_iter().map(|(Json(record),)| record).collect())
    }

    /// Holds the advisory lock of the content id `original` on a connection of its own,
    /// until [`PgContentLock::release`] (or the connection closes).
    pub async fn lock_content(&self, original: Uuid) -> Result<PgContentLock, StoreError> {
        let mut connection = self.connection().await?;
        let key = i64::from_be_bytes(original.as_bytes()[..8].try_into().unwrap_or_default());
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(key)
            .execute(&mut *connection)
            .await
            .map_err(map_error)?;
        Ok(PgContentLock {
            connection: Some(connection),
            key,
        })
    }

    /// Up to `limit` records with ids after `after`, in id order: a range scan of the key.
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
        let rows: Vec<(Json<Record>,)> = query
            .bind(after)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(tenant)
            .fetch_all(&mut *self.connection().await?)
            .await
            .map_err(map_error)?;
        Ok(rows.into_iter().map(|(Json(record),)| record).collect())
    }

    /// The dashboard's view: counts by state and the waiting jobs computed in the database,
    /// the latest failures and dead letters read.
    pub async fn overview(&self, limit: usize) -> Result<super::Overview, StoreError> {
        let mut connection = self.connection().await?;
        let counts: Vec<(Option<String>, i64)> = sqlx::query_as(sql::COUNT_BY_STATE)
            .fetch_all(&mut *connection)
            .await
            .map_err(map_error)?;
        let (waiting, oldest_waiting): (i64, Option<String>) = sqlx::query_as(sql::WAITING)
            .fetch_one(&mut *connection)
            .await
            .map_err(map_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut latest = Vec::new();
        for query in [sql::LATEST_FAILURES, SQL.dead_letters] {
            let rows: Vec<(Json<Record>,)> = sqlx::query_as(query)
                .bind(limit)
                .fetch_all(&mut *connection)
                .await
                .map_err(map_error)?;
            latest.push(rows.into_iter().map(|(Json(record),)| record).collect());
        }
        let dead_letters = latest.pop().unwrap_or_default();
        let failures = latest.pop().unwrap_or_default();
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
        let rows: Vec<(Json<Record>,)> = sqlx::query_as(sql::PROCESSING)
            .fetch_all(&mut *self.connection().await?)
            .await
            .map_err(map_error)?;
        Ok(rows.into_iter().map(|(Json(record),)| record).collect())
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
        let mut connection = self.connection().await?;
        loop {
            let row: Option<(i64, Json<Record>)> = sqlx::query_as(sql::GET_VERSIONED)
                .bind(media_id)
                .fetch_optional(&mut *connection)
                .await
                .map_err(map_error)?;
            let Some((version, Json(mut record))) = row else {
                return Ok(Update::Missing);
            };
            if !change(&mut record) {
                return Ok(Update::Unchanged(record));
            }
            let mut transaction = connection.begin().await.map_err(map_error)?;
            let written = sqlx::query(SQL.update_record)
                .bind(media_id)
                .bind(version)
                .bind(Json(&record))
                .bind(record.needs_work())
                .bind(record.callback_due())
                .execute(&mut *transaction)
                .await
                .map_err(map_error)?;
            if written.rows_affected() != 1 {
                continue; // changed meanwhile: the transaction rolls back when dropped
            }
            if enqueue {
                sqlx::query(SQL.enqueue_changed)
                    .bind(media_id)
                    .bind(Json(record.job()))
                    .execute(&mut *transaction)
                    .await
                    .map_err(map_error)?;
            }
            transaction.commit().await.map_err(map_error)?;
            return Ok(Update::Changed(record));
        }
    }

    /// Claims up to `limit` records whose callback is due, each for `lease` (`FOR UPDATE SKIP
    /// LOCKED`: two gateways never take the same one; a change to the record sets a new due
    /// time).
    pub async fn due_callbacks(
        &self,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Record>, StoreError> {
        let rows: Vec<(Json<Record>,)> = sqlx::query_as(SQL.claim_callbacks)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(lease.as_secs_f64())
            .fetch_all(&mut *self.connection().await?)
            .await
            .map_err(map_error)?;
        Ok(rows.into_iter().map(|(Json(record),)| record).collect())
    }

    /// Removes the record of `media_id` and its outbox job; returns the record if it existed.
    pub async fn remove(&self, media_id: Uuid) -> Result<Option<Record>, StoreError> {
        self.one_record(sql::DELETE_RECORD, media_id).await
    }

    /// Tells every gateway listening (see [`PostgresStore::forward_finals`]) that the record
    /// of `media_id` is final.
    pub async fn announce_final(&self, media_id: Uuid) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::waiters::CHANNEL)
            .bind(media_id.to_string())
            .execute(&mut *self.connection().await?)
            .await
            .map_err(map_error)?;
        Ok(())
    }

    /// Wakes this gateway's waiters of every record any gateway announces final, until the
    /// process ends; reconnects after a lost connection.
    pub async fn forward_finals(self, waiters: crate::waiters::Waiters) {
        loop {
            let listening: Result<std::convert::Infallible, sqlx::Error> = async {
                let mut listener = PgListener::connect_with(&self.pool).await?;
                listener.listen(crate::waiters::CHANNEL).await?;
                loop {
                    let notification = listener.recv().await?;
                    if let Ok(media_id) = Uuid::try_parse(notification.payload()) {
                        waiters.notify(media_id);
                    }
                }
            }
            .await;
            let Err(error) = listening;
            tracing::warn!(%error, "not listening for final records; again in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Closes the pool's connections, of every clone.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Whether the database answers.
    pub async fn check(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.connection().await?)
            .await
            .map_err(map_error)?;
        Ok(())
    }
}
