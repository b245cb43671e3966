-- smtp-relay state database: version 3 -> 4. App credentials (users database version 3):
-- the audit record names the credential a message came through (`credential`, '' for the
-- login's own password), and credential_use keeps each credential's last use, as
-- last_use does for logins. Run by sql/migrations.c inside the caller's BEGIN IMMEDIATE:
-- a failure leaves the file at version 3.
ALTER TABLE audit ADD COLUMN credential TEXT NOT NULL DEFAULT '';
CREATE TABLE credential_use (
  login       TEXT    NOT NULL COLLATE NOCASE,
  label       TEXT    NOT NULL,
  ts          INTEGER NOT NULL,
  client_addr TEXT    NOT NULL DEFAULT '',
  PRIMARY KEY (login, label)
) WITHOUT ROWID;

PRAGMA user_version = 4;
