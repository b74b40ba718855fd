-- The thread TTL sweep looks for the threads updated longest ago.
CREATE INDEX threads_updated_idx ON threads (updated_at, thread_id);
