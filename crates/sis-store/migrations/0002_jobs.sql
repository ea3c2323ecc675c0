-- Recorded-file transcription jobs (SIS §7) and their result callbacks.
-- A job is leased by one worker at a time (lease_owner is a random token per
-- lease, lease_until a heartbeat deadline); a job whose lease ran out is
-- leased again. Results are written only by the current lease holder.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    started_ms BIGINT,
    finished_ms BIGINT,
    expires_ms BIGINT,
    lease_owner TEXT,
    lease_until BIGINT,
    attempts BIGINT NOT NULL,
    result TEXT,
    error TEXT
);
CREATE INDEX jobs_queue ON jobs (status, created_ms);
CREATE INDEX jobs_project ON jobs (project_id, id);

CREATE TABLE callbacks (
    job_id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_ms BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    delivered_ms BIGINT,
    last_error TEXT
);
CREATE INDEX callbacks_due ON callbacks (delivered_ms, next_ms);
