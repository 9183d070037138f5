-- SBR (issue 14): the RAM alias `ABRD:<ABN>_<name>` software addresses a credential by, and
-- the per-credential "local" flag (a credential that must never be used with ActAs).
-- Portable SQL: the same file serves SQLite and PostgreSQL. Safe to run again (IF NOT EXISTS, and
-- the backfill skips aliases already recorded).

CREATE TABLE IF NOT EXISTS credential_alias (
    alias TEXT PRIMARY KEY,
    credential_id TEXT NOT NULL REFERENCES credential(id),
    moved_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS credential_alias_by_credential ON credential_alias(credential_id);

-- Existing databases: each alias names the newest live credential of that business and name.
INSERT INTO credential_alias (alias, credential_id, moved_at)
SELECT 'ABRD:' || c.abn || '_' || c.name, c.id, c.created_at
FROM credential c
WHERE c.status IN ('active', 'unassigned')
  AND NOT EXISTS (SELECT 1 FROM credential_alias x WHERE x.alias = 'ABRD:' || c.abn || '_' || c.name)
  AND NOT EXISTS (
    SELECT 1 FROM credential d
    WHERE d.abn = c.abn AND d.name = c.name AND d.status IN ('active', 'unassigned')
      AND (d.created_at > c.created_at OR (d.created_at = c.created_at AND d.id > c.id))
  );

CREATE TABLE IF NOT EXISTS credential_local (
    credential_id TEXT PRIMARY KEY REFERENCES credential(id),
    set_at TEXT NOT NULL,
    set_by TEXT NOT NULL
);
