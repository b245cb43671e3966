-- smtp-relay state database on PostgreSQL, schema version 5 of the state kind (the
-- version is the 'state' row of relay_schema, kept by the connection core, sql/pgconn.c).
--
-- The same data as sql/state-schema.sql (usage, last_use, audit, with the same columns),
-- shared by every relay-milter of a cluster, plus `reservations`: what messages in flight
-- on any node have been admitted for and not yet counted (sql/admit.h). Times are unix
-- seconds (UTC) taken from the database clock (now()) for anything the nodes share
-- (usage, reservations); an audit record keeps the time its node decided.
-- Logins compare without regard to case, as in SQLite's COLLATE NOCASE: every lookup and
-- every unique key goes through lower(login).
-- Created through the connection core (relay-admin init, relay-milter at start) in one
-- transaction under an advisory lock, so two nodes starting together do not race. It may
-- share a database with the users schema (pg-schema.sql): no table names in common.
-- No crash-journal table: on PostgreSQL a message's count is committed before Postfix
-- hears "accept" (relay-milter(8)).

-- one row per login and second with traffic: the sliding windows are sums over these
CREATE TABLE usage (
  login      TEXT   NOT NULL,
  ts         BIGINT NOT NULL,
  messages   BIGINT NOT NULL DEFAULT 0 CHECK (messages >= 0),
  recipients BIGINT NOT NULL DEFAULT 0 CHECK (recipients >= 0),
  bytes      BIGINT NOT NULL DEFAULT 0 CHECK (bytes >= 0)
);
CREATE UNIQUE INDEX usage_login_ts ON usage (lower(login), ts);
CREATE INDEX usage_ts ON usage (ts);

CREATE TABLE last_use (
  login       TEXT   NOT NULL,
  ts          BIGINT NOT NULL,
  client_addr TEXT   NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX last_use_login ON last_use (lower(login));

CREATE TABLE audit (
  id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  ts          BIGINT NOT NULL,
  login       TEXT   NOT NULL,
  client_addr TEXT   NOT NULL,
  tls_version TEXT   NOT NULL,
  cipher      TEXT   NOT NULL,
  env_from    TEXT   NOT NULL,
  header_from TEXT   NOT NULL,
  rcpt_count  BIGINT NOT NULL,
  size        BIGINT NOT NULL,
  queue_id    TEXT   NOT NULL,
  verdict     TEXT   NOT NULL,
  reason      TEXT   NOT NULL,
  -- the app credential the message came through ('' = the login's own password); added
  -- in version 4 (migrations/pg-state-004.sql)
  credential  TEXT   NOT NULL DEFAULT ''
);
CREATE INDEX audit_ts ON audit (ts);
CREATE INDEX audit_login_ts ON audit (lower(login), ts);

-- admitted, not yet counted: one row per message in flight (MAIL's message and SIZE=, plus
-- one recipient per admitted RCPT). Committed into usage at end of message, deleted at
-- abort; a node that dies leaves its rows, which stop counting at expires_at (admission
-- ignores expired rows; prune deletes them).
CREATE TABLE reservations (
  id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  login      TEXT        NOT NULL,
  node       TEXT        NOT NULL,
  messages   BIGINT      NOT NULL DEFAULT 0 CHECK (messages >= 0),
  recipients BIGINT      NOT NULL DEFAULT 0 CHECK (recipients >= 0),
  bytes      BIGINT      NOT NULL DEFAULT 0 CHECK (bytes >= 0),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX reservations_login ON reservations (lower(login), expires_at);
CREATE INDEX reservations_expires ON reservations (expires_at);

-- relay-milter's metrics as running totals over every run of every node's milter: each
-- commit of a state writer adds what its in-memory counters gained since its last one
-- (names and labels as in sql/prom.c). `relay-admin metrics` prints them. Added in
-- version 3 (migrations/pg-state-003.sql).
CREATE TABLE counters (
  name  TEXT   NOT NULL,
  label TEXT   NOT NULL DEFAULT '',
  value BIGINT NOT NULL DEFAULT 0 CHECK (value >= 0),
  PRIMARY KEY (name, label)
);

-- The last use of each app credential, by login and label, as last_use is for logins.
-- Added in version 4 (migrations/pg-state-004.sql).
CREATE TABLE credential_use (
  login       TEXT   NOT NULL,
  label       TEXT   NOT NULL,
  ts          BIGINT NOT NULL,
  client_addr TEXT   NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX credential_use_login_label ON credential_use (lower(login), label);

-- The id of the last counter reset applied (as state-schema.sql's reset_mark), shared by
-- every node's writer. Added in version 5 (migrations/pg-state-005.sql).
CREATE TABLE reset_mark (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  reset_id BIGINT  NOT NULL CHECK (reset_id >= 0)
);
-- the one row from the start: a writer locks it (SELECT ... FOR UPDATE) before it decides
-- whether a reset still needs its audit record, so two nodes never both write it
INSERT INTO reset_mark (id, reset_id) VALUES (1, 0);
