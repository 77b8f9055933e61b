-- stint schema v11 (postgres): accounts that end by themselves (contractors, vendors), with the person
-- who vouches for them, alerted once before the end.
ALTER TABLE users ADD COLUMN expires_at BIGINT;
ALTER TABLE users ADD COLUMN sponsor TEXT REFERENCES users (id);
ALTER TABLE users ADD COLUMN expiry_alerted_at BIGINT;
