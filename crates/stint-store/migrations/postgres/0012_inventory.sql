-- stint schema v12 (postgres): snapshots of an AWS account's long-lived credentials (IAM's credential
-- report), kept so the report can show their trend. One per account and generation time.
CREATE TABLE inventory_snapshots (
    source       TEXT NOT NULL,
    account      TEXT NOT NULL,
    generated_at BIGINT NOT NULL,
    imported_at  BIGINT NOT NULL,
    imported_by  TEXT NOT NULL,
    users        TEXT NOT NULL,
    PRIMARY KEY (source, account, generated_at)
);

CREATE INDEX inventory_snapshots_generated ON inventory_snapshots (generated_at);
