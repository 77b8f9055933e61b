-- stint schema v13 (postgres): what the report (`stint report`, GET /v1/report) reads by time: the
-- audit records of a period, and the leases issued in it.
CREATE INDEX audit_by_time ON audit (at);
CREATE INDEX leases_by_issue ON leases (issued_at);
