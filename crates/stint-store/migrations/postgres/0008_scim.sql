-- stint schema v8 (postgres): the bearer tokens identity providers provision through (SCIM).
-- Stored as lookup + SHA-256 of the secret; a name is taken by one live token at a time.
CREATE TABLE scim_tokens (
    lookup      TEXT PRIMARY KEY,
    secret_hash BYTEA NOT NULL,
    name        TEXT NOT NULL,
    created_by  TEXT NOT NULL REFERENCES users (id),
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE UNIQUE INDEX scim_tokens_live_name ON scim_tokens (name) WHERE revoked_at IS NULL;
