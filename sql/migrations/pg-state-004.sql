-- smtp-relay state database on PostgreSQL: version 3 -> 4, as migrations/state-004.sql:
-- the audit record names the app credential a message came through (`credential`, '' for
-- the login's own password), and credential_use keeps each credential's last use, as
-- last_use does for logins (logins compare through lower(), as everywhere here). Run by
-- sql/pgconn.c inside the init's transaction: a failure leaves the schema at version 3.
ALTER TABLE audit ADD COLUMN credential TEXT NOT NULL DEFAULT '';
CREATE TABLE credential_use (
  login       TEXT   NOT NULL,
  label       TEXT   NOT NULL,
  ts          BIGINT NOT NULL,
  client_addr TEXT   NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX credential_use_login_label ON credential_use (lower(login), label);
