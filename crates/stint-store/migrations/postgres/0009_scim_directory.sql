-- stint schema v9 (PostgreSQL): what an identity provider provisioned through SCIM beyond the
-- users table: the ids that match a person to their sign-in, and the provider's groups.

-- One row per person the provider described; `email` is lowercased by the core.
CREATE TABLE scim_profiles (
    user_id     TEXT PRIMARY KEY REFERENCES users (id),
    external_id TEXT,
    email       TEXT,
    updated_at  BIGINT NOT NULL
);

-- `members` is the JSON array of the member user ids, written and read whole.
CREATE TABLE scim_groups (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL UNIQUE,
    external_id  TEXT,
    members      TEXT NOT NULL DEFAULT '[]',
    created_at   BIGINT NOT NULL
);
