-- smtp-relay state database on PostgreSQL: version 2 -> 3, as migrations/state-003.sql:
-- counters, relay-milter's persisted metrics (what `relay-admin metrics` prints; names from
-- sql/prom.c), here the totals of every node (each writer adds what its process gained).
-- Self-contained: only creates its own table. Run by sql/pgconn.c inside the init's
-- transaction: a failure leaves the schema at version 2.
CREATE TABLE counters (
  name  TEXT   NOT NULL,
  label TEXT   NOT NULL DEFAULT '',
  value BIGINT NOT NULL DEFAULT 0 CHECK (value >= 0),
  PRIMARY KEY (name, label)
);
