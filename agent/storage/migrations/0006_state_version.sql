-- The state version every process reads to know whether its read caches still hold: one row,
-- bumped by every committed transaction that changes state (agent/storage/engine.py).

CREATE TABLE IF NOT EXISTS state_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO state_version (id, version) VALUES (1, 0) ON CONFLICT DO NOTHING;
