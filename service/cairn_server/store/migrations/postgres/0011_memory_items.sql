-- The long-term memory store (StoreService, cairn_server/memory): LangGraph's
-- BaseStore items, each in one Cairn namespace (`scope`).
-- `path` is the item's namespace path, each label followed by "." (labels
-- never contain one): ("a", "b") is 'a.b.', so the paths under a prefix are
-- one range of the primary key (COLLATE "C": byte order, as in SQLite), and
-- ("a", "bc") is never under ("a", "b").
-- `value` is the JSON object as written (text: filters are evaluated by the
-- service, identically on both stores). Times are seconds since the epoch;
-- `ttl` (seconds) is kept so that reads can move `expires_at` to now + ttl.
CREATE TABLE memory_items (
    scope TEXT COLLATE "C" NOT NULL,
    path TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION,
    ttl DOUBLE PRECISION,
    PRIMARY KEY (scope, path, key)
);

-- A search without a prefix lists a scope's items newest update first.
CREATE INDEX memory_items_updated_idx ON memory_items (scope, updated_at);

-- The sweep deletes expired items of every scope, soonest first.
CREATE INDEX memory_items_expires_idx ON memory_items (expires_at)
    WHERE expires_at IS NOT NULL;

-- The embeddings the caller computed for an item's fields, one per `field`
-- (LangGraph's path syntax); deleted with the item. real[], not pgvector's
-- `vector`: the extension lives in one schema of the database, which need not
-- be on this schema's search_path (nor installed at all), so searches cast to
-- the extension's type where they find it (cairn_server/memory/postgres.py).
CREATE TABLE memory_vectors (
    scope TEXT COLLATE "C" NOT NULL,
    path TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    field TEXT NOT NULL,
    dims INTEGER NOT NULL,
    embedding REAL[] NOT NULL,
    PRIMARY KEY (scope, path, key, field),
    FOREIGN KEY (scope, path, key) REFERENCES memory_items (scope, path, key)
        ON DELETE CASCADE
);
