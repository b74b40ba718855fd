-- ListRuns without a thread pages through the runs of a namespace's threads,
-- newest first, and Studio asks for those that wait (on a worker or a retry).
-- A run's namespace is its thread key's, derived as threads.namespace is
-- (0008); the column is virtual, so nothing is rewritten or stored, and the
-- index holds it. With it a page costs its own size however many runs any
-- namespace holds (through threads_namespace_idx, a namespace with many runs
-- had all of them sorted for every page; with statistics, SQLite scanned
-- every run of every namespace instead).
ALTER TABLE runs ADD COLUMN namespace TEXT GENERATED ALWAYS AS (
  CASE WHEN instr(thread_id, char(31)) > 0
    THEN substr(thread_id, 1, instr(thread_id, char(31)) - 1)
    ELSE 'default' END
) VIRTUAL;
CREATE INDEX runs_namespace_idx ON runs (namespace, run_id);
-- The few runs that wait now (a finished run waits on nothing); queries
-- repeat the condition word for word so that SQLite picks the index.
CREATE INDEX runs_waiting_idx ON runs (namespace, run_id) WHERE waiting <> '[]';
