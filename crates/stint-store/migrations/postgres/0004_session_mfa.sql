-- stint schema v4 (PostgreSQL): how each session's login showed a second factor, for policies
-- (context.mfa). Sessions from before this migration show the empty string.
ALTER TABLE sessions ADD COLUMN mfa TEXT NOT NULL DEFAULT '';
