-- When a record's completion callback is due (NULL: none pending), kept by every write of the
-- record; deliverers claim due rows by moving it forward (a lease).
ALTER TABLE records ADD COLUMN callback_due timestamptz;

CREATE INDEX records_callback_due ON records (callback_due) WHERE callback_due IS NOT NULL;
