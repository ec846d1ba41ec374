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
//! - Every call commits before it returns: [`PostgresStore::flush`] has nothing to wait for.
//! - [`PostgresStore::update`] reads the record and its version, applies the change, and
//!   writes it only if the version is still the one read (`UPDATE … WHERE version = $n`);
//!   otherwise it reads again.
//! - [`PostgresStore::outbox`] claims jobs for [`CLAIM`] with `FOR UPDATE SKIP LOCKED`: two
//!   gateways never take the same job, and a job whose publisher died is taken again once
//!   its claim lapses.
//! - A connection that cannot be had within [`ACQUIRE_TIMEOUT`], or that the server drops
//!   (restart, `pg_terminate_backend`), is [`StoreError::Unavailable`]: the API answers 503
//!   with `Retry-After` and the pool reconnects on its own.

use std::borrow::Cow;
use std::pin::Pin;
use std::time::Duration;

use common::message::Job;
use common::record::Record;
use sqlx::Connection;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, Postgres};
use sqlx::types::Json;
use uuid::Uuid;

use super::{StoreError, Update};

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

/// How long a publisher holds the outbox jobs it took.
pub const CLAIM: Duration = Duration::from_secs(30);
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

/// The embedded migrations, as sqlx's migrator reads them.
#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, sqlx::error::BoxDynError>> + Send + 's>>
    {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|&(version, description, sql)| {
                    Migration::new(
                        version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

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
        StoreError::Postgres(error)
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
        Migrator::new(Embedded).await?.run(&pool).await?;
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
        let added = sqlx::query(
            "INSERT INTO records (media_id, processing, record, callback_due)
             VALUES ($1, $2, $3, $4::timestamptz)
             ON CONFLICT (media_id) DO NOTHING",
        )
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
            sqlx::query("INSERT INTO outbox (media_id, job) VALUES ($1, $2)")
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
        let outcome = sqlx::query(
            "INSERT INTO outbox (media_id, job)
             SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM records WHERE media_id = $1)
             ON CONFLICT (media_id) DO UPDATE SET job = EXCLUDED.job, claimed_until = '-infinity'",
        )
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
        let claimed: Vec<(Uuid, Json<Job>)> = sqlx::query_as(
            "UPDATE outbox SET claimed_until = now() + make_interval(secs => $2)
             WHERE media_id IN (
                 SELECT media_id FROM outbox WHERE claimed_until < now()
                 ORDER BY media_id LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING media_id, job",
        )
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
        sqlx::query("DELETE FROM outbox WHERE media_id = $1")
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
        self.one_record("SELECT record FROM records WHERE media_id = $1", media_id)
            .await
    }

    /// Every record whose original is stored under the content id `original`.
    pub async fn with_original(&self, original: Uuid) -> Result<Vec<Record>, StoreError> {
        let rows: Vec<(Json<Record>,)> = sqlx::query_as(
            "SELECT record FROM records WHERE record ? 'original' AND record->>'original' = $1
             ORDER BY media_id",
        )
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
        let query = match tenant {
            None => sqlx::query_as(
                "SELECT record FROM records WHERE $1::uuid IS NULL OR media_id > $1
                 ORDER BY media_id LIMIT $2",
            ),
            // Written as the index is, so that a tenant's page is read from it.
            Some(_) => sqlx::query_as(
                "SELECT record FROM records
                 WHERE record ? 'tenant' AND record->>'tenant' = $3
                   AND ($1::uuid IS NULL OR media_id > $1)
                 ORDER BY record->>'tenant', media_id LIMIT $2",
            ),
        };
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
        let counts: Vec<(Option<String>, i64)> =
            sqlx::query_as("SELECT record->>'state', count(*) FROM records GROUP BY 1")
                .fetch_all(&mut *connection)
                .await
                .map_err(map_error)?;
        let (waiting, oldest_waiting): (i64, Option<String>) = sqlx::query_as(
            "SELECT count(*), min(record->>'created_at') FROM records
             WHERE processing AND record->>'state' = 'Processing'
               AND record->>'service' = 'gateway'",
        )
        .fetch_one(&mut *connection)
        .await
        .map_err(map_error)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut latest = Vec::new();
        for condition in [
            "record->>'state' = 'Error'",
            "coalesce((record->>'dead_letter')::boolean, false)",
        ] {
            let rows: Vec<(Json<Record>,)> = sqlx::query_as(&format!(
                "SELECT record FROM records WHERE {condition}
                 ORDER BY record->>'updated_at' DESC LIMIT $1"
            ))
            .bind(limit)
            .fetch_all(&mut *connection)
            .await
            .map_err(map_error)?;
            latest.push(rows.into_iter().map(|(Json(record),)| record).collect());
        }
        let count = |state: &str| {
            counts
                .iter()
                .find(|(name, _)| name.as_deref() == Some(state))
                .map_or(0, |(_, count)| u64::try_from(*count).unwrap_or(0))
        };
        let dead_letters = latest.pop().unwrap_or_default();
        let failures = latest.pop().unwrap_or_default();
        Ok(super::Overview {
            processing: count("Processing"),
            completed: count("Completed"),
            error: count("Error"),
            waiting: u64::try_from(waiting).unwrap_or(0),
            oldest_waiting,
            failures,
            dead_letters,
        })
    }

    /// Every record with work left ([`Record::needs_work`]), in id order.
    pub async fn processing(&self) -> Result<Vec<Record>, StoreError> {
        let rows: Vec<(Json<Record>,)> =
            sqlx::query_as("SELECT record FROM records WHERE processing ORDER BY media_id")
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
            let row: Option<(i64, Json<Record>)> =
                sqlx::query_as("SELECT version, record FROM records WHERE media_id = $1")
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
            let written = sqlx::query(
                "UPDATE records SET record = $3, processing = $4, callback_due = $5::timestamptz,
                     version = version + 1
                 WHERE media_id = $1 AND version = $2",
            )
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
                sqlx::query(
                    "INSERT INTO outbox (media_id, job) VALUES ($1, $2)
                     ON CONFLICT (media_id) DO UPDATE SET job = EXCLUDED.job,
                         claimed_until = '-infinity'",
                )
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
        let rows: Vec<(Json<Record>,)> = sqlx::query_as(
            "UPDATE records SET callback_due = now() + make_interval(secs => $2)
             WHERE media_id IN (
                 SELECT media_id FROM records WHERE callback_due <= now()
                 ORDER BY callback_due LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING record",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(lease.as_secs_f64())
        .fetch_all(&mut *self.connection().await?)
        .await
        .map_err(map_error)?;
        Ok(rows.into_iter().map(|(Json(record),)| record).collect())
    }

    /// Removes the record of `media_id` and its outbox job; returns the record if it existed.
    pub async fn remove(&self, media_id: Uuid) -> Result<Option<Record>, StoreError> {
        self.one_record(
            "DELETE FROM records WHERE media_id = $1 RETURNING record",
            media_id,
        )
        .await
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

    /// Every call has committed already: nothing to wait for.
    pub async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
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
