-- LangGraph checkpoints move into the native tables, so that one store holds
-- both and GetState, GetStateHistory, ListThreads, PruneThreads, the thread
-- TTL and DeleteThread see LangGraph threads too. (No Postgres server stored
-- rows in the lg_* tables: their methods were not implemented on Postgres.)
--
-- body_type/body: LangGraph's serialized checkpoint (without its channel
-- values, which are blobs like native ones) for checkpoints put through
-- CheckpointService; NULL for native checkpoints. run_id: the run that wrote a
-- LangGraph checkpoint (its metadata's run_id), for DeleteForRuns.
ALTER TABLE checkpoints ADD COLUMN body_type TEXT;
ALTER TABLE checkpoints ADD COLUMN body BYTEA;
ALTER TABLE checkpoints ADD COLUMN run_id TEXT COLLATE "C";
CREATE INDEX checkpoints_run_idx ON checkpoints (run_id) WHERE run_id IS NOT NULL;

DROP TABLE lg_writes;
DROP TABLE lg_blobs;
DROP TABLE lg_checkpoints;
