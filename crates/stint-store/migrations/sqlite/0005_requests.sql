-- stint schema v5 (SQLite): requests for roles (admin through approval) and the
-- time-boxed grants they become. Columns the store looks up or guards on; the rest is the
-- JSON `body`, written and read whole by the core's model.
CREATE TABLE role_requests (
    id           TEXT PRIMARY KEY,
    requester_id TEXT NOT NULL REFERENCES users (id),
    role         TEXT NOT NULL,
    status       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    body         TEXT NOT NULL
) STRICT;

CREATE INDEX role_requests_by_requester ON role_requests (requester_id, role);
CREATE INDEX role_requests_by_status ON role_requests (status, created_at);
