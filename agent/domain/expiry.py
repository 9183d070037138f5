"""Expiry watch: which credentials' certificates expire soon, counted in the businesses' days.

Days are calendar days in the businesses' time zone (Australia/Sydney unless configured),
from the audit clock: a certificate expiring on 1 March (Sydney) has 90 days left on the
1 December before. The daemon warns in its log once per credential and threshold (90, then
30 days) per process, and reports how many credentials are within each to the observer.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from mcagent.agent.domain.audit import MAX_PAGE
from mcagent.agent.domain.calls import Caller, CredentialView
from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.errors import InvalidArgument
from mcagent.agent.domain.guard import ServiceBase
from mcagent.agent.domain.model import Credential
from mcagent.agent.domain.ramkeystore import alias_for

log = logging.getLogger(__name__)

THRESHOLDS = (90, 30)  # days: a warning and a metric at each
SOON = 30  # what health/status names
MAX_WITHIN = 3650


@dataclass(frozen=True)
class Expiring:
    """A credential whose certificate expires within the days asked for."""

    view: CredentialView
    not_after: dt.datetime
    days_left: int


def not_after(credential: Credential) -> dt.datetime | None:
    """When the credential's leaf certificate expires (None: no certificate)."""
    if not credential.certificate_chain:
        return None
    return x509.load_der_x509_certificate(credential.certificate_chain[0]).not_valid_after_utc


class ExpiryWatch(ServiceBase):
    """`credential list --expiring-within`, the log warnings and the metric."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._expiry_warned: set[tuple[str, int]] = set()  # (credential, threshold) warned in this process

    def _days_left(self, expires: dt.datetime) -> int:
        return (expires.astimezone(self._timezone).date() - self.today()).days

    def _live_expiring(self, credentials: list[Credential], within_days: int) -> list[tuple[Credential, dt.datetime,
                                                                                              int]]:
        found = []
        for credential in credentials:
            if credential.status not in (CredentialStatus.ACTIVE, CredentialStatus.UNASSIGNED):
                continue
            expires = not_after(credential)
            if expires is not None and (days := self._days_left(expires)) <= within_days:
                found.append((credential, expires, days))
        return found

    def expiring_credentials(self, caller: Caller, abn: str | None, within_days: int) -> list[Expiring]:
        """Live credentials the caller may see whose certificate expires within `within_days`
        days (already expired ones included, with negative days), soonest first."""
        if not 1 <= within_days <= MAX_WITHIN:
            raise InvalidArgument(f"--expiring-within is 1 to {MAX_WITHIN} days, not {within_days}")
        visible, token = [], ""
        while True:
            views, token = self.list_credentials(caller, abn, page_size=MAX_PAGE, page_token=token)
            visible += views
            if not token:
                break
        by_id = {v.credential.id: v for v in visible}
        found = self._live_expiring([v.credential for v in visible], within_days)
        return sorted((Expiring(by_id[c.id], expires, days) for c, expires, days in found),
                      key=lambda e: (e.not_after, e.view.credential.id))

    def watch_expiry(self) -> list[str]:
        """Warn (once per credential and threshold in this process) and report the counts.

        Returns:
            A line for each live credential expiring within SOON days (for health and status).
        """
        warned = self._expiry_warned
        credentials = self._records.list_credentials(status=CredentialStatus.ACTIVE) + \
            self._records.list_credentials(status=CredentialStatus.UNASSIGNED)
        found = self._live_expiring(credentials, max(THRESHOLDS))
        for threshold in THRESHOLDS:
            self._observer.credentials_expiring(threshold, sum(1 for _, _, days in found if days <= threshold))
        soon = []
        for credential, expires, days in found:
            alias = alias_for(credential.abn, credential.name)
            threshold = min(t for t in THRESHOLDS if days <= t)
            if (credential.id, threshold) not in warned:
                warned.add((credential.id, threshold))
                log.warning("credential %s (%s of %s): its certificate expires on %s, in %d days (within %d); "
                            "renew it with `mcagent credential renew %s`", credential.id, credential.name,
                            credential.abn, expires.astimezone(self._timezone).date().isoformat(), days, threshold,
                            alias)
            if days <= SOON:
                soon.append(f"{credential.id} ({alias}) expires on "
                            f"{expires.astimezone(self._timezone).date().isoformat()}, in {days} days")
        return soon
