-- smtp-relay state database: version 2 -> 3. Adds counters, relay-milter's persisted
-- metrics (what `relay-admin metrics` prints; names from sql/prom.c). Self-contained: it
-- only creates its own table. Run by sql/migrations.c inside the caller's BEGIN IMMEDIATE:
-- a failure leaves the file at version 2.
CREATE TABLE counters (
  name  TEXT    NOT NULL,
  label TEXT    NOT NULL DEFAULT '',
  value INTEGER NOT NULL DEFAULT 0 CHECK (value >= 0),
  PRIMARY KEY (name, label)
) WITHOUT ROWID;

PRAGMA user_version = 3;
