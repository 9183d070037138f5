-- Principals and their roles, credential holders and lifecycle columns, claim reminders,
-- and the hash-chained audit log (append-only: two triggers refuse UPDATE and DELETE).

CREATE TABLE principal (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    uid INTEGER UNIQUE,
    certificate_subject TEXT UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE TABLE role_grant (
    abn TEXT NOT NULL REFERENCES business(abn),
    principal_id TEXT NOT NULL REFERENCES principal(id),
    role TEXT NOT NULL,
    granted_at TEXT NOT NULL,
    granted_by TEXT NOT NULL,
    PRIMARY KEY (abn, principal_id, role)
);
CREATE INDEX role_by_principal ON role_grant(principal_id);
ALTER TABLE credential ADD COLUMN holder_id TEXT REFERENCES principal(id);
ALTER TABLE credential ADD COLUMN unassigned_at TEXT;
ALTER TABLE credential ADD COLUMN revoked_at TEXT;
ALTER TABLE credential ADD COLUMN revoked_by TEXT;
ALTER TABLE credential ADD COLUMN key_destroyed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE credential ADD COLUMN first_used_at TEXT;
ALTER TABLE credential ADD COLUMN permissions TEXT;
CREATE INDEX credential_by_holder ON credential(holder_id);
CREATE TABLE reminder (
    credential_id TEXT NOT NULL REFERENCES credential(id),
    day INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    recipients TEXT NOT NULL,
    PRIMARY KEY (credential_id, day)
);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    abn TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_by_abn ON audit(abn, seq);
CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
