-- LangGraph checkpoints move into the native tables, so that one store holds
-- both and GetState, GetStateHistory, ListThreads, PruneThreads, the thread
-- TTL and DeleteThread see LangGraph threads too.
--
-- body_type/body: LangGraph's serialized checkpoint (without its channel
-- values, which are blobs like native ones) for checkpoints put through
-- CheckpointService; NULL for native checkpoints. run_id: the run that wrote a
-- LangGraph checkpoint (its metadata's run_id), for DeleteForRuns.
ALTER TABLE checkpoints ADD COLUMN body_type TEXT;
ALTER TABLE checkpoints ADD COLUMN body BLOB;
ALTER TABLE checkpoints ADD COLUMN run_id TEXT;
CREATE INDEX checkpoints_run_idx ON checkpoints (run_id) WHERE run_id IS NOT NULL;

INSERT OR IGNORE INTO threads (thread_id, created_at, updated_at, metadata, status)
SELECT DISTINCT thread_id, (julianday('now') - 2440587.5) * 86400.0,
    (julianday('now') - 2440587.5) * 86400.0, '{}', 'idle'
FROM lg_checkpoints;

INSERT OR IGNORE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,
    parent_checkpoint_id, channel_versions, metadata, created_at, body_type, body, run_id)
SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, channel_versions,
    metadata, (julianday('now') - 2440587.5) * 86400.0, type, checkpoint, run_id
FROM lg_checkpoints;

INSERT OR IGNORE INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
SELECT thread_id, checkpoint_ns, channel, version, type, blob FROM lg_blobs;

INSERT OR IGNORE INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,
    channel, type, blob, task_path)
SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, blob, task_path
FROM lg_writes;

DROP TABLE lg_writes;
DROP TABLE lg_blobs;
DROP TABLE lg_checkpoints;
