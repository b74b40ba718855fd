-- What an active run waits on (a JSON list of runtime/waiting.py's records:
-- reason, task id and name, since, until), rewritten only when it changes.
ALTER TABLE runs ADD COLUMN waiting TEXT NOT NULL DEFAULT '[]';
