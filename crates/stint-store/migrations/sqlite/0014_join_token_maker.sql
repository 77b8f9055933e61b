-- stint schema v14 (sqlite): who made each join token, so that disabling that administrator expires the
-- unused ones (they may have kept a copy). Tokens made before v14 name nobody.
ALTER TABLE join_tokens ADD COLUMN created_by TEXT;
