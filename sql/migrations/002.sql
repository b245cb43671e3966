-- smtp-relay users database: migration from schema version 1 to 2.
--
-- Run by sql/migrations.c inside relay-admin init's BEGIN IMMEDIATE: all or nothing.
-- Adds what schema.sql version 2 has beyond version 1, with the same text:
--   * site_secret: the per-database decoy key for SCRAM-SHA-256 (relaydb(8)), drawn here
--     from SQLite's CSPRNG, so every database (and every migrated one) gets its own;
--   * limits_per_login_max: at most RDB_LIMITS_MAX (32) limit rows per login_id.
-- Logins, senders and limits are left as they are: a v1 file that already holds more than
-- 32 limit rows for one login keeps them (the trigger only refuses new rows), so the
-- migration never fails on data relay-admin wrote.

CREATE TRIGGER limits_per_login_max BEFORE INSERT ON limits
WHEN (SELECT count(*) FROM limits WHERE login_id = NEW.login_id) >= 32
BEGIN
    SELECT RAISE(ABORT, 'too many limit rows for one login (max 32)');
END;

CREATE TABLE site_secret (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    decoy_key BLOB    NOT NULL CHECK (typeof(decoy_key) = 'blob' AND length(decoy_key) = 32)
);
INSERT INTO site_secret (id, decoy_key) VALUES (1, randomblob(32));

PRAGMA user_version = 2;
