-- Leases: the replica that drives each active run (owner_id, '' when none)
-- and the fencing token its writes must carry; a new owner bumps the token, so
-- a replica that lost a run can no longer write to it.
ALTER TABLE runs ADD COLUMN owner_id TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN lease_token BIGINT NOT NULL DEFAULT 0;
-- A stop asked of the run's owner by another replica: '' or 'cancel'.
ALTER TABLE runs ADD COLUMN stop_request TEXT NOT NULL DEFAULT '';
CREATE INDEX runs_owner_idx ON runs (owner_id, run_id) WHERE state IN ('pending', 'running');
-- Each replica renews its row while it lives; runs of a replica whose row
-- expired are taken over by another.
CREATE TABLE replicas (
    replica_id TEXT COLLATE "C" PRIMARY KEY,
    address TEXT NOT NULL DEFAULT '',
    started_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
