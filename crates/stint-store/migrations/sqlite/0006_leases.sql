-- stint schema v6 (sqlite): leases on credential backends (AWS, PostgreSQL, SSH), the SSH
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
    issued_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER,
    revoke_reason TEXT,
    ended_at      INTEGER,
    -- The reaper failed to end it; it tries again from then on.
    retry_at      INTEGER
) STRICT;

CREATE INDEX leases_by_user ON leases (user_id, issued_at);
CREATE INDEX leases_by_session ON leases (session_id);
CREATE INDEX leases_by_grant ON leases (grant_id);
-- What the reaper scans: leases not ended yet.
CREATE INDEX leases_open ON leases (expires_at) WHERE ended_at IS NULL;

CREATE TABLE ssh_ca (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    kid            TEXT NOT NULL,
    public         BLOB NOT NULL,
    sealed_private TEXT NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE locks (
    name   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    held_until INTEGER NOT NULL
) STRICT;
