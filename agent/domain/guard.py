"""The shared base of the service areas: its ports, clock and the guard every operation passes.

One place for the sequence every operation follows: audit a refusal (`_audited`), check the
caller's role (`_require`), load a credential and authorise the caller for its business.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import zoneinfo
from collections.abc import Iterator
from typing import Any

from mcagent.agent.clock import Clock, system_clock
from mcagent.agent.domain import certificates
from mcagent.agent.domain import notification as notices
from mcagent.agent.domain.audit import (
    AuditEntry,
)
from mcagent.agent.domain.cache import CachedRecords
from mcagent.agent.domain.calls import (
    SYSTEM_ACTOR,
    AuditContext,
    Caller,
    roles_text,
)
from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from mcagent.agent.domain.model import Credential
from mcagent.agent.domain.policy import ALLOWED, Action, Role, may
from mcagent.agent.domain.ports import NO_OBSERVER, AuditLog, KeyCustody, Observer, Records
from mcagent.agent.domain.throttle import RefusalThrottle
from mcagent.hsm.errors import KeyStoreError

log = logging.getLogger(__name__)


class ServiceBase:
    """What every area of the service shares: the ports, the clock, the caches, the guard.

    The areas (access, credentials, signing, pki, keyfiles, notifications, audit_trail) are
    classes over this base; `AgentService` combines them into the one service the servicers
    call. An area calls another's methods through `self`.
    """

    def __init__(self, records: Records, audit_log: AuditLog, custody: KeyCustody, clock: Clock = system_clock,
                 timezone: str = notices.DEFAULT_TIMEZONE,
                 publication: certificates.Publication | None = None, observer: Observer | None = None) -> None:
        """Wire the service to its ports and clock.

        Args:
            records: the agent's records (with their unit of work).
            audit_log: group-committed audit appends and reads.
            custody: the key backends.
            clock: now, as an aware datetime (injected in tests).
            timezone: where "today" is decided for notification dates (IANA name).
            publication: CRL URL and policy OID that issued leaves carry (None: neither).
            observer: told of signs and their durations, for metrics (None: nobody).
        """
        self._records = records
        self._audit_log = audit_log
        self._custody = custody
        self._clock = clock
        self._publication = publication
        self._observer = observer or NO_OBSERVER
        self._cached = CachedRecords(records)
        self._refusals = RefusalThrottle()
        self._last_checkpoint: AuditEntry | None = None  # the newest this process wrote
        try:
            self._timezone = zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise InvalidArgument(f"unknown time zone {timezone!r}; use an IANA name") from None

    def state_version(self) -> int:
        """The records' state version: it moves whenever a change commits (see domain/cache.py);
        inside `one_state_version`, the value read when the request began.

        Adapters that keep what they derived from the records (the callers resolved per
        connection) keep it only while this stays the same.
        """
        return self._cached.state_version()

    def one_state_version(self) -> contextlib.AbstractContextManager[int]:
        """Read the state version once for a request: its lookups use that value (one read, not
        one per lookup). The authenticating interceptor opens it per call; `sign` per sign."""
        return self._cached.one_version()

    def today(self) -> dt.date:
        """Today's date where the businesses are (Australian Eastern time unless configured)."""
        return self._clock().astimezone(self._timezone).date()

    # -- audit plumbing -------------------------------------------------------------------

    def _audit(self, caller: Caller | str, action: str, *, abn: str = "", target: str = "",
               detail: dict[str, Any] | None = None, outcome: str = "allowed") -> AuditEntry:
        """Append an audit entry; call inside a storage transaction."""
        actor = caller if isinstance(caller, str) else caller.name
        return self._records.append_audit(at=self._clock(), actor=actor, action=action, outcome=outcome,
                                          abn=abn, target=target, detail=detail)

    @contextlib.contextmanager
    def _audited(self, caller: Caller | str, action: str, abn: str = "", target: str = "",
                 unauthenticated: bool = False) -> Iterator[AuditContext]:
        """Audit a refusal of `action` if the block raises a domain or key custody error.

        Args:
            unauthenticated: the caller is not known yet; its refusals are throttled
                (see agent.domain.throttle) so that nobody can flood the log.
        """
        context = AuditContext(abn=abn, target=target)
        try:
            yield context
        except (DomainError, KeyStoreError) as exc:
            detail = {**context.detail, "reason": str(exc)}
            try:
                summaries: list[tuple[str, dict[str, Any]]] = []
                write = True
                if unauthenticated:
                    actor = caller if isinstance(caller, str) else caller.name
                    write, summaries = self._refusals.admit(action, actor, self._clock())
                entries = [dict(at=self._clock(), actor=SYSTEM_ACTOR, action=f"{name}.summary", outcome="refused",
                                detail=summary) for name, summary in summaries]
                if write:
                    entries.append(dict(at=self._clock(), actor=caller if isinstance(caller, str) else caller.name,
                                        action=action, outcome="refused", abn=context.abn, target=context.target,
                                        detail=detail))
                if entries:
                    self._audit_log.append_many(entries)
            except Exception:
                log.exception("could not audit the refusal of %s", action)
                raise Unavailable("the audit log cannot be written; the request was refused") from exc
            raise

    def flush_refusal_summaries(self, force: bool = False) -> None:
        """Write the summaries of throttled refusals whose window has closed (all, with `force`)."""
        summaries = self._refusals.flush(self._clock(), force)
        if summaries:
            self._audit_log.append_many([dict(at=self._clock(), actor=SYSTEM_ACTOR, action=f"{name}.summary",
                                             outcome="refused", detail=summary) for name, summary in summaries])

    # -- who may do what --------------------------------------------------------------------

    @staticmethod
    def _require_admin(caller: Caller, what: str) -> None:
        if not caller.is_admin:
            raise PermissionDenied(
                f"only the local administrator may {what}; {caller.name} is a principal"
            )

    def _roles(self, caller: Caller, abn: str) -> frozenset[Role]:
        if caller.principal_id is None:
            return frozenset()
        return self._cached.roles_of(abn, caller.principal_id)

    def _require(self, caller: Caller, abn: str, action: Action) -> set[Role]:
        """The caller's roles in `abn`, if they allow `action`."""
        roles = self._roles(caller, abn)
        if not may(roles, action):
            held = "holds no role there" if not roles else f"holds {roles_text(roles)}"
            raise PermissionDenied(
                f"{caller.name} may not {action.value} for business {abn}: that needs "
                f"{roles_text(ALLOWED[action])}, and {caller.name} {held}"
            )
        return roles

    def _may_view(self, caller: Caller, abn: str) -> None:
        if not caller.is_admin:
            self._require(caller, abn, Action.VIEW)

    def _credential(self, credential_id: str, *, fresh: bool = False) -> Credential:
        """The credential with this id, as of the last committed change (`fresh`: read from the
        records now, not from this request's cached view).

        Raises:
            NotFound: no such credential (or one still being created).
        """
        credential = (self._records if fresh else self._cached).get_credential(credential_id)
        if credential is None or credential.status is CredentialStatus.CREATING:
            raise NotFound(f"no credential with id {credential_id!r}")
        return credential

    def _record_key_use(self, caller: Caller, action: str, credential: Credential,
                        detail: dict[str, Any] | None = None) -> None:
        """Record a use of the credential's key (an export, a CSR) once its result exists.

        The status is read again in the transaction that appends the entry: a revoke commits
        either before (the result is withheld: nothing made with a revoked key leaves) or
        after (the entry precedes the revoke's).

        Raises:
            FailedPrecondition: the credential was revoked meanwhile.
        """
        with self._records.transaction():
            current = self._records.get_credential(credential.id)
            if current is None or current.status is CredentialStatus.REVOKED:
                raise FailedPrecondition(f"credential {credential.id} was revoked while its key was in use; "
                                         "the result was withheld")
            self._audit(caller, action, abn=credential.abn, target=credential.id, detail=detail)

    def _authorised_credential(self, caller: Caller, ctx: AuditContext, credential_id: str,
                               action: Action, *, fresh: bool = False) -> Credential:
        """Load a credential, name its business in the refusal entry, and require `action` there.

        Raises:
            NotFound: no such credential.
            PermissionDenied: the caller's roles in its business do not allow `action`.
        """
        credential = self._credential(credential_id, fresh=fresh)
        ctx.abn = credential.abn
        self._require(caller, credential.abn, action)
        return credential

