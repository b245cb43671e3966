-- smtp-relay users database: migration from schema version 2 to 3.
--
-- Run by sql/migrations.c inside relay-admin init's BEGIN IMMEDIATE: all or nothing.
-- Adds what schema.sql version 3 has beyond version 2, with the same text:
--   * credentials: app credentials, several named secrets per login (relay-admin user
--     credential add/list/revoke), each with its own authentication name;
--   * credentials_name_free, logins_name_free: one namespace for logins and credentials,
--     so an authentication name always means exactly one thing.
-- Nothing existing is changed: logins, senders and limits stay as they are.

CREATE TABLE credentials (
    id           INTEGER PRIMARY KEY,
    login_id     INTEGER NOT NULL REFERENCES logins(id) ON DELETE CASCADE,
    label        TEXT    NOT NULL CHECK (length(label) BETWEEN 1 AND 32
                                         AND label NOT GLOB '*[^a-z0-9-]*'),
    authname     TEXT    NOT NULL COLLATE NOCASE UNIQUE
                                 CHECK (length(authname) BETWEEN 1 AND 255),
    plain_secret BLOB    NOT NULL CHECK (typeof(plain_secret) = 'blob'
                                         AND length(plain_secret) = 33),
    scram_sha256 TEXT    NOT NULL CHECK (scram_sha256 LIKE 'SCRAM-SHA-256$%'),
    created_at   INTEGER NOT NULL,
    UNIQUE (login_id, label)
);

CREATE TRIGGER credentials_name_free BEFORE INSERT ON credentials
WHEN EXISTS (SELECT 1 FROM logins WHERE name = NEW.authname)
BEGIN
    SELECT RAISE(ABORT, 'authentication name taken by a login');
END;

CREATE TRIGGER logins_name_free BEFORE INSERT ON logins
WHEN EXISTS (SELECT 1 FROM credentials WHERE authname = NEW.name)
BEGIN
    SELECT RAISE(ABORT, 'login name taken by an app credential');
END;

PRAGMA user_version = 3;
