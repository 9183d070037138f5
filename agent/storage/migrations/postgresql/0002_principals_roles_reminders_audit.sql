-- Principals and their roles, credential holders and lifecycle columns, claim reminders,
-- and the hash-chained audit log (append-only: two triggers refuse UPDATE and DELETE).
-- PostgreSQL: 64-bit uid and seq, the triggers as a function.

CREATE TABLE principal (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    uid BIGINT UNIQUE,
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
    seq BIGINT PRIMARY KEY,
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
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_append_only_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
