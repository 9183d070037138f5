"""The agent's operations: principals, businesses, roles, machine credentials, audit.

Transport-free: the gRPC servicer authenticates the caller, converts requests into these
calls and maps the errors they raise (agent.domain.errors, hsm.errors) to status codes.

Every state change commits together with its audit entry; every refusal is audited in a
transaction of its own; a sign whose audit entry cannot be written returns no signature.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import logging
import re
import secrets
import threading
import uuid
import zoneinfo
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from agent.clock import Clock, system_clock
from agent.domain import certificates, ramkeystore
from agent.domain import credential as lifecycle
from agent.domain import notification as notices
from agent.domain.abn import normalise_abn
from agent.domain.audit import (
    CHECKPOINT,
    MAX_PAGE,
    TAMPERING,
    AuditEntry,
    VerifyResult,
    checkpoint_message,
    verify_chain,
)
from agent.domain.credential import CredentialStatus, Transition
from agent.domain.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from agent.domain.model import Backend, Business, Credential, Principal, Reminder, RoleGrant
from agent.domain.notification import Notification, NotificationStatus
from agent.domain.permissions import ALL_PERMISSIONS, CATALOGUE, Permission, check_permissions
from agent.domain.policy import ALLOWED, MANAGES, MCA, PA, Action, Role, may, may_manage
from agent.domain.terms import CURRENT_TERMS, MachineTerms
from agent.domain.throttle import RefusalThrottle
from agent.keys import KeyStores
from agent.storage import AuditAppender, Storage
from hsm import base as keys_base
from hsm.base import (
    CertificateStore,
    CreateKeyRequest,
    KeyDeleter,
    KeyExporter,
    KeyImporter,
    KeyInfo,
    KeyStore,
    KeyType,
    SignatureAlgorithm,
)
from hsm.base import SignRequest as KeySignRequest
from hsm.errors import KeyNotFound, KeyStoreError
from hsm.signer import store_private_key

log = logging.getLogger(__name__)

# The certificate's CN holds the credential name: X.520 allows at most 64 characters.
MAX_CREDENTIAL_NAME = 64
MAX_BUSINESS_NAME = 200
PRINCIPAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
TOKEN_PREFIX = "mcat_"
SYSTEM_ACTOR = "mcagent"
MAX_BATCH = 1000
MAX_UID = 2**32 - 2  # (uid_t)-1 means "no uid" to the kernel
MAX_REFUSALS_AUDITED = 100  # per batch, one entry each; the rest are counted in one summary entry
WITHHELD = "the credential was revoked while the signature was being made; the signature was withheld"
BATCH_WORKERS = 4  # parallel signs within one batch; the token's sessions bound it too


@dataclass(frozen=True)
class Caller:
    """Who is asking.

    Attributes:
        name: for messages and the audit log.
        principal_id: the principal, or None for the local administrator.
        is_admin: the local administrator (registers businesses, creates principals).
    """

    name: str
    principal_id: str | None = None
    is_admin: bool = False


@dataclass(frozen=True)
class Signature:
    """A signature and what produced it."""

    signature: bytes
    algorithm: SignatureAlgorithm
    certificate_chain: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class CredentialView:
    """A credential as callers see it: the record plus what is derived from the clock."""

    credential: Credential
    display_status: str
    window_ends_at: dt.datetime | None
    reminders: tuple[Reminder, ...]


@dataclass(frozen=True)
class Created:
    """The answer to a create: the credential and, on renewal, what to do about the old one."""

    view: CredentialView
    notice: str = ""
    replaces_id: str = ""


@dataclass(frozen=True)
class NotificationView:
    """A notification as callers see it: with names and the status as of today."""

    notification: Notification
    status: str
    business_name: str
    dsp_name: str


class _ReadCache:
    """Records read on the sign path, kept until the next state-changing transaction commits.

    Valid for one agent process per database (SQLite's case): each committed change bumps
    `Storage.state_version`, and a lookup under a newer version starts from an empty cache.
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._version = -1
        self._entries: dict[tuple[str, Any], Any] = {}
        self._lock = threading.Lock()

    def get(self, kind: str, key: Any, load: Callable[[Any], Any]) -> Any:
        version = self._storage.state_version
        with self._lock:
            if version != self._version:
                self._entries.clear()
                self._version = version
            try:
                return self._entries[(kind, key)]
            except KeyError:
                pass
        value = load(key)
        if value is None:  # misses are not kept: unknown tokens must not grow the cache
            return value
        with self._lock:
            if self._version == version:  # not cached across a change that happened meanwhile
                self._entries[(kind, key)] = value
        return value


@dataclass(frozen=True)
class BatchItem:
    """One digest to sign in a batch."""

    credential_id: str
    algorithm: SignatureAlgorithm | None
    digest: bytes
    permission: str = ""


@dataclass(frozen=True)
class _PreparedSign:
    """A sign that passed every check."""

    credential: Credential
    algorithm: SignatureAlgorithm
    digest: bytes
    permission: str


@dataclass
class _AuditContext:
    """What a refusal entry should name; filled in as the operation learns it."""

    abn: str = ""
    target: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


DEFAULT_PAGE = 100


def _encode_page_token(last: Credential) -> str:
    return base64.urlsafe_b64encode(f"{last.created_at.isoformat()}|{last.id}".encode()).decode()


def _decode_page_token(token: str) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        created, _, credential_id = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        return dt.datetime.fromisoformat(created).astimezone(dt.UTC).isoformat(timespec="microseconds"), credential_id
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("the page token is not one this agent gave out") from None


def _check_name(kind: str, name: str, limit: int) -> str:
    name = name.strip()
    if not name:
        raise InvalidArgument(f"{kind} must not be empty")
    if len(name) > limit:
        raise InvalidArgument(f"{kind} is {len(name)} characters long; at most {limit} are allowed")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidArgument(f"{kind} must not contain control characters")
    return name


def token_hash(token: str) -> str:
    """How bearer tokens are stored: SHA-256 (the tokens are 256-bit random, so no KDF is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def normalise_subject(subject: str) -> str:
    """An RFC 4514 distinguished name in the form certificates are compared in.

    Raises:
        InvalidArgument: not a distinguished name.
    """
    try:
        return x509.Name.from_rfc4514_string(subject).rfc4514_string()
    except ValueError as exc:
        raise InvalidArgument(f"certificate subject {subject!r} is not an RFC 4514 name: {exc}") from None


def _roles_text(roles: frozenset[Role] | set[Role]) -> str:
    """'the principal authority, an authorisation administrator or a machine credential administrator'."""
    def named(role: Role) -> str:
        article = "the" if role is PA else ("an" if role.title[0] in "aeiou" else "a")
        return f"{article} {role.title}" + (" principal" if role is Role.SOFTWARE else "")

    names = [named(r) for r in Role if r in roles]
    if len(names) <= 1:
        return names[0] if names else "no role"
    return ", ".join(names[:-1]) + " or " + names[-1]


class AgentService:
    """Everything the agent does, with the RAM rules applied."""

    def __init__(self, storage: Storage, keys: KeyStores, clock: Clock = system_clock,
                 timezone: str = notices.DEFAULT_TIMEZONE,
                 publication: certificates.Publication | None = None) -> None:
        """Wire the service to its storage, key backends and clock.

        Args:
            timezone: where "today" is decided for notification dates (IANA name).
            publication: CRL URL and policy OID that issued leaves carry (None: neither).
        """
        self._storage = storage
        self._keys = keys
        self._clock = clock
        self._publication = publication
        self._appender = AuditAppender(storage)
        self._batch_executor = ThreadPoolExecutor(BATCH_WORKERS, thread_name_prefix="batch-sign")
        self._cache = _ReadCache(storage)
        self._refusals = RefusalThrottle()
        self._last_checkpoint: AuditEntry | None = None  # the newest this process wrote
        try:
            self._timezone = zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise InvalidArgument(f"unknown time zone {timezone!r}; use an IANA name") from None

    def close(self) -> None:
        """Write the audit entries still queued; stop the appender."""
        self._batch_executor.shutdown()
        try:
            self.flush_refusal_summaries(force=True)
            self.checkpoint_audit()
        except Exception:
            log.exception("could not write the last refusal summaries or audit checkpoint")
        self._appender.close()

    def today(self) -> dt.date:
        """Today's date where the businesses are (Australian Eastern time unless configured)."""
        return self._clock().astimezone(self._timezone).date()

    # -- audit plumbing -------------------------------------------------------------------

    def _audit(self, caller: Caller | str, action: str, *, abn: str = "", target: str = "",
               detail: dict[str, Any] | None = None, outcome: str = "allowed") -> AuditEntry:
        """Append an audit entry; call inside a storage transaction."""
        actor = caller if isinstance(caller, str) else caller.name
        return self._storage.append_audit(at=self._clock(), actor=actor, action=action, outcome=outcome,
                                          abn=abn, target=target, detail=detail)

    @contextlib.contextmanager
    def _audited(self, caller: Caller | str, action: str, abn: str = "", target: str = "",
                 unauthenticated: bool = False) -> Iterator[_AuditContext]:
        """Audit a refusal of `action` if the block raises a domain or key custody error.

        Args:
            unauthenticated: the caller is not known yet; its refusals are throttled
                (see agent.domain.throttle) so that nobody can flood the log.
        """
        context = _AuditContext(abn=abn, target=target)
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
                    self._appender.append_many(entries)
            except Exception:
                log.exception("could not audit the refusal of %s", action)
                raise Unavailable("the audit log cannot be written; the request was refused") from exc
            raise

    def flush_refusal_summaries(self, force: bool = False) -> None:
        """Write the summaries of throttled refusals whose window has closed (all, with `force`)."""
        summaries = self._refusals.flush(self._clock(), force)
        if summaries:
            self._appender.append_many([dict(at=self._clock(), actor=SYSTEM_ACTOR, action=f"{name}.summary",
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
        return self._cache.get("roles", (abn, caller.principal_id),
                               lambda key: frozenset(self._storage.roles_of(*key)))

    def _require(self, caller: Caller, abn: str, action: Action) -> set[Role]:
        """The caller's roles in `abn`, if they allow `action`."""
        roles = self._roles(caller, abn)
        if not may(roles, action):
            held = "holds no role there" if not roles else f"holds {_roles_text(roles)}"
            raise PermissionDenied(
                f"{caller.name} may not {action.value} for business {abn}: that needs "
                f"{_roles_text(ALLOWED[action])}, and {caller.name} {held}"
            )
        return roles

    def _may_view(self, caller: Caller, abn: str) -> None:
        if not caller.is_admin:
            self._require(caller, abn, Action.VIEW)

    # -- authentication ---------------------------------------------------------------------

    def authenticate_token(self, token: str) -> Caller:
        """The principal holding bearer token `token`."""
        with self._audited("unknown caller", "auth.token", unauthenticated=True):
            principal = self._cache.get("token", token_hash(token),
                                        lambda key: self._storage.principal_where("token_hash", key))
            if principal is None:
                raise Unauthenticated("the bearer token is not known to this agent")
            return Caller(principal.name, principal.id)

    def authenticate_uid(self, uid: int, admin_uids: frozenset[int]) -> Caller:
        """The caller behind a Unix-socket peer with `uid`."""
        if uid in admin_uids:
            return Caller(f"local-administrator(uid={uid})", is_admin=True)
        with self._audited(f"uid {uid}", "auth.uid", unauthenticated=True):
            principal = self._storage.principal_where("uid", uid)
            if principal is None:
                raise Unauthenticated(
                    f"uid {uid} is not a principal of this agent; ask the administrator to run "
                    f"`mcagent principal create NAME --uid {uid}`, or pass a token"
                )
            return Caller(principal.name, principal.id)

    def authenticate_subject(self, subject: str) -> Caller:
        """The principal mapped to TLS client certificate subject `subject`."""
        with self._audited(f"certificate {subject}", "auth.certificate", unauthenticated=True):
            principal = self._storage.principal_where("certificate_subject", subject)
            if principal is None:
                raise Unauthenticated(f"client certificate subject {subject!r} is not mapped to a principal")
            return Caller(principal.name, principal.id)

    # -- principals ---------------------------------------------------------------------------

    def create_principal(self, caller: Caller, name: str, uid: int | None,
                         certificate_subject: str | None) -> tuple[Principal, str]:
        """Create a principal and its bearer token (returned once, stored as a hash).

        Raises:
            PermissionDenied: the caller is not the local administrator.
            InvalidArgument: bad name, uid or subject.
            AlreadyExists: the name, uid or subject is taken.
        """
        with self._audited(caller, "principal.create", target=name):
            self._require_admin(caller, "create principals")
            if not PRINCIPAL_NAME.match(name):
                raise InvalidArgument(
                    f"principal name {name!r} must be 1-64 letters, digits, '.', '_', '@' or '-', "
                    "starting with a letter or digit"
                )
            if uid is not None and not 1 <= uid <= MAX_UID:
                raise InvalidArgument(f"uid {uid} is not a principal's uid: uid 0 is the administrator (root), and "
                                      f"uids run from 1 to {MAX_UID}")
            subject = normalise_subject(certificate_subject) if certificate_subject else None
            for column, value, what in (("name", name, "name"), ("uid", uid, "uid"),
                                        ("certificate_subject", subject, "certificate subject")):
                if value is not None and self._storage.principal_where(column, value) is not None:
                    raise AlreadyExists(f"a principal with {what} {value!r} already exists")
            principal = Principal(str(uuid.uuid4()), name, uid, subject, self._clock())
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
            with self._storage.transaction():
                self._storage.insert_principal(principal, token_hash(token), caller.name)
                self._audit(caller, "principal.create", target=name,
                            detail={"uid": uid, "certificate_subject": subject})
            return principal, token

    def list_principals(self, caller: Caller) -> list[Principal]:
        """Every principal (local administrator only)."""
        self._require_admin(caller, "list principals")
        return self._storage.list_principals()

    def _principal_named(self, name: str) -> Principal:
        principal = self._storage.principal_where("name", name)
        if principal is None:
            raise NotFound(f"no principal named {name!r}; create it with `mcagent principal create {name}`")
        return principal

    # -- businesses ---------------------------------------------------------------------------

    def register_business(self, caller: Caller, abn: str, name: str, principal_authority: str) -> Business:
        """Register a business by ABN with its principal authority.

        Raises:
            PermissionDenied: the caller is not the local administrator.
            InvalidArgument: bad ABN or name, or no principal authority named.
            NotFound: the principal authority does not exist.
            AlreadyExists: the ABN is registered already.
        """
        with self._audited(caller, "business.register", abn=abn) as ctx:
            self._require_admin(caller, "register businesses")
            abn = ctx.abn = normalise_abn(abn)
            name = _check_name("business name", name, MAX_BUSINESS_NAME)
            if not principal_authority:
                raise InvalidArgument("a business needs its principal authority (--principal-authority PRINCIPAL)")
            pa = self._principal_named(principal_authority)
            business = Business(abn, name, self._clock())
            with self._storage.transaction():
                if not self._storage.insert_business(business):
                    raise AlreadyExists(f"business {abn} is already registered")
                self._storage.grant_role(abn, pa.id, PA, business.registered_at, caller.name)
                self._audit(caller, "business.register", abn=abn, target=pa.name,
                            detail={"name": name, "principal_authority": pa.name})
            return business

    def get_business(self, abn: str) -> Business:
        """The business with this ABN (any authenticated caller may look one up).

        Raises:
            InvalidArgument: bad ABN.
            NotFound: not registered.
        """
        abn = normalise_abn(abn)
        business = self._storage.get_business(abn)
        if business is None:
            raise NotFound(f"business {abn} is not registered")
        return business

    # -- roles ----------------------------------------------------------------------------------

    def _role_change_checks(self, caller: Caller, abn: str, principal_name: str, role: Role,
                            verb: str) -> tuple[str, Principal]:
        abn = normalise_abn(abn)
        self.get_business(abn)
        if role is PA:
            raise InvalidArgument(
                f"the principal authority is set when the business is registered; it cannot be "
                f"{'granted' if verb == 'grant' else 'removed'}"
            )
        roles = self._roles(caller, abn)
        if not may_manage(roles, role):
            managers = {holder for holder, managed in MANAGES.items() if role in managed}
            held = f"holds {_roles_text(roles)}" if roles else "holds no role there"
            raise PermissionDenied(
                f"{caller.name} may not {verb} the {role.title} role in business "
                f"{abn}: that needs {_roles_text(managers)}, and {caller.name} {held}"
            )
        return abn, self._principal_named(principal_name)

    def grant_role(self, caller: Caller, abn: str, principal_name: str, role: Role) -> RoleGrant:
        """Grant `role` in `abn` to a principal. PA: every role; AA: MCA and software."""
        with self._audited(caller, "role.grant", abn=abn, target=f"{principal_name}:{role.value}") as ctx:
            abn, principal = self._role_change_checks(caller, abn, principal_name, role, "grant")
            ctx.abn = abn
            if principal.id == caller.principal_id:  # separation of duties: nobody widens their own authority
                raise PermissionDenied(f"{caller.name} may not grant a role to itself; another principal who may "
                                       f"grant the {role.title} role must do it")
            now = self._clock()
            with self._storage.transaction():
                if not self._storage.grant_role(abn, principal.id, role, now, caller.name):
                    raise AlreadyExists(f"{principal.name} already holds the {role.title} role in business {abn}")
                self._audit(caller, "role.grant", abn=abn, target=principal.name, detail={"role": role.value})
            return RoleGrant(abn, principal.id, principal.name, role, now, caller.name)

    def remove_role(self, caller: Caller, abn: str, principal_name: str, role: Role) -> list[str]:
        """Remove `role` from a principal. Removing the MCA role unassigns the credentials
        they hold (unless they are the PA): each keeps working for the grace period.

        Returns:
            The ids of the credentials that became unassigned.
        """
        with self._audited(caller, "role.remove", abn=abn, target=f"{principal_name}:{role.value}") as ctx:
            abn, principal = self._role_change_checks(caller, abn, principal_name, role, "remove")
            ctx.abn = abn
            now = self._clock()
            unassigned: list[str] = []
            with self._storage.transaction():
                if not self._storage.remove_role(abn, principal.id, role):
                    raise NotFound(f"{principal.name} does not hold the {role.title} role in business {abn}")
                self._audit(caller, "role.remove", abn=abn, target=principal.name, detail={"role": role.value})
                if not self._storage.roles_of(abn, principal.id) & {PA, MCA}:
                    for credential in self._storage.list_credentials(abn=abn, holder_id=principal.id,
                                                                     status=CredentialStatus.ACTIVE):
                        status = lifecycle.next_status(credential.id, credential.status, Transition.UNASSIGN)
                        self._storage.update_credential(credential.id, credential.status, status=status,
                                                        holder_id=None, unassigned_at=now)
                        self._audit(caller, "credential.unassign", abn=abn, target=credential.id,
                                    detail={"former_holder": principal.name,
                                            "works_until": lifecycle.window_end(now).isoformat()})
                        unassigned.append(credential.id)
            return unassigned

    def list_roles(self, caller: Caller, abn: str) -> list[RoleGrant]:
        """Who holds which role in a business (its role holders and the administrator may see)."""
        abn = normalise_abn(abn)
        self.get_business(abn)
        if not caller.is_admin and not self._roles(caller, abn):
            raise PermissionDenied(f"{caller.name} holds no role in business {abn}")
        return self._storage.role_grants(abn=abn)

    # -- credentials ------------------------------------------------------------------------

    @staticmethod
    def machine_terms() -> MachineTerms:
        """The machine terms of use a creator must accept now."""
        return CURRENT_TERMS

    def _view(self, credential: Credential) -> CredentialView:
        now = self._clock()
        window = lifecycle.window_end(credential.unassigned_at) if credential.unassigned_at else None
        return CredentialView(
            credential=credential,
            display_status=lifecycle.display_status(credential.status, credential.unassigned_at, now),
            window_ends_at=window,
            reminders=tuple(self._storage.reminders(credential.id)),
        )

    def _credential(self, credential_id: str) -> Credential:
        credential = self._cache.get("credential", credential_id, self._storage.get_credential)
        if credential is None or credential.status is CredentialStatus.CREATING:
            raise NotFound(f"no credential with id {credential_id!r}")
        return credential

    def create_credential(
        self,
        caller: Caller,
        *,
        abn: str,
        name: str,
        key_type: KeyType | None,
        backend: Backend | None,
        store: str | None,
        accepted_terms_version: str,
    ) -> Created:
        """Create a machine credential with a new key pair in the chosen backend.

        The record and the key exist together or not at all: the record is written first as
        ``creating`` (naming where the key will be), the key is generated, then the record
        becomes ``active`` with its audit entry. If generation fails the record is removed;
        if activation fails the key is destroyed; if the agent stops in between, start-up
        removes both. A credential with the name of a live one of the same business renews
        it: the new one takes over its permissions.

        Raises:
            PermissionDenied: the caller is not the business's PA or one of its MCAs.
            FailedPrecondition: terms not accepted, or the backend is not enabled.
            InvalidArgument: bad ABN, name or key store path.
            NotFound: the business is not registered.
        """
        with self._audited(caller, "credential.create", abn=abn, target=name) as ctx:
            business = self.get_business(abn)
            ctx.abn = business.abn
            self._require(caller, business.abn, Action.CREATE_CREDENTIAL)
            self._check_terms(accepted_terms_version)
            key_type = key_type or keys_base.DEFAULT_KEY_TYPE
            return self._provision(
                caller, ctx, action="credential.create", business=business, name=name, key_type=key_type,
                backend=backend, store=store, terms_version=accepted_terms_version,
                holder_id=caller.principal_id,
                make_key=lambda store, label: store.create_key(CreateKeyRequest(label=label, key_type=key_type)),
                chain_for=lambda key: self._issue_leaf(key, business.abn, name),
            )

    @staticmethod
    def _check_terms(accepted_terms_version: str) -> None:
        if not accepted_terms_version:
            raise FailedPrecondition(
                f"the machine terms of use (version {CURRENT_TERMS.version}) must be accepted "
                "to create a credential (--accept-terms; read them with `mcagent terms show`)"
            )
        if accepted_terms_version != CURRENT_TERMS.version:
            raise FailedPrecondition(
                f"terms version {accepted_terms_version!r} is not current; accept version {CURRENT_TERMS.version}"
            )

    def _provision(
        self,
        caller: Caller,
        ctx: _AuditContext,
        *,
        action: str,
        business: Business,
        name: str,
        key_type: KeyType,
        backend: Backend | None,
        store: str | None,
        terms_version: str,
        holder_id: str | None,
        make_key: Callable[[KeyStore, str], KeyInfo],
        chain_for: Callable[[KeyInfo], tuple[x509.Certificate, ...]],
    ) -> Created:
        """Make a credential's record, key and certificate exist together or not at all.

        The record is written first as ``creating`` (naming where the key will be), then the
        key is made and its certificate chain obtained, then the record becomes ``active`` with
        its audit entry. If the key cannot be made the record is removed; if anything after
        fails the key is destroyed too; if the agent stops in between, start-up removes both.
        A credential with the name of a live one of the same business renews it: the new one
        takes over its permissions.
        """
        name = _check_name("credential name", name, MAX_CREDENTIAL_NAME)
        if len(name.encode("utf-8")) > MAX_CREDENTIAL_NAME:  # the certificate library counts UTF-8 bytes
            raise InvalidArgument(f"credential name is {len(name.encode('utf-8'))} bytes long in UTF-8; the "
                                  f"certificate's common name holds at most {MAX_CREDENTIAL_NAME}")
        replaced = [c for c in self._storage.list_credentials(abn=business.abn, name=name)
                    if c.status in (CredentialStatus.ACTIVE, CredentialStatus.UNASSIGNED)]
        previous = replaced[-1] if replaced else None
        backend, store = self._keys.for_new_key(backend, store)
        credential_id = str(uuid.uuid4())
        ctx.target = credential_id
        with self._storage.transaction():
            self._storage.insert_credential(Credential(
                id=credential_id, abn=business.abn, name=name, status=CredentialStatus.CREATING, key_type=key_type,
                backend=backend, key_uri=store.label_uri(credential_id), created_at=self._clock(),
                created_by=caller.name, terms_version=terms_version, holder_id=holder_id,
                permissions=previous.permissions if previous else None,
            ))
        try:
            key = make_key(store, credential_id)
        except BaseException:
            with self._storage.transaction():
                self._storage.delete_credential(credential_id)
            raise
        try:
            chain = chain_for(key)
            certificates.check_chain_size(chain)
            issued_by_agent = self._issued_by_agent(chain[0])
            if isinstance(store, CertificateStore):  # next to the key, for PKCS#11-aware software
                store.store_certificate(key.uri, chain[0].public_bytes(serialization.Encoding.DER))
            with self._storage.transaction():
                self._storage.update_credential(
                    credential_id, CredentialStatus.CREATING, status=CredentialStatus.ACTIVE, key_uri=key.uri,
                    certificate_chain=[c.public_bytes(serialization.Encoding.DER) for c in chain],
                    certificate_serial=str(chain[0].serial_number), issued_by_agent=int(issued_by_agent),
                )
                self._audit(caller, action, abn=business.abn, target=credential_id, detail={
                    "name": name, "key_type": key_type.value, "backend": backend.value, "terms_version": terms_version,
                    "replaces": previous.id if previous else None, "certificate_serial": str(chain[0].serial_number),
                })
        except BaseException as exc:
            self._keys.delete_key(key.uri)
            with self._storage.transaction():
                self._storage.delete_credential(credential_id)
            if isinstance(exc, (DomainError, KeyStoreError)):
                raise
            log.exception("credential %s: not recorded; its key was destroyed", credential_id)
            raise Unavailable("the credential was not created: its record or audit entry could not be "
                              "written (its key was destroyed)") from exc
        log.info("%s: credential %s (%s) for %s by %s", action, credential_id, name, business.abn, caller.name)
        notice = ""
        if previous is not None:
            notice = (f"this credential renews {previous.id} ({name}) and takes over its permissions; "
                      f"revoke {previous.id} (`mcagent credential revoke {previous.id} --yes`) "
                      "if it has not expired")
        return Created(self._view(self._credential(credential_id)), notice, previous.id if previous else "")

    def get_credential(self, caller: Caller, credential_id: str) -> CredentialView:
        """A credential by id, for the administrator or a role holder of its business."""
        self.record_due_reminders()
        credential = self._credential(credential_id)
        self._may_view(caller, credential.abn)
        return self._view(credential)

    def list_credentials(self, caller: Caller, abn: str | None, *, page_size: int = 0,
                         page_token: str = "") -> tuple[list[CredentialView], str]:
        """A page of credentials of one business, or of every business the caller may see.

        Returns:
            The page, oldest first, and the token of the next page ("" when there is none).
        """
        page_size = page_size or DEFAULT_PAGE
        if not 1 <= page_size <= MAX_PAGE:
            raise InvalidArgument(f"page size must be between 1 and {MAX_PAGE}")
        after = _decode_page_token(page_token)
        self.record_due_reminders()
        if abn:
            abn = normalise_abn(abn)
            self._may_view(caller, abn)
            credentials = self._storage.list_credentials(abn=abn, page=(after, page_size + 1))
        elif caller.is_admin:
            credentials = self._storage.list_credentials(page=(after, page_size + 1))
        else:
            visible = sorted({g.abn for g in self._storage.role_grants(principal_id=caller.principal_id)
                              if may({g.role}, Action.VIEW)})
            credentials = self._storage.list_credentials(abns=visible, page=(after, page_size + 1))
        more = len(credentials) > page_size
        credentials = credentials[:page_size]
        next_token = _encode_page_token(credentials[-1]) if more else ""
        return [self._view(c) for c in credentials], next_token

    def public_key_pem(self, caller: Caller, credential_id: str) -> str:
        """The credential's public key, PEM SubjectPublicKeyInfo."""
        credential = self._credential(credential_id)
        self._may_view(caller, credential.abn)
        if credential.status is CredentialStatus.REVOKED:
            raise FailedPrecondition(f"credential {credential_id} is revoked; its key was destroyed")
        info = self._keys.for_uri(credential.key_uri).public_key(credential.key_uri)
        return info.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    def sign(
        self,
        caller: Caller,
        credential_id: str,
        *,
        algorithm: SignatureAlgorithm | None,
        data: bytes | None = None,
        digest: bytes | None = None,
        permission: str = "",
    ) -> Signature:
        """Sign data (hashed here) or a precomputed digest with the credential's key.

        The first use of a credential makes it visible with all permissions; from then on a
        sign that names a permission must have it granted.

        Raises:
            PermissionDenied: the caller holds no signing role in the business, or the
                permission named is not granted.
            FailedPrecondition: revoked, or unassigned and past its window.
            InvalidArgument: neither or both of data and digest, a digest of the wrong size,
                an unknown permission, or an algorithm that does not fit the key.
            NotFound: no such credential.
            Unavailable: the audit entry could not be written (no signature is returned).
        """
        with self._audited(caller, "credential.sign", target=credential_id) as ctx:
            prepared = self._prepare_sign(caller, ctx, credential_id, algorithm, data, digest, permission)
            signature = self._sign_prepared(prepared)
            withheld = self._record_signs(caller, [prepared])
        if withheld:  # its entry says refused already
            raise FailedPrecondition(f"credential {credential_id}: {WITHHELD}")
        return Signature(signature=signature, algorithm=prepared.algorithm,
                         certificate_chain=prepared.credential.certificate_chain)

    def sign_batch(self, caller: Caller, items: list[BatchItem]) -> list[Signature | DomainError | KeyStoreError]:
        """Sign many digests in one request (cloud servers signing in bulk).

        Each item is checked and signed on its own: the answer holds a signature or the error
        for each, in order. Items are signed in parallel on the backend's sessions. Every item,
        signed or refused, gets its audit entry; if those cannot be written, no signature is
        returned at all.

        Raises:
            InvalidArgument: no items, or more than MAX_BATCH.
            Unavailable: the audit entries could not be written.
        """
        if not 1 <= len(items) <= MAX_BATCH:
            raise InvalidArgument(f"a batch holds 1 to {MAX_BATCH} items, not {len(items)}")
        results: list[Any] = [None] * len(items)
        prepared: list[tuple[int, _PreparedSign]] = []
        refusals: list[tuple[_AuditContext, Exception]] = []
        for index, item in enumerate(items):
            ctx = _AuditContext(target=item.credential_id)
            try:
                prepared.append((index, self._prepare_sign(caller, ctx, item.credential_id, item.algorithm, None,
                                                           item.digest, item.permission)))
            except DomainError as exc:
                results[index] = exc
                refusals.append((ctx, exc))
        # One task per worker, not per item: handing each item to a thread costs more than an ECDSA sign.
        chunks = [[p for _, p in prepared[i::BATCH_WORKERS]] for i in range(BATCH_WORKERS)]
        chunk_results = list(self._batch_executor.map(lambda chunk: [self._sign_or_error(p) for p in chunk], chunks))
        signed: list[Any] = [None] * len(prepared)
        for i, results_of_chunk in enumerate(chunk_results):
            signed[i::BATCH_WORKERS] = results_of_chunk
        done = []
        for (index, item), outcome in zip(prepared, signed, strict=True):
            if isinstance(outcome, Exception):
                results[index] = outcome
                refusals.append((_AuditContext(abn=item.credential.abn, target=item.credential.id), outcome))
            else:
                results[index] = Signature(signature=outcome, algorithm=item.algorithm,
                                           certificate_chain=item.credential.certificate_chain)
                done.append(item)
        withheld = self._record_signs(caller, done, refusals)
        if withheld:  # revoked meanwhile: those items' signatures never leave (their entries say refused)
            for index, result in enumerate(results):
                if isinstance(result, Signature) and items[index].credential_id in withheld:
                    results[index] = FailedPrecondition(f"credential {items[index].credential_id}: {WITHHELD}")
        return results

    def _sign_or_error(self, prepared: _PreparedSign) -> bytes | Exception:
        try:
            return self._sign_prepared(prepared)
        except (KeyStoreError, DomainError) as exc:
            return exc

    def _prepare_sign(self, caller: Caller, ctx: _AuditContext, credential_id: str,
                      algorithm: SignatureAlgorithm | None, data: bytes | None, digest: bytes | None,
                      permission: str) -> _PreparedSign:
        """Every check a sign passes before the key is used; the digest to sign."""
        if (data is None) == (digest is None):
            raise InvalidArgument("give either the data to sign or its digest, not both")
        credential = self._credential(credential_id)
        ctx.abn = credential.abn
        self._require(caller, credential.abn, Action.SIGN)
        lifecycle.check_usable(credential.id, credential.status, credential.unassigned_at, self._clock())
        if permission:
            check_permissions([permission])
            ctx.detail["permission"] = permission
            if credential.permissions is not None and permission not in credential.permissions:
                granted = ", ".join(credential.permissions) or "none"
                raise PermissionDenied(
                    f"credential {credential_id} is not granted permission {permission} (granted: {granted}); "
                    "its principal authority or an authorisation administrator can amend that"
                )
        algorithm = algorithm or SignatureAlgorithm.default_for(credential.key_type)
        if not algorithm.fits(credential.key_type):
            fitting = ", ".join(a.algorithm_name for a in SignatureAlgorithm if a.fits(credential.key_type))
            raise InvalidArgument(
                f"algorithm {algorithm.algorithm_name} does not fit credential {credential_id}'s "
                f"{credential.key_type.value} key; use one of: {fitting}"
            )
        if digest is None:
            digest = algorithm.hash.digest(data or b"")
        elif len(digest) != algorithm.hash.digest_size:
            raise InvalidArgument(
                f"{algorithm.algorithm_name} needs a {algorithm.hash.digest_size}-byte "
                f"{algorithm.hash.hashlib_name.upper()} digest, got {len(digest)} bytes"
            )
        return _PreparedSign(credential, algorithm, digest, permission)

    def _sign_prepared(self, prepared: _PreparedSign) -> bytes:
        credential = prepared.credential
        return self._keys.for_uri(credential.key_uri).sign(KeySignRequest(
            uri=credential.key_uri, algorithm=prepared.algorithm, key_type=credential.key_type,
            digest=prepared.digest))

    def _record_signs(self, caller: Caller, signed: list[_PreparedSign],
                      refusals: list[tuple[_AuditContext, Exception]] = ()) -> set[str]:
        """First uses, then one audit entry per sign and per refusal; raise if they are not written.

        A sign whose credential was revoked by the time its entry commits is recorded as
        refused instead, and its signature must be withheld.

        Returns:
            The ids of the credentials whose signatures must be withheld (revoked meanwhile).
        """
        try:
            first_used = {p.credential.id: p.credential for p in signed if p.credential.first_used_at is None}
            for credential in first_used.values():
                with self._storage.transaction():
                    current = self._storage.get_credential(credential.id)
                    if current is not None and current.first_used_at is None:
                        self._storage.update_credential(credential.id, current.status, first_used_at=self._clock(),
                                                        permissions=ALL_PERMISSIONS)
                        self._audit(caller, "credential.first-use", abn=credential.abn, target=credential.id,
                                    detail={"permissions": list(ALL_PERMISSIONS)})
            now, actor = self._clock(), caller.name
            entries = []
            for p in signed:
                common = dict(at=now, actor=actor, action="credential.sign", abn=p.credential.abn,
                              target=p.credential.id)
                detail = {"algorithm": p.algorithm.algorithm_name, "permission": p.permission,
                          "digest_sha256": hashlib.sha256(p.digest).hexdigest()}
                withheld = dict(**common, outcome="refused", detail={**detail, "reason": WITHHELD})
                entries.append(dict(**common, outcome="allowed", detail=detail, unless_revoked=p.credential.id,
                                    if_revoked=withheld))
            audited = refusals[:MAX_REFUSALS_AUDITED]
            entries += [dict(at=now, actor=actor, action="credential.sign", outcome="refused", abn=ctx.abn,
                             target=ctx.target, detail={**ctx.detail, "reason": str(exc)})
                        for ctx, exc in audited]
            if len(refusals) > len(audited):
                entries.append(dict(at=now, actor=actor, action="credential.sign.summary", outcome="refused",
                                    detail={"refusals_not_written": len(refusals) - len(audited),
                                            "reasons": dict(Counter(type(exc).__name__
                                                                    for _, exc in refusals[len(audited):]))}))
            written = self._appender.append_many(entries)
        except Exception as exc:
            log.exception("signs not recorded; signatures withheld")
            raise Unavailable("the signature was withheld: its audit entry could not be written") from exc
        return {e.target for e in written[:len(signed)] if e.outcome == "refused"}

    def revoke_credential(self, caller: Caller, credential_id: str, *, confirm: bool) -> CredentialView:
        """Revoke a credential for good and destroy its key.

        The record becomes ``revoked`` first, so nothing can use it from that moment; then the
        key is destroyed in its backend. If the backend fails, the destruction is retried at
        start-up (the record says whether it is done).

        Raises:
            PermissionDenied: the caller is not the PA, an AA or an MCA of the business.
            FailedPrecondition: not confirmed, or already revoked.
        """
        with self._audited(caller, "credential.revoke", target=credential_id) as ctx:
            credential = self._credential(credential_id)
            ctx.abn = credential.abn
            self._require(caller, credential.abn, Action.REVOKE_CREDENTIAL)
            status = lifecycle.next_status(credential.id, credential.status, Transition.REVOKE)
            if not confirm:
                raise FailedPrecondition(
                    f"revoking credential {credential_id} cannot be undone: the key is destroyed and the "
                    "credential can never be used or reinstated; confirm with --yes"
                )
            with self._storage.transaction():
                self._storage.update_credential(credential.id, credential.status, status=status,
                                                revoked_at=self._clock(), revoked_by=caller.name)
                self._audit(caller, "credential.revoke", abn=credential.abn, target=credential.id)
        self._destroy_revoked_key(self._credential(credential_id))
        return self._view(self._credential(credential_id))

    def _destroy_revoked_key(self, credential: Credential) -> None:
        try:
            destroyed = self._keys.delete_key(credential.key_uri)
            with self._storage.transaction():
                self._storage.update_credential(credential.id, CredentialStatus.REVOKED, key_destroyed=1)
                self._audit(SYSTEM_ACTOR, "credential.key-destroyed", abn=credential.abn, target=credential.id,
                            detail={"objects": destroyed, "backend": credential.backend.value})
        except (KeyStoreError, DomainError) as exc:
            log.error("credential %s is revoked but its key could not be destroyed yet: %s", credential.id, exc)

    def claim_credential(self, caller: Caller, credential_id: str) -> CredentialView:
        """An MCA of the business takes over an unassigned credential within its window.

        Raises:
            PermissionDenied: the caller is not an MCA of the business.
            FailedPrecondition: not unassigned, revoked, or the window is over.
        """
        with self._audited(caller, "credential.claim", target=credential_id) as ctx:
            credential = self._credential(credential_id)
            ctx.abn = credential.abn
            self._require(caller, credential.abn, Action.CLAIM_CREDENTIAL)
            if credential.status is CredentialStatus.ACTIVE:
                raise FailedPrecondition(
                    f"credential {credential_id} is not unassigned; it is held by {credential.holder_name}"
                )
            status = lifecycle.next_status(credential.id, credential.status, Transition.CLAIM)
            now = self._clock()
            end = lifecycle.window_end(credential.unassigned_at)
            if now >= end:
                raise FailedPrecondition(
                    f"the claim window for credential {credential_id} ended on {end.date().isoformat()} "
                    f"({lifecycle.GRACE_PERIOD.days} days after it was unassigned on "
                    f"{credential.unassigned_at.date().isoformat()}); it can no longer be claimed"
                )
            with self._storage.transaction():
                self._storage.update_credential(credential.id, credential.status, status=status,
                                                holder_id=caller.principal_id, unassigned_at=None)
                self._storage.delete_reminders(credential.id)
                self._audit(caller, "credential.claim", abn=credential.abn, target=credential.id)
            return self._view(self._credential(credential_id))

    def permissions(self, caller: Caller, credential_id: str,
                    new: list[str] | None) -> tuple[Credential, list[tuple[Permission, bool]]]:
        """Show a credential's permissions, or (PA or AA, after first use) set them.

        Returns:
            The credential and every catalogue entry with whether it is granted.
        """
        action = "credential.permissions" if new is not None else "credential.permissions-view"
        with self._audited(caller, action, target=credential_id) as ctx:
            credential = self._credential(credential_id)
            ctx.abn = credential.abn
            if new is None:
                self._may_view(caller, credential.abn)
            else:
                self._require(caller, credential.abn, Action.SET_PERMISSIONS)
                if credential.first_used_at is None:
                    raise FailedPrecondition(
                        f"credential {credential_id} has not been used yet: it works with full permissions and "
                        "appears in the access manager view after its first use; amend them then"
                    )
                if credential.status is CredentialStatus.REVOKED:
                    raise FailedPrecondition(f"credential {credential_id} is revoked")
                chosen = tuple(check_permissions(new))
                with self._storage.transaction():
                    self._storage.update_credential(credential.id, credential.status, permissions=chosen)
                    self._audit(caller, "credential.permissions", abn=credential.abn, target=credential.id,
                                detail={"before": list(credential.permissions or ALL_PERMISSIONS),
                                        "after": list(chosen)})
                credential = self._credential(credential_id)
        granted = set(credential.permissions) if credential.permissions is not None else set(ALL_PERMISSIONS)
        return credential, [(CATALOGUE[p], p in granted) for p in ALL_PERMISSIONS]

    def record_due_reminders(self) -> int:
        """Record the 30- and 53-day reminders to claim unassigned credentials that are due.

        Recipients are the business's MCAs, else its PA. Returns how many were recorded.
        """
        now = self._clock()
        recorded = 0
        for credential in self._storage.list_credentials(status=CredentialStatus.UNASSIGNED):
            if credential.unassigned_at is None or now >= lifecycle.window_end(credential.unassigned_at):
                continue
            already = {r.day for r in self._storage.reminders(credential.id)}
            for day in lifecycle.reminders_due(credential.unassigned_at, now):
                if day in already:
                    continue
                grants = self._storage.role_grants(abn=credential.abn)
                recipients = sorted({g.principal_name for g in grants if g.role is MCA}) or sorted(
                    {g.principal_name for g in grants if g.role is PA})
                with self._storage.transaction():
                    if self._storage.insert_reminder(Reminder(credential.id, day, now, tuple(recipients))):
                        self._audit(SYSTEM_ACTOR, "credential.reminder", abn=credential.abn, target=credential.id,
                                    detail={"day": day, "recipients": recipients})
                        recorded += 1
        return recorded

    # -- certificates and the agent's CA ----------------------------------------------------

    CA_LABELS = {"root": "mcagent-ca-root", "issuing": "mcagent-ca-issuing"}

    def ensure_ca(self, caller: Caller | str = SYSTEM_ACTOR) -> bool:
        """Create the agent's root and issuing CA (keys in the default backend) unless they exist.

        Returns:
            True when they were created now.
        """
        if len(self._storage.ca()) == 2:
            return False
        _, store = self._keys.for_new_key(None, None)
        if not isinstance(store, KeyDeleter):
            raise FailedPrecondition(f"the {store.scheme} backend cannot hold the CA keys")
        for label in self.CA_LABELS.values():
            store.delete_key(store.label_uri(label))  # left over from an interrupted creation, if any
        keys: list[KeyInfo] = []
        try:
            now = self._clock()
            for role in ("root", "issuing"):
                keys.append(store.create_key(CreateKeyRequest(label=self.CA_LABELS[role], key_type=KeyType.RSA_2048)))
            root_key, issuing_key = (store_private_key(store, k) for k in keys)
            root = certificates.make_root(root_key, now)
            issuing = certificates.make_issuing(issuing_key, root_key, root, now)
            with self._storage.transaction():
                for role, key, cert in (("root", keys[0], root), ("issuing", keys[1], issuing)):
                    self._storage.insert_ca(role, key.uri, key.key_type.value,
                                            cert.public_bytes(serialization.Encoding.DER), now)
                self._audit(caller, "ca.init", detail={"root": root.subject.rfc4514_string(),
                                                       "issuing": issuing.subject.rfc4514_string(),
                                                       "backend": store.scheme})
        except BaseException:
            for key in keys:
                store.delete_key(key.uri)
            raise
        log.info("created the agent's CA in the %s backend", store.scheme)
        return True

    def init_ca(self, caller: Caller) -> tuple[x509.Certificate, x509.Certificate]:
        """`mcagent ca init`: create the CA now (local administrator only)."""
        with self._audited(caller, "ca.init"):
            self._require_admin(caller, "initialise the agent's CA")
            if not self.ensure_ca(caller):
                created = self._storage.ca()["root"]["created_at"]
                raise AlreadyExists(f"the agent's CA already exists (created {created})")
            return self.ca_certificates()

    def ca_certificates(self) -> tuple[x509.Certificate, x509.Certificate]:
        """The root and issuing CA certificates."""
        rows = self._storage.ca()
        if len(rows) != 2:
            raise FailedPrecondition("the agent's CA does not exist yet; run `mcagent ca init`")
        return tuple(x509.load_der_x509_certificate(rows[r]["certificate"]) for r in ("root", "issuing"))

    def _ca_signer(self) -> tuple[Any, x509.Certificate, x509.Certificate]:
        root, issuing = self.ca_certificates()
        uri = self._storage.ca()["issuing"]["key_uri"]
        store = self._keys.for_uri(uri)
        return store_private_key(store, store.public_key(uri)), issuing, root

    def _issue_leaf(self, key: KeyInfo, abn: str, name: str) -> tuple[x509.Certificate, ...]:
        issuer_key, issuing, root = self._ca_signer()
        leaf = certificates.issue_leaf(issuer_key=issuer_key, issuer=issuing, public_key=key.public_key, abn=abn,
                                       name=name, now=self._clock(), publication=self._publication)
        return leaf, issuing, root

    def _issued_by_agent(self, leaf: x509.Certificate) -> bool:
        """Whether the agent's issuing CA signed `leaf` (so its revocation goes on our CRL)."""
        issuing = self._storage.ca().get("issuing")
        return issuing is not None and certificates.issued_by(
            leaf, x509.load_der_x509_certificate(issuing["certificate"]))

    def decide_crl_membership(self) -> None:
        """Decide from their certificates whether credentials recorded before such decisions
        were made belong on the CRL (start-up; e.g. agent-issued certificates installed with
        `credential install`, once recorded as issued elsewhere)."""
        for credential_id, leaf in self._storage.undecided_crl_membership():
            ours = self._issued_by_agent(x509.load_der_x509_certificate(leaf))
            with self._storage.transaction():
                self._storage.set_issued_by_agent(credential_id, ours)
            if ours:
                log.info("credential %s: its certificate is the agent's; it goes on the CRL once revoked",
                         credential_id)

    def crl_entries(self) -> list[tuple[int, dt.datetime]]:
        """(serial, revocation time) of every certificate the agent's CRL lists now."""
        return self._storage.revoked_agent_certificates()

    def _credential_key(self, credential: Credential) -> tuple[KeyStore, KeyInfo]:
        if credential.status is CredentialStatus.REVOKED:
            raise FailedPrecondition(f"credential {credential.id} is revoked; its key was destroyed")
        store = self._keys.for_uri(credential.key_uri)
        return store, store.public_key(credential.key_uri)

    def csr(self, caller: Caller, credential_id: str) -> x509.CertificateSigningRequest:
        """A PKCS#10 request for the credential, signed inside its backend (PA or MCA)."""
        with self._audited(caller, "credential.csr", target=credential_id) as ctx:
            credential = self._credential(credential_id)
            ctx.abn = credential.abn
            self._require(caller, credential.abn, Action.CREATE_CREDENTIAL)
            store, key = self._credential_key(credential)
            request = certificates.build_csr(store_private_key(store, key), credential.abn, credential.name)
            with self._storage.transaction():
                self._audit(caller, "credential.csr", abn=credential.abn, target=credential.id)
            return request

    def certificate_chain(self, caller: Caller, credential_id: str) -> list[x509.Certificate]:
        """The credential's certificate chain, leaf first."""
        credential = self._credential(credential_id)
        self._may_view(caller, credential.abn)
        if not credential.certificate_chain:
            raise FailedPrecondition(f"credential {credential_id} has no certificate; install one")
        return [x509.load_der_x509_certificate(c) for c in credential.certificate_chain]

    def install_certificate(self, caller: Caller, credential_id: str, certificate: bytes,
                            chain: bytes | None) -> CredentialView:
        """Install a certificate issued elsewhere (PA or MCA), after checking it is this credential's."""
        with self._audited(caller, "credential.install", target=credential_id) as ctx:
            credential = self._credential(credential_id)
            ctx.abn = credential.abn
            self._require(caller, credential.abn, Action.CREATE_CREDENTIAL)
            _, key = self._credential_key(credential)
            leaf, *rest = certificates.load_certificates(certificate, "--certificate")
            extra = certificates.load_certificates(chain, "--chain") if chain else []
            certificates.check_installable(leaf, public_key=key.public_key, abn=credential.abn, now=self._clock())
            full = [leaf, *rest, *extra]
            certificates.check_chain_size(full)
            store = self._keys.for_uri(credential.key_uri)
            issued_by_agent = self._issued_by_agent(leaf)  # decided from the certificate, wherever it came from
            if isinstance(store, CertificateStore):
                store.store_certificate(credential.key_uri, leaf.public_bytes(serialization.Encoding.DER))
            with self._storage.transaction():
                self._storage.update_credential(
                    credential.id, credential.status,
                    certificate_chain=[c.public_bytes(serialization.Encoding.DER) for c in full],
                    certificate_serial=str(leaf.serial_number), issued_by_agent=int(issued_by_agent))
                self._audit(caller, "credential.install", abn=credential.abn, target=credential.id,
                            detail={"issuer": leaf.issuer.rfc4514_string(), "serial": str(leaf.serial_number)})
            return self._view(self._credential(credential_id))

    def crl(self) -> x509.CertificateRevocationList:
        """A fresh CRL of the issuing CA listing the revoked credentials it certified."""
        issuer_key, issuing, _ = self._ca_signer()
        with self._storage.transaction():
            number = self._storage.next_crl_number()
        return certificates.build_crl(issuer_key=issuer_key, issuer=issuing,
                                      revoked=self._storage.revoked_agent_certificates(), number=number,
                                      now=self._clock())

    # -- RAM key store files and PKCS#12 ----------------------------------------------------

    def inspect_keystore(self, data: bytes) -> list[tuple[ramkeystore.StoredCredential, str]]:
        """The credentials in a RAM key store file, each with its status; no password needed."""
        now = self._clock()
        return [(c, c.status(now)) for c in ramkeystore.parse(data)]

    def import_credential(
        self,
        caller: Caller,
        *,
        keystore: bytes | None,
        pkcs12: bytes | None,
        alias: str,
        password: str,
        backend: Backend | None,
        store: str | None,
        principal_authority: str,
        accepted_terms_version: str,
    ) -> Created:
        """Install a credential from a RAM key store file (by alias) or a PKCS#12 file.

        Its key goes into the chosen backend (into a token as a non-extractable object) and its
        chain next to it. An unregistered business is registered on the way, which only the local
        administrator may do, naming its principal authority; otherwise the caller must be the
        business's PA or one of its MCAs.

        Raises:
            InvalidArgument: wrong password, altered file, another key's certificate, unknown alias.
            FailedPrecondition: expired, or terms not accepted.
            PermissionDenied: the caller may not create credentials for that business.
        """
        with self._audited(caller, "credential.import", target=alias) as ctx:
            if (keystore is None) == (pkcs12 is None):
                raise InvalidArgument("give either a key store file or a PKCS#12 file")
            now = self._clock()
            if keystore is not None:
                stored = ramkeystore.find(ramkeystore.parse(keystore), alias)
                ramkeystore.check_consistent(stored, now)
                key = ramkeystore.decrypt(stored, password)
                chain, legal_name = stored.chain, stored.legal_name
            else:
                key, chain = ramkeystore.load_pkcs12(pkcs12, password)
                legal_name = ""
                if chain[0].not_valid_after_utc <= now:
                    raise FailedPrecondition(f"the PKCS#12 credential expired on "
                                             f"{chain[0].not_valid_after_utc.date().isoformat()}")
            abn, name = certificates.abn_of(chain[0]), certificates.name_of(chain[0])
            ctx.abn = normalise_abn(abn)
            key_type = keys_base.key_type_of(key.public_key())
            self._check_terms(accepted_terms_version)
            business = self._storage.get_business(ctx.abn)
            if business is None:
                # Bootstrapping: the administrator registers the business; its PA holds the credential.
                self._require_admin(caller, f"register business {ctx.abn}, which this credential belongs to")
                business = self.register_business(caller, ctx.abn, legal_name or name, principal_authority)
                holder_id = self._principal_named(principal_authority).id
            else:
                self._require(caller, business.abn, Action.CREATE_CREDENTIAL)
                holder_id = caller.principal_id

            def make_key(store: KeyStore, label: str) -> KeyInfo:
                if not isinstance(store, KeyImporter):
                    raise FailedPrecondition(f"the {store.scheme} backend cannot import keys")
                return store.import_key(label, key)

            return self._provision(
                caller, ctx, action="credential.import", business=business, name=name, key_type=key_type,
                backend=backend, store=store, terms_version=accepted_terms_version,
                holder_id=holder_id, make_key=make_key, chain_for=lambda _: chain,
            )

    def export_credential(self, caller: Caller, credential_id: str, *, format: str, password: str) -> bytes:
        """A credential whose key is in the key store file, as RAM's keystore.xml or PKCS#12 (PA or MCA).

        Raises:
            FailedPrecondition: the key is in a token (it cannot leave it), revoked, or no certificate.
            InvalidArgument: unknown format, or the password misses RAM's rule.
        """
        with self._audited(caller, "credential.export", target=credential_id) as ctx:
            credential = self._credential(credential_id)
            ctx.abn = credential.abn
            self._require(caller, credential.abn, Action.CREATE_CREDENTIAL)
            if format not in ("keystore-xml", "pkcs12"):
                raise InvalidArgument(f"unknown export format {format!r}; use keystore-xml or pkcs12")
            store, _ = self._credential_key(credential)
            if not isinstance(store, KeyExporter):
                raise FailedPrecondition(
                    f"credential {credential_id}'s key is in a PKCS#11 token and cannot leave it; only credentials "
                    "in the key store file can be exported")
            ramkeystore.check_password(password)
            item = ramkeystore.ExportItem(
                key=store.export_private_key(credential.key_uri),
                chain=tuple(self.certificate_chain(caller, credential_id)),
                abn=credential.abn, legal_name=self.get_business(credential.abn).name, name=credential.name)
            data = (ramkeystore.write([item], password, self._clock()) if format == "keystore-xml"
                    else ramkeystore.write_pkcs12(item, password))
            with self._storage.transaction():
                self._audit(caller, "credential.export", abn=credential.abn, target=credential.id,
                            detail={"format": format})
            return data

    # -- cloud software notifications ---------------------------------------------------------

    def _notification_view(self, notification: Notification) -> NotificationView:
        return NotificationView(
            notification=notification,
            status=notices.shown_status(notification, self.today()),
            business_name=self.get_business(notification.abn).name,
            dsp_name=self.get_business(notification.dsp_abn).name,
        )

    def _notification(self, notification_id: str) -> Notification:
        notification = self._storage.get_notification(notification_id)
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
        with self._storage.transaction():
            self._storage.save_notification(notification)
            self._audit(caller, action, abn=notification.abn, target=notification.id,
                        detail=self._notification_detail(notification))
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
            abns = [b.abn for b in self._storage.list_businesses()]
        else:
            abns = sorted({g.abn for g in self._storage.role_grants(principal_id=caller.principal_id)
                           if may({g.role}, Action.MANAGE_NOTIFICATIONS)})
        views = [self._notification_view(n) for n in self._storage.list_notifications(abns)] if abns else []
        return [v for v in views if status is None or v.status == status]

    # -- audit --------------------------------------------------------------------------------

    def list_audit(self, caller: Caller, abn: str | None, limit: int, after: int) -> tuple[list[AuditEntry], int]:
        """A page of the audit log, oldest first; returns the entries and the next cursor (0: no more)."""
        limit = limit or 100
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidArgument(f"--limit must be between 1 and {MAX_PAGE} (RAM exports at most {MAX_PAGE:,} "
                                  "records at a time)")
        if after < 0:
            raise InvalidArgument("--after must be a cursor printed by a previous page")
        if abn:
            abn = normalise_abn(abn)
            if not caller.is_admin:
                self._require(caller, abn, Action.VIEW_AUDIT)
        elif not caller.is_admin:
            raise PermissionDenied("only the local administrator may list every business's audit log; give --abn")
        entries = self._storage.audit_page(abn=abn or None, after=after, limit=limit)
        return entries, entries[-1].seq if len(entries) == limit else 0

    AUDIT_KEY_LABEL = "mcagent-audit"

    def _audit_key(self, create: bool = False) -> tuple[KeyStore, KeyInfo] | None:
        """The audit key, found by its label in the default backend (never through the
        database, which is what it guards); None if it does not exist and `create` is False."""
        _, store = self._keys.for_new_key(None, None)
        uri = store.label_uri(self.AUDIT_KEY_LABEL)
        try:
            return store, store.public_key(uri)
        except KeyNotFound:
            if not create:
                return None
        return store, store.create_key(CreateKeyRequest(label=self.AUDIT_KEY_LABEL, key_type=KeyType.EC_P256))

    def check_audit_anchor(self) -> str:
        """At start-up: the newest checkpoint must carry a valid signature of the audit key.

        If the log was cut back before every checkpoint, or its tail rewritten, while the agent
        was stopped, an ``audit.tampering-detected`` entry records it before anything else is
        appended (so the next checkpoint cannot launder it); `audit verify` reports it for good.

        Returns:
            The problem found, or "".
        """
        found = self._audit_key()
        if found is None:
            return ""  # the first start: no key, so no checkpoint was ever made
        newest = self._storage.newest_audit_entry(CHECKPOINT)
        if newest is None:
            problem = "the audit log holds no checkpoint although the agent's audit key exists: entries were removed"
        elif not self._checkpoint_verifier(found[1].public_key)(newest):
            problem = f"checkpoint entry {newest.seq} does not carry a valid signature: the log was rewritten"
        else:
            return ""
        log.error("audit log tampered with while the agent was stopped: %s", problem)
        with self._storage.transaction(changes_state=False):
            self._audit(SYSTEM_ACTOR, TAMPERING, outcome="refused", detail={"problem": problem})
        return problem

    @staticmethod
    def _checkpoint_verifier(public_key: Any) -> Callable[[AuditEntry], bool]:
        def valid(entry: AuditEntry) -> bool:
            if entry.detail.get("signed_seq") != entry.seq - 1:
                return False
            try:
                signature = base64.b64decode(entry.detail.get("signature", ""), validate=True)
                digest = hashlib.sha256(checkpoint_message(entry.seq - 1, entry.prev_hash)).digest()
                public_key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
                return True
            except (InvalidSignature, ValueError, TypeError):
                return False
        return valid

    def checkpoint_audit(self, force: bool = False) -> AuditEntry | None:
        """Sign the head of the audit chain with the audit key, as a checkpoint entry.

        Written at start-up (creating the key if needed), periodically when the log has grown
        since the last checkpoint, and at shutdown. Returns the entry, or None if nothing new
        needed signing.
        """
        store, key = self._audit_key(create=True)

        def make(seq: int, head: str) -> dict[str, Any]:
            digest = hashlib.sha256(checkpoint_message(seq, head)).digest()
            signature = store.sign(KeySignRequest(uri=key.uri, algorithm=SignatureAlgorithm.ECDSA_SHA256,
                                                  key_type=key.key_type, digest=digest))
            return dict(at=self._clock(), actor=SYSTEM_ACTOR, action=CHECKPOINT, outcome="allowed",
                        detail={"signed_seq": seq, "signature": base64.b64encode(signature).decode("ascii"),
                                "algorithm": SignatureAlgorithm.ECDSA_SHA256.algorithm_name})

        seq, _ = self._storage.audit_head()
        if not force and self._last_checkpoint is not None and self._last_checkpoint.seq == seq:
            return None
        self._last_checkpoint = self._storage.append_signed(make)
        return self._last_checkpoint

    def verify_audit(self, caller: Caller, expect_head: str = "") -> VerifyResult:
        """Check the whole hash chain and its signed checkpoints (local administrator only).

        Args:
            expect_head: ``SEQ:HASH`` of an entry recorded elsewhere, which must still be there.
        """
        self._require_admin(caller, "verify the audit log")
        expected = None
        if expect_head:
            seq, _, wanted = expect_head.partition(":")
            if not seq.isdigit() or len(wanted) != 64:
                raise InvalidArgument("--expect-head must be SEQ:HASH as printed by `mcagent audit verify`")
            expected = (int(seq), wanted)
        found = self._audit_key()
        checkpoint_valid = self._checkpoint_verifier(found[1].public_key) if found else (lambda _: False)

        def seen(entries: Iterator[AuditEntry]) -> Iterator[AuditEntry]:
            for entry in entries:
                if expected and entry.seq == expected[0]:
                    found_hashes.append(entry.hash)
                yield entry

        found_hashes: list[str] = []
        result = verify_chain(seen(self._storage.audit_entries()), checkpoint_valid)
        if not result.ok:
            return result
        last = self._last_checkpoint
        problem = ""
        tampering = self._storage.newest_audit_entry(TAMPERING)
        if tampering is not None:
            problem = (f"entry {tampering.seq}: at start-up on {tampering.at.isoformat()} the agent found the log "
                       f"tampered with ({tampering.detail.get('problem', '')})")
        elif found is not None and result.checkpoint_seq == 0:
            problem = ("the log holds no checkpoint although the agent's audit key exists: entries were removed "
                       "(or the log was replaced)")
        elif last is not None and (result.entries < last.seq or result.checkpoint_seq < last.seq):
            problem = (f"the log ends before checkpoint entry {last.seq}, which this agent wrote at "
                       f"{last.at.isoformat()}: the newest entries were removed")
        elif expected and found_hashes != [expected[1]]:
            problem = (f"entry {expected[0]} is not the one expected (--expect-head): "
                       + ("the log is shorter" if not found_hashes else "it has a different hash"))
        if problem:
            return dataclasses.replace(result, ok=False, problem=problem)
        return result

    # -- start-up -----------------------------------------------------------------------------

    def finish_interrupted_work(self, started_before: dt.timedelta | None = None) -> None:
        """Remove credentials whose creation was interrupted (and their keys), and destroy
        the keys of revoked credentials whose destruction did not complete.

        Args:
            started_before: while serving, only creations older than this are taken as
                interrupted (e.g. by a database fault that also stopped their clean-up);
                None at start-up, when none can be in progress.
        """
        for credential in self._storage.list_credentials(status=CredentialStatus.CREATING):
            if started_before is not None and self._clock() - credential.created_at < started_before:
                continue
            removed = self._keys.delete_key(credential.key_uri)
            with self._storage.transaction():
                self._storage.delete_credential(credential.id)
            log.warning("removed credential %s whose creation was interrupted (%d key objects destroyed)",
                        credential.id, removed)
        for credential in self._storage.list_credentials(status=CredentialStatus.REVOKED, key_destroyed=False):
            self._destroy_revoked_key(credential)
