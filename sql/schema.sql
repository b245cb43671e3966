-- smtp-relay users database, schema version 4 (PRAGMA user_version = 4).
--
-- Written only by relay-admin; read by the relaydb SASL plugin and relay-milter.
-- Never holds a cleartext password. Times are unix seconds (UTC).
-- The application_id marks the file as ours so that a foreign SQLite file is refused.
-- Migrations: sql/migrations.c applies sql/migrations/NNN.sql (version NNN-1 to NNN) in one
-- transaction; a file made from this text is already at the version below.

PRAGMA application_id = 1919706212;  -- 0x726C7964, "rlyd"

CREATE TABLE logins (
    id                  INTEGER PRIMARY KEY,
    name                TEXT    NOT NULL COLLATE NOCASE UNIQUE
                                CHECK (length(name) BETWEEN 1 AND 255),
    enabled             INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    expires_at          INTEGER CHECK (expires_at IS NULL OR typeof(expires_at) = 'integer'),
    note                TEXT    NOT NULL DEFAULT '' CHECK (length(note) <= 1024),
    -- cmusaslsecretPLAIN: salt[16] || 0x00 || MD5(salt || "sasldb" || password)
    plain_secret        BLOB    NOT NULL CHECK (typeof(plain_secret) = 'blob'
                                                AND length(plain_secret) = 33),
    -- SCRAM-SHA-256$<iter>:<b64 salt>$<b64 StoredKey>:<b64 ServerKey>
    scram_sha256        TEXT    CHECK (scram_sha256 IS NULL OR scram_sha256 LIKE 'SCRAM-SHA-256$%'),
    source              TEXT    NOT NULL DEFAULT 'admin' CHECK (source IN ('admin', 'sasldb')),
    -- milter policy knobs, per login
    rate_exempt         INTEGER NOT NULL DEFAULT 0 CHECK (rate_exempt IN (0, 1)),
    hold_over_limit     INTEGER NOT NULL DEFAULT 0 CHECK (hold_over_limit IN (0, 1)),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    password_changed_at INTEGER NOT NULL
);

-- Allowed senders: `local@domain` (exact) or `@domain` (any address in that domain), or
-- `<>` for the null sender. Stored lowercase.
CREATE TABLE senders (
    login_id INTEGER NOT NULL REFERENCES logins(id) ON DELETE CASCADE,
    pattern  TEXT    NOT NULL CHECK (length(pattern) BETWEEN 1 AND 255),
    PRIMARY KEY (login_id, pattern)
) WITHOUT ROWID;

-- Rate limits: max_count of `metric` per sliding window of window_seconds.
-- login_id 0 holds the defaults; a login with any row for a metric uses its own rows for
-- that metric instead of the defaults. (No foreign key because of the 0 row; a trigger
-- removes a deleted login's rows.)
CREATE TABLE limits (
    login_id       INTEGER NOT NULL,
    metric         TEXT    NOT NULL CHECK (metric IN ('messages', 'recipients', 'bytes')),
    window_seconds INTEGER NOT NULL CHECK (window_seconds BETWEEN 1 AND 31622400),
    max_count      INTEGER NOT NULL CHECK (max_count >= 0),
    PRIMARY KEY (login_id, metric, window_seconds)
) WITHOUT ROWID;

CREATE TRIGGER logins_delete_limits AFTER DELETE ON logins
BEGIN
    DELETE FROM limits WHERE login_id = OLD.id;
END;

-- At most RDB_LIMITS_MAX (sql/policy.h) limit rows per login_id (test-rdb keeps them equal).
CREATE TRIGGER limits_per_login_max BEFORE INSERT ON limits
WHEN (SELECT count(*) FROM limits WHERE login_id = NEW.login_id) >= 32
BEGIN
    SELECT RAISE(ABORT, 'too many limit rows for one login (max 32)');
END;

-- decoy_key (random, per database) derives the SCRAM verifier handed out for a login that
-- must not authenticate, so SCRAM's first answer does not tell which logins exist.
CREATE TABLE site_secret (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    decoy_key BLOB    NOT NULL CHECK (typeof(decoy_key) = 'blob' AND length(decoy_key) = 32)
);
INSERT INTO site_secret (id, decoy_key) VALUES (1, randomblob(32));

-- App credentials (relay-admin user credential add/list/revoke): more secrets for a
-- login, one per app or device, each revocable alone. A client authenticates with the
-- credential's own authentication name (`authname`: LOGIN+LABEL, or local+LABEL@domain
-- for local@domain) and its generated secret; everything else (senders, limits, usage,
-- enabled, expiry) is the login's. Secrets in the same two forms as the login's own.
-- Added in version 3 (migrations/003.sql).
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

-- Logins and credentials share one namespace of authentication names (relay-admin checks
-- first and says so; these keep it true whatever writes the file).
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

-- Counter resets (relay-admin usage reset, version 4): usage of `login` counted at or
-- before `ts` no longer counts for the metrics in `metrics` (bits 1 << enum rdb_metric:
-- 1 messages, 2 recipients, 4 bytes). relay-milter applies a new row on its next policy
-- refresh (clears its in-memory windows, deletes the state database's rows, writes an
-- audit record); it and relay-admin usage also filter persisted rows with it, so nothing
-- brings the old counts back. `admin` is who asked (for the audit record). AUTOINCREMENT:
-- ids never come back, they are the milter's mark. Rows older than the longest possible
-- window (RDB_WINDOW_MAX) are deleted by relay-admin when it adds one.
CREATE TABLE usage_reset (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    login   TEXT    NOT NULL COLLATE NOCASE CHECK (length(login) BETWEEN 1 AND 255),
    metrics INTEGER NOT NULL CHECK (metrics BETWEEN 1 AND 7),
    ts      INTEGER NOT NULL,
    admin   TEXT    NOT NULL CHECK (length(admin) <= 48)
);

PRAGMA user_version = 4;
