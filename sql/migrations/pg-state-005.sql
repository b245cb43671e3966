-- smtp-relay state database on PostgreSQL: version 4 -> 5, as migrations/state-005.sql:
-- reset_mark, the id of the last counter reset (users database, usage_reset) applied to
-- this database (its usage rows zeroed and its audit record written in one transaction
-- with this row), shared by every node. Run by sql/pgconn.c inside the init's
-- transaction: a failure leaves the schema at version 4.
CREATE TABLE reset_mark (
  id       INTEGER PRIMARY KEY CHECK (id = 1),
  reset_id BIGINT  NOT NULL CHECK (reset_id >= 0)
);
-- the one row from the start: a writer locks it (SELECT ... FOR UPDATE) before it decides
-- whether a reset still needs its audit record, so two nodes never both write it
INSERT INTO reset_mark (id, reset_id) VALUES (1, 0);
