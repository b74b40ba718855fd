-- Cairn's first Postgres schema: the same tables as SQLite's 0001, after
-- LangGraph's Postgres saver layout.
-- Ids, channels and versions compare byte by byte (COLLATE "C"), as in SQLite,
-- so UUIDv7 ids sort by creation whatever the database's locale.
-- Metadata columns are jsonb so that filters compare JSON values; every other
-- JSON column is text and keeps exactly what was written (key order included).
-- Forward-only: never edit or renumber this file once released; add 0002_*.sql.

CREATE TABLE threads (
    thread_id TEXT COLLATE "C" PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    -- The request_id of the CreateThread call that made it, for retries.
    request_id TEXT NOT NULL DEFAULT ''
);

-- list_threads pages newest first, with or without a status filter.
CREATE INDEX threads_created_idx ON threads (created_at, thread_id);
CREATE INDEX threads_status_created_idx ON threads (status, created_at, thread_id);

CREATE TABLE runs (
    run_id TEXT COLLATE "C" PRIMARY KEY,
    thread_id TEXT COLLATE "C" NOT NULL,
    target TEXT NOT NULL,
    state TEXT NOT NULL,
    durability TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    checkpoint_id TEXT COLLATE "C" NOT NULL,
    metadata JSONB NOT NULL DEFAULT '{}',
    stream_modes TEXT NOT NULL DEFAULT '[]',
    request_id TEXT NOT NULL DEFAULT '',
    has_output BOOLEAN NOT NULL DEFAULT FALSE,
    output TEXT,
    interrupts TEXT NOT NULL DEFAULT '[]',
    error TEXT,
    -- A fingerprint of the start request, to tell a retry from a reused request_id.
    request_hash TEXT NOT NULL DEFAULT ''
);

CREATE INDEX runs_thread_idx ON runs (thread_id, run_id);
-- A retried request finds the run it started (AIP-155); '' means no request id.
CREATE UNIQUE INDEX runs_request_idx ON runs (thread_id, request_id) WHERE request_id <> '';
-- Recovery at startup scans only the active runs.
CREATE INDEX runs_active_idx ON runs (created_at, run_id) WHERE state IN ('pending', 'running');

CREATE TABLE checkpoints (
    thread_id TEXT COLLATE "C" NOT NULL,
    checkpoint_ns TEXT COLLATE "C" NOT NULL DEFAULT '',
    checkpoint_id TEXT COLLATE "C" NOT NULL,
    parent_checkpoint_id TEXT COLLATE "C",
    channel_versions JSONB NOT NULL DEFAULT '{}',
    metadata JSONB NOT NULL DEFAULT '{}',
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
);

-- One row per (channel, version): a checkpoint that leaves a channel unchanged
-- points at the blob an earlier checkpoint stored.
CREATE TABLE checkpoint_blobs (
    thread_id TEXT COLLATE "C" NOT NULL,
    checkpoint_ns TEXT COLLATE "C" NOT NULL DEFAULT '',
    channel TEXT COLLATE "C" NOT NULL,
    version TEXT COLLATE "C" NOT NULL,
    type TEXT NOT NULL,
    blob BYTEA,
    PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
);

CREATE TABLE checkpoint_writes (
    thread_id TEXT COLLATE "C" NOT NULL,
    checkpoint_ns TEXT COLLATE "C" NOT NULL DEFAULT '',
    checkpoint_id TEXT COLLATE "C" NOT NULL,
    task_id TEXT COLLATE "C" NOT NULL,
    idx INTEGER NOT NULL,
    channel TEXT NOT NULL,
    type TEXT NOT NULL,
    blob BYTEA,
    task_path TEXT COLLATE "C" NOT NULL DEFAULT '',
    PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
);

CREATE TABLE run_events (
    run_id TEXT COLLATE "C" NOT NULL,
    event_id BIGINT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (run_id, event_id)
);

CREATE TABLE targets (
    name TEXT PRIMARY KEY,
    registered_at DOUBLE PRECISION NOT NULL
);

-- Graph specs registered by workers (JSON), so that a restarted server can
-- resume graph runs before any worker reconnects.
CREATE TABLE graphs (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    registered_at DOUBLE PRECISION NOT NULL
);
