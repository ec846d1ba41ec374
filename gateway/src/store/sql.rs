//! The SQL of the relational stores, once: the statements PostgreSQL and SQLite run alike,
//! then, in one [`Dialect`] each, the few where they differ.
//!
//! Both schemas have the same tables and columns (`gateway/migrations/` and
//! `gateway/migrations/sqlite/`); they differ in types: PostgreSQL keeps ids as `uuid`,
//! records as `jsonb` and times as `timestamptz`, SQLite ids as 16-byte blobs, records as
//! JSON text and times as milliseconds since the epoch. So where a statement reads the clock
//! or casts a time, or uses what only PostgreSQL has (`FOR UPDATE SKIP LOCKED`, so that
//! several gateways claim jobs without taking the same one; jsonb's `?`), it is in the
//! dialect. The rest (advisory locks and `NOTIFY`, which only PostgreSQL's many gateways
//! need) lives in `postgres.rs` alone.

/// A job for the outbox: `$1` id, `$2` job.
pub const INSERT_JOB: &str = "INSERT INTO outbox (media_id, job) VALUES ($1, $2)";
/// Takes a published job out of the outbox: `$1` id.
pub const DELETE_JOB: &str = "DELETE FROM outbox WHERE media_id = $1";
/// A record: `$1` id.
pub const GET_RECORD: &str = "SELECT record FROM records WHERE media_id = $1";
/// A record and its version, for a compare-and-swap: `$1` id.
pub const GET_VERSIONED: &str = "SELECT version, record FROM records WHERE media_id = $1";
/// Deletes a record (its outbox job goes with it, by the foreign key): `$1` id.
pub const DELETE_RECORD: &str = "DELETE FROM records WHERE media_id = $1 RETURNING record";
/// Records with work left, in id order (the partial index `records_processing`).
pub const PROCESSING: &str = "SELECT record FROM records WHERE processing ORDER BY media_id";
/// Records counted by state.
pub const COUNT_BY_STATE: &str = "SELECT record ->> 'state', count(*) FROM records GROUP BY 1";
/// Jobs no worker has taken yet, and when the oldest was accepted.
pub const WAITING: &str = "SELECT count(*), min(record ->> 'created_at') FROM records
     WHERE processing AND record ->> 'state' = 'Processing' AND record ->> 'service' = 'gateway'";
/// The latest failed records, newest first: `$1` how many.
pub const LATEST_FAILURES: &str = "SELECT record FROM records WHERE record ->> 'state' = 'Error'
     ORDER BY record ->> 'updated_at' DESC LIMIT $1";

/// The statements whose text differs between the two databases.
#[derive(Debug)]
pub struct Dialect {
    /// A record, unless one with its id exists: `$1` id, `$2` processing, `$3` record, `$4`
    /// when its callback is due.
    pub insert_record: &'static str,
    /// A compare-and-swap write: `$1` id, `$2` version read, `$3` record, `$4` processing,
    /// `$5` callback due.
    pub update_record: &'static str,
    /// A job back into the outbox, unclaimed, if its record is there: `$1` id, `$2` job.
    pub enqueue: &'static str,
    /// A changed record's job into the outbox, unclaimed: `$1` id, `$2` job.
    pub enqueue_changed: &'static str,
    /// Claims waiting jobs: `$1` how many; the claim's length or end after.
    pub claim_jobs: &'static str,
    /// Claims records whose callback is due: `$1` how many; the lease after.
    pub claim_callbacks: &'static str,
    /// Records by the content id of their original: `$1` the content id as text.
    pub with_original: &'static str,
    /// A page of records in id order: `$1` the id to start after (or NULL), `$2` how many.
    pub list: &'static str,
    /// A page of one tenant's records: as [`Dialect::list`], `$3` the tenant.
    pub list_tenant: &'static str,
    /// The latest dead letters, newest first: `$1` how many.
    pub dead_letters: &'static str,
}

/// PostgreSQL: times are `timestamptz` (bound as RFC 3339 text and cast), the clock is
/// `now()`, claims skip rows another gateway holds.
pub const POSTGRES: Dialect = Dialect {
    insert_record: "INSERT INTO records (media_id, processing, record, callback_due)
     VALUES ($1, $2, $3, $4::timestamptz) ON CONFLICT (media_id) DO NOTHING",
    update_record: "UPDATE records SET record = $3, processing = $4,
         callback_due = $5::timestamptz, version = version + 1
     WHERE media_id = $1 AND version = $2",
    enqueue: "INSERT INTO outbox (media_id, job)
     SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM records WHERE media_id = $1)
     ON CONFLICT (media_id) DO UPDATE SET job = EXCLUDED.job, claimed_until = '-infinity'",
    enqueue_changed: "INSERT INTO outbox (media_id, job) VALUES ($1, $2)
     ON CONFLICT (media_id) DO UPDATE SET job = EXCLUDED.job, claimed_until = '-infinity'",
    // `$2`: the claim's length in seconds.
    claim_jobs: "UPDATE outbox SET claimed_until = now() + make_interval(secs => $2)
     WHERE media_id IN (
         SELECT media_id FROM outbox WHERE claimed_until < now()
         ORDER BY media_id LIMIT $1 FOR UPDATE SKIP LOCKED)
     RETURNING media_id, job",
    // `$2`: the lease in seconds.
    claim_callbacks: "UPDATE records SET callback_due = now() + make_interval(secs => $2)
     WHERE media_id IN (
         SELECT media_id FROM records WHERE callback_due <= now()
         ORDER BY callback_due LIMIT $1 FOR UPDATE SKIP LOCKED)
     RETURNING record",
    // Written as the index is, so that it is read from it.
    with_original: "SELECT record FROM records
     WHERE record ? 'original' AND record ->> 'original' = $1 ORDER BY media_id",
    list: "SELECT record FROM records WHERE $1::uuid IS NULL OR media_id > $1
     ORDER BY media_id LIMIT $2",
    list_tenant: "SELECT record FROM records
     WHERE record ? 'tenant' AND record ->> 'tenant' = $3 AND ($1::uuid IS NULL OR media_id > $1)
     ORDER BY record ->> 'tenant', media_id LIMIT $2",
    dead_letters: "SELECT record FROM records
     WHERE coalesce((record ->> 'dead_letter')::boolean, false)
     ORDER BY record ->> 'updated_at' DESC LIMIT $1",
};

/// SQLite: times are milliseconds since the epoch, bound from the gateway's clock; one
/// gateway owns the file, so a claim need not skip anyone's rows.
pub const SQLITE: Dialect = Dialect {
    insert_record: "INSERT INTO records (media_id, processing, record, callback_due)
     VALUES ($1, $2, $3, $4) ON CONFLICT (media_id) DO NOTHING",
    update_record: "UPDATE records SET record = $3, processing = $4, callback_due = $5,
         version = version + 1
     WHERE media_id = $1 AND version = $2",
    enqueue: "INSERT INTO outbox (media_id, job)
     SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM records WHERE media_id = $1)
     ON CONFLICT (media_id) DO UPDATE SET job = excluded.job, claimed_until = 0",
    enqueue_changed: "INSERT INTO outbox (media_id, job) VALUES ($1, $2)
     ON CONFLICT (media_id) DO UPDATE SET job = excluded.job, claimed_until = 0",
    // `$2`: now; `$3`: the claim's end (milliseconds).
    claim_jobs: "UPDATE outbox SET claimed_until = $3
     WHERE media_id IN (
         SELECT media_id FROM outbox WHERE claimed_until < $2 ORDER BY media_id LIMIT $1)
     RETURNING media_id, job",
    // `$2`: now; `$3`: the lease's end (milliseconds).
    claim_callbacks: "UPDATE records SET callback_due = $3
     WHERE media_id IN (
         SELECT media_id FROM records WHERE callback_due <= $2 ORDER BY callback_due LIMIT $1)
     RETURNING record",
    with_original: "SELECT record FROM records WHERE record ->> 'original' = $1 ORDER BY media_id",
    list: "SELECT record FROM records WHERE $1 IS NULL OR media_id > $1
     ORDER BY media_id LIMIT $2",
    list_tenant: "SELECT record FROM records
     WHERE record ->> 'tenant' = $3 AND ($1 IS NULL OR media_id > $1)
     ORDER BY record ->> 'tenant', media_id LIMIT $2",
    dead_letters: "SELECT record FROM records WHERE coalesce(record ->> 'dead_letter', 0)
     ORDER BY record ->> 'updated_at' DESC LIMIT $1",
};
