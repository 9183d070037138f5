-- The agent's CA (root and issuing) and the certificate columns of a credential.
-- PostgreSQL: BYTEA for the certificate.

CREATE INDEX credential_by_status ON credential(status);
CREATE INDEX credential_by_time ON credential(created_at, id);
CREATE TABLE ca (
    role TEXT PRIMARY KEY CHECK (role IN ('root', 'issuing')),
    key_uri TEXT NOT NULL,
    key_type TEXT NOT NULL,
    certificate BYTEA NOT NULL,
    created_at TEXT NOT NULL,
    crl_number INTEGER NOT NULL DEFAULT 0
);
ALTER TABLE credential ADD COLUMN certificate_chain TEXT;
ALTER TABLE credential ADD COLUMN certificate_serial TEXT;
ALTER TABLE credential ADD COLUMN issued_by_agent INTEGER NOT NULL DEFAULT 0;
