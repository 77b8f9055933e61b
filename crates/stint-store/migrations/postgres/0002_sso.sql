-- stint schema v2 (PostgreSQL): single sign-on through OpenID Connect providers.

-- A person's identity at a provider, linked to the stint user it logs in as.
CREATE TABLE identities (
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id),
    email         TEXT,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);

CREATE INDEX identities_by_user ON identities (user_id);

-- SSO logins in progress. The columns the store looks up or guards on are columns; the
-- rest of the attempt is the JSON `body`, written and read whole by the core's model.
CREATE TABLE sso_attempts (
    id             TEXT PRIMARY KEY,
    state_lookup   TEXT NOT NULL UNIQUE,
    code_lookup    TEXT UNIQUE,
    user_code_hash TEXT,
    status         TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    body           TEXT NOT NULL
);

CREATE INDEX sso_attempts_by_user_code ON sso_attempts (user_code_hash) WHERE user_code_hash IS NOT NULL;
CREATE INDEX sso_attempts_by_expiry ON sso_attempts (expires_at);
