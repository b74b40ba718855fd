-- Durable sleep: an active run whose entrypoint sleeps has no owner
-- (owner_id '') and the due time of its earliest timer, on the service's
-- timer clock; any replica claims it once due and resumes it. NULL for every
-- other run.
ALTER TABLE runs ADD COLUMN wake_at DOUBLE PRECISION;
CREATE INDEX runs_wake_idx ON runs (wake_at) WHERE wake_at IS NOT NULL;
