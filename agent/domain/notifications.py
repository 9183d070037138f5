"""Cloud software notifications: the use cases (the rules themselves are in notification.py)."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Any

from mcagent.agent.domain import notification as notices
from mcagent.agent.domain.abn import normalise_abn
from mcagent.agent.domain.calls import (
    Caller,
    NotificationView,
)
from mcagent.agent.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from mcagent.agent.domain.guard import ServiceBase
from mcagent.agent.domain.notification import Notification, NotificationStatus
from mcagent.agent.domain.policy import Action, may

log = logging.getLogger(__name__)


class Notifications(ServiceBase):
    """Add, request, accept, edit, remove, show and list notifications."""

    # -- cloud software notifications ---------------------------------------------------------

    def _notification_view(self, notification: Notification) -> NotificationView:
        return NotificationView(
            notification=notification,
            status=notices.shown_status(notification, self.today()),
            business_name=self.get_business(notification.abn).name,
            dsp_name=self.get_business(notification.dsp_abn).name,
        )

    def _notification(self, notification_id: str) -> Notification:
        notification = self._records.get_notification(notification_id)
        if notification is None:
            raise NotFound(f"no notification with id {notification_id!r}")
        return notification

    def _new_notification(self, caller: Caller, *, abn: str, dsp_abn: str, software_ids: list[str], start: str,
                          end: str | None, agencies: list[str], status: NotificationStatus,
                          declaration: bool) -> Notification:
        """Validate the fields of a new notification (both businesses already checked)."""
        ids = notices.check_software_ids(software_ids)
        start_date = notices.parse_date(start, "start date")
        end_date = notices.parse_date(end, "end date") if end else None
        notices.check_dates(start_date, end_date, self.today())
        chosen = notices.check_agencies(agencies)
        now = self._clock()
        return Notification(
            id=str(uuid.uuid4()), abn=abn, dsp_abn=dsp_abn, software_ids=ids, start_date=start_date,
            end_date=end_date, agencies=chosen, status=status, created_at=now, created_by=caller.name,
            requested_by=caller.name if status is NotificationStatus.PENDING else None,
            declaration_by=caller.name if declaration else None, declaration_at=now if declaration else None,
        )

    @staticmethod
    def _notification_detail(n: Notification) -> dict[str, Any]:
        return {"dsp_abn": n.dsp_abn, "software_ids": list(n.software_ids), "start_date": n.start_date.isoformat(),
                "end_date": n.end_date.isoformat() if n.end_date else None, "agencies": list(n.agencies),
                "status": n.status.value}

    def _save_notification(self, caller: Caller, action: str, notification: Notification) -> NotificationView:
        with self._records.transaction():
            self._records.save_notification(notification)
            self._audit(caller, action, abn=notification.abn, target=notification.id,
                        detail=self._notification_detail(notification))
        log.info("%s: notification %s of business %s (provider %s) by %s; now %s", action, notification.id,
                 notification.abn, notification.dsp_abn, caller.name, notification.status.value)
        return self._notification_view(notification)

    def add_notification(self, caller: Caller, *, abn: str, dsp_abn: str, software_ids: list[str], start: str,
                         end: str | None, agencies: list[str], declaration: bool) -> NotificationView:
        """The business (its PA or an AA) tells agencies it uses a provider's cloud software: active at once.

        Raises:
            PermissionDenied: the caller is not the business's PA or one of its AAs.
            InvalidArgument: bad ABN, software ID, date or agency.
            NotFound: the business or the provider is not registered.
            FailedPrecondition: the declaration was not accepted.
        """
        with self._audited(caller, "notification.add", abn=abn) as ctx:
            business = self.get_business(abn)
            ctx.abn = business.abn
            self._require(caller, business.abn, Action.MANAGE_NOTIFICATIONS)
            dsp = self.get_business(dsp_abn)
            notices.check_declaration(declaration)
            notification = self._new_notification(
                caller, abn=business.abn, dsp_abn=dsp.abn, software_ids=software_ids, start=start, end=end,
                agencies=agencies, status=NotificationStatus.ACTIVE, declaration=True)
            ctx.target = notification.id
            return self._save_notification(caller, "notification.add", notification)

    def request_notification(self, caller: Caller, *, dsp_abn: str, abn: str, software_ids: list[str], start: str,
                             end: str | None, agencies: list[str]) -> NotificationView:
        """A provider (its PA or an AA) asks a client business to notify: pending until the client accepts."""
        with self._audited(caller, "notification.request", abn=abn) as ctx:
            dsp = self.get_business(dsp_abn)
            self._require(caller, dsp.abn, Action.REQUEST_NOTIFICATION)
            client = self.get_business(abn)
            ctx.abn = client.abn
            notification = self._new_notification(
                caller, abn=client.abn, dsp_abn=dsp.abn, software_ids=software_ids, start=start, end=end,
                agencies=agencies, status=NotificationStatus.PENDING, declaration=False)
            ctx.target = notification.id
            return self._save_notification(caller, "notification.request", notification)

    def accept_notification(self, caller: Caller, notification_id: str, *, declaration: bool) -> NotificationView:
        """The client (its PA or an AA) accepts a pending request: it becomes active."""
        with self._audited(caller, "notification.accept", target=notification_id) as ctx:
            notification = self._notification(notification_id)
            ctx.abn = notification.abn
            self._require(caller, notification.abn, Action.MANAGE_NOTIFICATIONS)
            if notification.status is not NotificationStatus.PENDING:
                raise FailedPrecondition(f"notification {notification_id} is {notification.status.value}; "
                                         "only a pending request can be accepted")
            notices.check_declaration(declaration)
            notices.check_dates(notification.start_date, notification.end_date, self.today())
            accepted = dataclasses.replace(notification, status=NotificationStatus.ACTIVE,
                                           declaration_by=caller.name, declaration_at=self._clock())
            return self._save_notification(caller, "notification.accept", accepted)

    def edit_notification(self, caller: Caller, notification_id: str, *, software_ids: list[str] | None,
                          start: str | None, end: str | None, no_end: bool, declaration: bool) -> NotificationView:
        """The business (its PA or an AA) changes software IDs and dates; the declaration is accepted again."""
        with self._audited(caller, "notification.edit", target=notification_id) as ctx:
            notification = self._notification(notification_id)
            ctx.abn = notification.abn
            self._require(caller, notification.abn, Action.MANAGE_NOTIFICATIONS)
            if notification.status is NotificationStatus.REMOVED:
                raise FailedPrecondition(f"notification {notification_id} was removed; it stays only in the history")
            if end and no_end:
                raise InvalidArgument("give either --end or --no-end, not both")
            if software_ids is None and start is None and end is None and not no_end:
                raise InvalidArgument("nothing to change: give --software-id, --start, --end or --no-end")
            notices.check_declaration(declaration)
            ids = notices.check_software_ids(software_ids) if software_ids is not None else notification.software_ids
            start_date = notices.parse_date(start, "start date") if start else notification.start_date
            end_date = None if no_end else (notices.parse_date(end, "end date") if end else notification.end_date)
            notices.check_dates(start_date, end_date, self.today(), start_changed=start is not None)
            edited = dataclasses.replace(notification, software_ids=ids, start_date=start_date, end_date=end_date,
                                         declaration_by=caller.name, declaration_at=self._clock())
            return self._save_notification(caller, "notification.edit", edited)

    def remove_notification(self, caller: Caller, notification_id: str, *, confirm: bool) -> NotificationView:
        """The business (its PA or an AA) ends a notification; it stays in the history as removed."""
        with self._audited(caller, "notification.remove", target=notification_id) as ctx:
            notification = self._notification(notification_id)
            ctx.abn = notification.abn
            self._require(caller, notification.abn, Action.MANAGE_NOTIFICATIONS)
            if notification.status is NotificationStatus.REMOVED:
                raise FailedPrecondition(f"notification {notification_id} is already removed")
            if not confirm:
                raise FailedPrecondition(f"confirm removing notification {notification_id} with --yes")
            removed = dataclasses.replace(notification, status=NotificationStatus.REMOVED,
                                          removed_at=self._clock(), removed_by=caller.name)
            return self._save_notification(caller, "notification.remove", removed)

    def _may_view_notification(self, caller: Caller, notification: Notification) -> None:
        if caller.is_admin:
            return
        if not any(may(self._roles(caller, abn), Action.MANAGE_NOTIFICATIONS)
                   for abn in (notification.abn, notification.dsp_abn)):
            raise PermissionDenied(f"{caller.name} may not view notification {notification.id}: that needs the "
                                   "principal authority or an authorisation administrator of the business or "
                                   "of its provider")

    def get_notification(self, caller: Caller, notification_id: str) -> NotificationView:
        """One notification, for its business's or its provider's PA or AAs."""
        notification = self._notification(notification_id)
        self._may_view_notification(caller, notification)
        return self._notification_view(notification)

    def list_notifications(self, caller: Caller, abn: str | None, status: str | None) -> list[NotificationView]:
        """Notifications of a business (as user or as provider), or of every business the caller manages."""
        if status is not None and status not in notices.LISTABLE_STATUSES:
            raise InvalidArgument(f"unknown status {status!r}; use one of: {', '.join(notices.LISTABLE_STATUSES)}")
        if abn:
            abn = normalise_abn(abn)
            if not caller.is_admin:
                self._require(caller, abn, Action.MANAGE_NOTIFICATIONS)
            abns = [abn]
        elif caller.is_admin:
            abns = [b.abn for b in self._records.list_businesses()]
        else:
            abns = sorted({g.abn for g in self._records.role_grants(principal_id=caller.principal_id)
                           if may({g.role}, Action.MANAGE_NOTIFICATIONS)})
        views = [self._notification_view(n) for n in self._records.list_notifications(abns)] if abns else []
        return [v for v in views if status is None or v.status == status]

