-- Namespaces (DESIGN.md 8.2). A thread of namespace `ns` is stored under the
-- key `ns || chr(31) || id`, a thread of `default` under its id as before
-- (cairn_server/namespaces.py), so the namespace is derived from the key and
-- can never disagree with it. The column lets a namespace's threads be listed
-- newest first through an index.
ALTER TABLE threads ADD COLUMN namespace TEXT GENERATED ALWAYS AS (
  CASE WHEN strpos(thread_id, chr(31)) > 0
    THEN split_part(thread_id, chr(31), 1)
    ELSE 'default' END
) STORED;
CREATE INDEX threads_namespace_idx ON threads (namespace, created_at, thread_id);
