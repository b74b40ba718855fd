-- ListRuns without a thread pages through the runs of a namespace's threads,
-- newest first, and Studio asks for those that wait (on a worker or a retry).
-- A run's namespace is its thread key's, derived as threads.namespace is
-- (0008). An index on the expression, not a stored column: adding one would
-- rewrite the whole runs table. Queries must spell the expression as
-- _postgres_sql.RUN_NAMESPACE does for Postgres to use these indexes.
CREATE INDEX runs_namespace_idx ON runs ((
  CASE WHEN strpos(thread_id, chr(31)) > 0
    THEN split_part(thread_id, chr(31), 1)
    ELSE 'default' END
), run_id);
-- The few runs that wait now (a finished run waits on nothing).
CREATE INDEX runs_waiting_idx ON runs ((
  CASE WHEN strpos(thread_id, chr(31)) > 0
    THEN split_part(thread_id, chr(31), 1)
    ELSE 'default' END
), run_id) WHERE waiting <> '[]';
