-- stint schema v6 (postgres): leases on credential backends (AWS, PostgreSQL, SSH), the SSH
-- certificate authority's key, and named locks (one reaper among replicas).
CREATE TABLE leases (
    id            TEXT PRIMARY KEY,
    backend       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    user_id       TEXT REFERENCES users (id),
    subject       TEXT NOT NULL,
    role          TEXT NOT NULL,
    session_id    TEXT,
    grant_id      TEXT,
    external_id   TEXT NOT NULL,
    issued_at     BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT,
    revoke_reason TEXT,
    ended_at      BIGINT,
    -- The reaper failed to end it; it tries again from then on.
    retry_at      BIGINT
);

CREATE INDEX leases_by_user ON leases (user_id, issued_at);
CREATE INDEX leases_by_session ON leases (session_id);
CREATE INDEX leases_by_grant ON leases (grant_id);
-- What the reaper scans: leases not ended yet.
CREATE INDEX leases_open ON leases (expires_at) WHERE ended_at IS NULL;

CREATE TABLE ssh_ca (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    kid            TEXT NOT NULL,
    public         BYTEA NOT NULL,
    sealed_private TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE locks (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    held_until BIGINT NOT NULL
);
