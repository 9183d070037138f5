-- Businesses, their machine credentials and the terms each credential was created under.

CREATE TABLE business (
    abn TEXT PRIMARY KEY CHECK (length(abn) = 11),
    name TEXT NOT NULL,
    registered_at TEXT NOT NULL
);
CREATE TABLE credential (
    id TEXT PRIMARY KEY,
    abn TEXT NOT NULL REFERENCES business(abn),
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    key_type TEXT NOT NULL,
    backend TEXT NOT NULL,
    key_uri TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    terms_version TEXT NOT NULL
);
CREATE INDEX credential_by_abn ON credential(abn, created_at);
CREATE TABLE terms_acceptance (
    id INTEGER PRIMARY KEY,
    accepted_by TEXT NOT NULL,
    version TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    credential_id TEXT NOT NULL
);
