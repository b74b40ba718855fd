-- The long-term memory store (StoreService, cairn_server/memory): LangGraph's
-- BaseStore items, each in one Cairn namespace (`scope`).
-- `path` is the item's namespace path, each label followed by "." (labels
-- never contain one): ("a", "b") is 'a.b.', so the paths under a prefix are
-- one range of the primary key, and ("a", "bc") is never under ("a", "b").
-- `value` is the JSON object as written. Times are seconds since the epoch;
-- `ttl` (seconds) is kept so that reads can move `expires_at` to now + ttl.
CREATE TABLE memory_items (
    scope TEXT NOT NULL,
    path TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    expires_at REAL,
    ttl REAL,
    PRIMARY KEY (scope, path, key)
);

-- A search without a prefix lists a scope's items newest update first.
CREATE INDEX memory_items_updated_idx ON memory_items (scope, updated_at);

-- The sweep deletes expired items of every scope, soonest first.
CREATE INDEX memory_items_expires_idx ON memory_items (expires_at)
    WHERE expires_at IS NOT NULL;

-- The embeddings the caller computed for an item's fields, one per `field`
-- (LangGraph's path syntax), as little-endian float32 with their Euclidean
-- norm; deleted with the item.
CREATE TABLE memory_vectors (
    scope TEXT NOT NULL,
    path TEXT NOT NULL,
    key TEXT NOT NULL,
    field TEXT NOT NULL,
    dims INTEGER NOT NULL,
    norm REAL NOT NULL,
    embedding BLOB NOT NULL,
    PRIMARY KEY (scope, path, key, field),
    FOREIGN KEY (scope, path, key) REFERENCES memory_items (scope, path, key)
        ON DELETE CASCADE
);
