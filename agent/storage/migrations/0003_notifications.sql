-- Cloud software notifications.

CREATE TABLE notification (
    id TEXT PRIMARY KEY,
    abn TEXT NOT NULL REFERENCES business(abn),
    dsp_abn TEXT NOT NULL REFERENCES business(abn),
    software_ids TEXT NOT NULL,
    start_date TEXT NOT NULL,
    end_date TEXT,
    agencies TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    requested_by TEXT,
    declaration_by TEXT,
    declaration_at TEXT,
    removed_at TEXT,
    removed_by TEXT
);
CREATE INDEX notification_by_abn ON notification(abn, created_at);
CREATE INDEX notification_by_dsp ON notification(dsp_abn, created_at);
