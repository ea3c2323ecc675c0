-- Quotas set by operators (`sisd quotas set`). A row per scope: a project
-- id, `*` (every project without a row of its own) or `all` (the whole
-- service, every project together). A NULL limit is no limit.
CREATE TABLE quotas (
    scope TEXT PRIMARY KEY,
    sessions BIGINT,
    jobs BIGINT,
    rps BIGINT,
    updated_ms BIGINT NOT NULL
);

-- Real-time sessions open on any node: a lease per session, renewed by the
-- node that holds it and deleted when the session ends; a node that dies
-- leaves leases that expire.
CREATE TABLE session_leases (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    node TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX session_leases_by_project ON session_leases (project_id, expires_ms);
CREATE INDEX session_leases_by_node ON session_leases (node);

-- A row per scope whose sessions are admitted: an admission updates it
-- first, so admissions of one scope take turns on every node.
CREATE TABLE quota_turns (
    scope TEXT PRIMARY KEY,
    n BIGINT NOT NULL
);

-- Requests per scope and second, for the `rps` limits (old seconds purged).
CREATE TABLE request_counts (
    scope TEXT NOT NULL,
    second BIGINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (scope, second)
);
