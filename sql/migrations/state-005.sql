-- smtp-relay state database: version 4 -> 5. Adds reset_mark, the id of the last counter
-- reset (users database, usage_reset) relay-milter has applied to this file and written to
-- the audit log (see state-schema.sql). Run by sql/migrations.c inside the caller's
-- BEGIN IMMEDIATE: a failure leaves the file at version 4.
CREATE TABLE reset_mark (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  reset_id INTEGER NOT NULL CHECK (reset_id >= 0)
);

PRAGMA user_version = 5;
