-- stint schema v10 (SQLite): the refresh token an SSO login got from its provider, bound to
-- the session the login became, so stint can ask the provider during the session whether it
-- still vouches for the person. The token is sealed with the master key; a revoked or
-- expired session's row is deleted.
CREATE TABLE sso_refresh (
    session_id     TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    subject        TEXT NOT NULL,
    refresh_sealed TEXT NOT NULL,
    validated_at   INTEGER NOT NULL,
    checked_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX sso_refresh_by_check ON sso_refresh (checked_at);
