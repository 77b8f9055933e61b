-- stint schema v8 (sqlite): the bearer tokens identity providers provision through (SCIM).
-- Stored as lookup + SHA-256 of the secret; a name is taken by one live token at a time.
CREATE TABLE scim_tokens (
    lookup      TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    name        TEXT NOT NULL,
    created_by  TEXT NOT NULL REFERENCES users (id),
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

CREATE UNIQUE INDEX scim_tokens_live_name ON scim_tokens (name) WHERE revoked_at IS NULL;
