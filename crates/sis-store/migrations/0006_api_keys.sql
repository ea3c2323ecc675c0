-- API keys of the OpenAI-compatible endpoints (`Authorization: Bearer KEY`),
-- each mapped by an operator to one project (`sisd api-keys create`). Only
-- the key's SHA-256 is kept; `id` is its public prefix, for listing and
-- revoking.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    description TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);
