-- Namespaces (DESIGN.md 8.2). A thread of namespace `ns` is stored under the
-- key `ns || char(31) || id`, a thread of `default` under its id as before
-- (cairn_server/namespaces.py), so the namespace is derived from the key and
-- can never disagree with it. The column lets a namespace's threads be listed
-- newest first through an index.
ALTER TABLE threads ADD COLUMN namespace TEXT GENERATED ALWAYS AS (
  CASE WHEN instr(thread_id, char(31)) > 0
    THEN substr(thread_id, 1, instr(thread_id, char(31)) - 1)
    ELSE 'default' END
) VIRTUAL;
CREATE INDEX threads_namespace_idx ON threads (namespace, created_at, thread_id);
