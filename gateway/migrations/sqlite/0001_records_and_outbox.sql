-- The embedded store's schema: the shape of PostgreSQL's (gateway/migrations/), in SQLite's
-- types. Ids are the 16 bytes of the UUID v7 (byte order is upload order), records and jobs
-- JSON text, times milliseconds since the epoch.
CREATE TABLE records (
    media_id BLOB PRIMARY KEY NOT NULL,
    -- Whether the record has work left: recovery and sweeps read only those.
    processing INTEGER NOT NULL,
    -- Bumped by every change: updates are compare-and-swap on it.
    version INTEGER NOT NULL DEFAULT 0,
    record TEXT NOT NULL,
    -- When the record's completion callback is due (NULL: none pending).
    callback_due INTEGER
);

CREATE INDEX records_processing ON records (media_id) WHERE processing;
CREATE INDEX records_callback_due ON records (callback_due) WHERE callback_due IS NOT NULL;
CREATE INDEX records_original ON records (record ->> 'original')
    WHERE record ->> 'original' IS NOT NULL;
CREATE INDEX records_tenant ON records (record ->> 'tenant', media_id)
    WHERE record ->> 'tenant' IS NOT NULL;

CREATE TABLE outbox (
    media_id BLOB PRIMARY KEY NOT NULL REFERENCES records (media_id) ON DELETE CASCADE,
    job TEXT NOT NULL,
    -- A publisher holds the job until then (milliseconds since the epoch).
    claimed_until INTEGER NOT NULL DEFAULT 0
);
