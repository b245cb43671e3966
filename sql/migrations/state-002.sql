-- smtp-relay state database: version 1 -> 2. Adds journal_mark, relay-milter's record of
-- the last crash-journal record applied (see state-schema.sql). Run by sql/migrations.c
-- inside the caller's BEGIN IMMEDIATE: a failure leaves the file at version 1.
CREATE TABLE journal_mark (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  journal_id INTEGER NOT NULL,
  seq        INTEGER NOT NULL CHECK (seq >= 0)
);

PRAGMA user_version = 2;
