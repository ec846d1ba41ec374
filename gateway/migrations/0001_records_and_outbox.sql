-- Records, keyed by their UUID v7 media id (so key order is upload order), and the outbox of
-- jobs accepted but not yet confirmed by the queue.
CREATE TABLE records (
    media_id uuid PRIMARY KEY,
    -- Whether the record is still Processing: recovery and sweeps read only those.
    processing boolean NOT NULL,
    -- Bumped by every change: updates are compare-and-swap on it.
    version bigint NOT NULL DEFAULT 0,
    record jsonb NOT NULL
);

CREATE INDEX records_processing ON records (media_id) WHERE processing;

CREATE TABLE outbox (
    media_id uuid PRIMARY KEY REFERENCES records (media_id) ON DELETE CASCADE,
    job jsonb NOT NULL,
    -- A publisher holds the job until then; after it, any gateway may publish it.
    claimed_until timestamptz NOT NULL DEFAULT '-infinity'
);
