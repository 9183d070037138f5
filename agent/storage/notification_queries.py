"""Cloud software notification queries (both engines)."""

from __future__ import annotations

from mcagent.agent.domain.notification import Notification
from mcagent.agent.storage import rows
from mcagent.agent.storage.queries import Queries


class NotificationQueries(Queries):
    """The notifications of `SqlRecords` (a mixin: it uses the engine's execute API)."""

    def save_notification(self, notification: Notification) -> None:
        """Insert or replace a notification (inside a transaction)."""
        columns = ", ".join(rows.NOTIFICATION_COLUMNS)
        marks = ", ".join("?" * len(rows.NOTIFICATION_COLUMNS))
        changes = ", ".join(f"{c} = excluded.{c}" for c in rows.NOTIFICATION_COLUMNS if c != "id")
        self._execute(f"INSERT INTO notification ({columns}) VALUES ({marks}) ON CONFLICT (id) DO UPDATE SET {changes}",
                      rows.notification_values(notification))

    def get_notification(self, notification_id: str) -> Notification | None:
        """The notification with this id, or None."""
        row = self._one("SELECT * FROM notification WHERE id = ?", (notification_id,))
        return None if row is None else rows.notification(row)

    def list_notifications(self, abns: list[str]) -> list[Notification]:
        """Notifications whose business or provider is one of `abns`, oldest first."""
        marks = ", ".join("?" * len(abns))
        found = self._all(f"SELECT * FROM notification WHERE abn IN ({marks}) OR dsp_abn IN ({marks})"
                          " ORDER BY created_at, id", [*abns, *abns])
        return [rows.notification(r) for r in found]
