-- stint schema v1 (SQLite). Timestamps are unix seconds; ids are the prefixed base32 text
-- the core generates; `group_names` and `details` are JSON text.

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    group_names    TEXT NOT NULL DEFAULT '[]',
    disabled       INTEGER NOT NULL DEFAULT 0,
    password_hash  TEXT,
    totp_sealed    TEXT,
    totp_last_step INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    lookup      TEXT NOT NULL UNIQUE,
    secret_hash BLOB NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

-- Revoking all of a user's sessions and counting active ones only ever look at unrevoked rows.
CREATE INDEX sessions_live_by_user ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_live_by_expiry ON sessions (expires_at) WHERE revoked_at IS NULL;

CREATE TABLE codes (
    lookup      TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    purpose     TEXT NOT NULL CHECK (purpose IN ('enrollment', 'bootstrap')),
    user_id     TEXT REFERENCES users (id),
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;

CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    public         BLOB NOT NULL,
    sealed_private TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    retired_at     INTEGER,
    verify_until   INTEGER
) STRICT;

CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    event     TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    actor     TEXT NOT NULL,
    subject   TEXT NOT NULL,
    reason    TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
) STRICT;

-- The chain head, kept apart from the records so that truncating the log is detectable.
-- seq 0 with the genesis hash means "no record yet".
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
) STRICT;

INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
