-- smtp-relay state database, schema version 5 (PRAGMA user_version = 5).
--
-- Written only by relay-milter (one writer thread, batched transactions, WAL journal);
-- read by relay-admin (usage, log, user list). Times are unix seconds (UTC).
-- The application_id marks the file as ours, and as a state database: neither database
-- can be mistaken for the other or for a foreign SQLite file.
-- Created by sql/migrations.c (relay-admin init, relay-milter at start) in one transaction,
-- the same path as the users database; version N adds a migration like sql/migrations/.

PRAGMA application_id = 1919706227;  -- 0x726C7973, "rlys"

-- one row per login and second with traffic: the sliding windows are sums over these
CREATE TABLE usage (
  login      TEXT    NOT NULL COLLATE NOCASE,
  ts         INTEGER NOT NULL,
  messages   INTEGER NOT NULL DEFAULT 0 CHECK (messages >= 0),
  recipients INTEGER NOT NULL DEFAULT 0 CHECK (recipients >= 0),
  bytes      INTEGER NOT NULL DEFAULT 0 CHECK (bytes >= 0),
  PRIMARY KEY (login, ts)
) WITHOUT ROWID;
CREATE TABLE last_use (
  login       TEXT    NOT NULL COLLATE NOCASE PRIMARY KEY,
  ts          INTEGER NOT NULL,
  client_addr TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
-- audit.credential: the app credential the message came through ('' = the login's own
-- password); added in version 4 (migrations/state-004.sql), hence last. (No comment inside
-- the column list: SQLite's ALTER TABLE DROP COLUMN, which tests use to make older files,
-- rewrites that text and would keep a comment that breaks it.)
CREATE TABLE audit (
  id          INTEGER PRIMARY KEY,
  ts          INTEGER NOT NULL,
  login       TEXT    NOT NULL,
  client_addr TEXT    NOT NULL,
  tls_version TEXT    NOT NULL,
  cipher      TEXT    NOT NULL,
  env_from    TEXT    NOT NULL,
  header_from TEXT    NOT NULL,
  rcpt_count  INTEGER NOT NULL,
  size        INTEGER NOT NULL,
  queue_id    TEXT    NOT NULL,
  verdict     TEXT    NOT NULL,
  reason      TEXT    NOT NULL,
  credential  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_ts ON audit (ts);
CREATE INDEX audit_login_ts ON audit (login COLLATE NOCASE, ts);

-- relay-milter's crash journal (milter/journal.h): the journal id and sequence number of
-- the last journal record applied, written in the same transaction as the record, so that
-- a record is never applied twice. Added in version 2 (migrations/state-002.sql).
CREATE TABLE journal_mark (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  journal_id INTEGER NOT NULL,
  seq        INTEGER NOT NULL CHECK (seq >= 0)
);

-- relay-milter's metrics as running totals over every run of the milter on this file:
-- each commit of the state writer adds what its in-memory counters gained since the last
-- one (name and label as in sql/prom.c; label '' for a family without one). `relay-admin
-- metrics` prints them. Added in version 3 (migrations/state-003.sql).
CREATE TABLE counters (
  name  TEXT    NOT NULL,
  label TEXT    NOT NULL DEFAULT '',
  value INTEGER NOT NULL DEFAULT 0 CHECK (value >= 0),
  PRIMARY KEY (name, label)
) WITHOUT ROWID;

-- The last use of each app credential (users database `credentials`), by login and
-- label, as last_use is for logins. Added in version 4 (migrations/state-004.sql).
CREATE TABLE credential_use (
  login       TEXT    NOT NULL COLLATE NOCASE,
  label       TEXT    NOT NULL,
  ts          INTEGER NOT NULL,
  client_addr TEXT    NOT NULL DEFAULT '',
  PRIMARY KEY (login, label)
) WITHOUT ROWID;

-- The id of the last counter reset (users database, usage_reset) applied to this file:
-- its usage rows deleted and its audit record written, in one transaction with this row,
-- so a reset is audited once however often the milter restarts. Added in version 5
-- (migrations/state-005.sql).
CREATE TABLE reset_mark (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  reset_id INTEGER NOT NULL CHECK (reset_id >= 0)
);

PRAGMA user_version = 5;
