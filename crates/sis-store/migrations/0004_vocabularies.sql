-- Hot-word vocabularies (SIS §10), per project. `contents` is the JSON array
-- of entries as the API accepted them; `version` counts changes (1 at
-- creation, one more per update), so a cached copy is checked by reading
-- that column alone; `seq` orders a project's vocabularies by creation.
-- Ids are never reused.
CREATE TABLE vocabularies (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    language TEXT NOT NULL,
    contents TEXT NOT NULL,
    version BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    UNIQUE (project_id, name)
);

-- A row per project that has created vocabularies: a creation updates its
-- project's row first, so creations of one project take turns and the
-- per-project limit holds with many servers creating at once; `creations`
-- counts them and gives each its `seq`.
CREATE TABLE vocabulary_locks (
    project_id TEXT PRIMARY KEY,
    creations BIGINT NOT NULL
);
