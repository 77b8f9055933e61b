-- stint schema v7 (sqlite): workloads (services as principals), the agent keys they
-- enrolled, and the one-time join tokens that enroll them. A workload's leases name it as
-- their subject (`workload:NAME`), so revoking them by holder needs that index.
CREATE TABLE workloads (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    disabled   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    -- roles and platform binding, as JSON
    body       TEXT NOT NULL
) STRICT;

CREATE TABLE workload_keys (
    kid         TEXT PRIMARY KEY,
    workload_id TEXT NOT NULL REFERENCES workloads (id),
    public      BLOB NOT NULL,
    enrolled_by TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;
CREATE INDEX workload_keys_by_workload ON workload_keys (workload_id);

CREATE TABLE join_tokens (
    lookup      TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    workload_id TEXT NOT NULL REFERENCES workloads (id),
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
) STRICT;
CREATE INDEX join_tokens_by_workload ON join_tokens (workload_id);

CREATE INDEX leases_by_subject ON leases (subject, expires_at);
