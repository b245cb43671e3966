-- smtp-relay users database on PostgreSQL: migration from schema version 3 to 4 (the
-- 'users' row of relay_schema, which the core then sets to 4), as migrations/004.sql:
-- usage_reset, the counter resets relay-admin `usage reset` asks for; every relay-milter
-- applies a new row on its next policy refresh (users_generation tells it). An identity
-- column: ids never come back, they are the milters' mark. Run by sql/pgconn.c inside
-- relay-admin init's transaction: all or nothing. Self-contained (relay_users_bump is
-- version 2's). The milter's and relay-admin's roles need `relay-admin grants` again.

CREATE TABLE usage_reset (
    id      bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    login   text    NOT NULL CHECK (length(login) BETWEEN 1 AND 255),
    metrics integer NOT NULL CHECK (metrics BETWEEN 1 AND 7),
    ts      bigint  NOT NULL,
    admin   text    NOT NULL CHECK (length(admin) <= 48)
);
-- a new reset is a change every relay-milter must see at its next policy refresh
CREATE TRIGGER usage_reset_bump AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON usage_reset
    FOR EACH STATEMENT EXECUTE FUNCTION relay_users_bump();
