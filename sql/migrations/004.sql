-- smtp-relay users database: migration from schema version 3 to 4.
--
-- Run by sql/migrations.c inside relay-admin init's BEGIN IMMEDIATE: all or nothing.
-- Adds usage_reset, the counter resets relay-admin `usage reset` asks for (see schema.sql):
-- relay-milter reads them on its next policy refresh. Nothing else changes.

CREATE TABLE usage_reset (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    login   TEXT    NOT NULL COLLATE NOCASE CHECK (length(login) BETWEEN 1 AND 255),
    metrics INTEGER NOT NULL CHECK (metrics BETWEEN 1 AND 7),
    ts      INTEGER NOT NULL,
    admin   TEXT    NOT NULL CHECK (length(admin) <= 48)
);

PRAGMA user_version = 4;
