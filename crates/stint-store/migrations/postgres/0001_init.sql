-- stint schema v1 (PostgreSQL). Timestamps are unix seconds; ids are the prefixed base32 text
-- the core generates; `group_names` and `details` are JSON text, as on SQLite.

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    group_names    TEXT NOT NULL DEFAULT '[]',
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    password_hash  TEXT,
    totp_sealed    TEXT,
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    lookup      TEXT NOT NULL UNIQUE,
    secret_hash BYTEA NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Revoking all of a user's sessions and counting active ones only ever look at unrevoked rows.
CREATE INDEX sessions_live_by_user ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX sessions_live_by_expiry ON sessions (expires_at) WHERE revoked_at IS NULL;

CREATE TABLE codes (
    lookup      TEXT PRIMARY KEY,
    secret_hash BYTEA NOT NULL,
    purpose     TEXT NOT NULL CHECK (purpose IN ('enrollment', 'bootstrap')),
    user_id     TEXT REFERENCES users (id),
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    public         BYTEA NOT NULL,
    sealed_private TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    retired_at     BIGINT,
    verify_until   BIGINT
);

CREATE TABLE audit (
    seq       BIGINT PRIMARY KEY,
    at        BIGINT NOT NULL,
    event     TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    actor     TEXT NOT NULL,
    subject   TEXT NOT NULL,
    reason    TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);

-- The chain head, kept apart from the records so that truncating the log is detectable.
-- Every writer locks this one row (SELECT ... FOR UPDATE) to append, which keeps the chain
-- linear across replicas. seq 0 with the genesis hash means "no record yet".
CREATE TABLE audit_head (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);

INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
