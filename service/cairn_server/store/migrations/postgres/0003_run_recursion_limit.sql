-- A graph run's recursion limit (supersteps per run), kept for its recovery.
ALTER TABLE runs ADD COLUMN recursion_limit INTEGER NOT NULL DEFAULT 25;
