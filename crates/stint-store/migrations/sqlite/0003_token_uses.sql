-- stint schema v3 (SQLite): CI tokens already exchanged, so none is accepted twice.
-- `key` is the SHA-256 (hex) of the issuer and the token's jti (or of the whole token when it
-- has no jti); a row lives until the token expires, then housekeeping deletes it.
CREATE TABLE token_uses (
    key        TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX token_uses_by_expiry ON token_uses (expires_at);
