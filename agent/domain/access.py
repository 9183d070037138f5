"""Who is calling and who may do what: authentication, principals, businesses, roles."""

from __future__ import annotations

import logging
import re
import secrets
import uuid

from mcagent.agent.domain import credential as lifecycle
from mcagent.agent.domain.abn import normalise_abn
from mcagent.agent.domain.calls import (
    MAX_BUSINESS_NAME,
    Caller,
    check_name,
    normalise_subject,
    roles_text,
    token_hash,
)
from mcagent.agent.domain.credential import CredentialStatus, Transition
from mcagent.agent.domain.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from mcagent.agent.domain.guard import ServiceBase
from mcagent.agent.domain.model import Business, Principal, RoleGrant
from mcagent.agent.domain.policy import MANAGES, MCA, PA, Role, may_manage

log = logging.getLogger(__name__)

PRINCIPAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
TOKEN_PREFIX = "mcat_"
MAX_UID = 2**32 - 2  # (uid_t)-1 means "no uid" to the kernel


class Access(ServiceBase):
    """Authentication, principals, businesses and roles."""

    # -- authentication ---------------------------------------------------------------------

    def authenticate_token(self, token: str) -> Caller:
        """The principal holding bearer token `token`."""
        with self._audited("unknown caller", "auth.token", unauthenticated=True):
            principal = self._cached.principal_by_token_hash(token_hash(token))
            if principal is None:
                raise Unauthenticated("the bearer token is not known to this agent")
            return Caller(principal.name, principal.id)

    def authenticate_uid(self, uid: int, admin_uids: frozenset[int]) -> Caller:
        """The caller behind a Unix-socket peer with `uid`."""
        if uid in admin_uids:
            return Caller(f"local-administrator(uid={uid})", is_admin=True)
        with self._audited(f"uid {uid}", "auth.uid", unauthenticated=True):
            principal = self._records.principal_where("uid", uid)
            if principal is None:
                raise Unauthenticated(
                    f"uid {uid} is not a principal of this agent; ask the administrator to run "
                    f"`mcagent principal create NAME --uid {uid}`, or pass a token"
                )
            return Caller(principal.name, principal.id)

    def authenticate_subject(self, subject: str) -> Caller:
        """The principal mapped to TLS client certificate subject `subject`."""
        with self._audited(f"certificate {subject}", "auth.certificate", unauthenticated=True):
            principal = self._records.principal_where("certificate_subject", subject)
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
                if value is not None and self._records.principal_where(column, value) is not None:
                    raise AlreadyExists(f"a principal with {what} {value!r} already exists")
            principal = Principal(str(uuid.uuid4()), name, uid, subject, self._clock())
            token = TOKEN_PREFIX + secrets.token_urlsafe(32)
            with self._records.transaction():
                self._records.insert_principal(principal, token_hash(token), caller.name)
                self._audit(caller, "principal.create", target=name,
                            detail={"uid": uid, "certificate_subject": subject})
            log.info("principal %s created by %s (uid %s, certificate subject %s)", name, caller.name,
                     "none" if uid is None else uid, subject or "none")
            return principal, token

    def list_principals(self, caller: Caller) -> list[Principal]:
        """Every principal (local administrator only)."""
        self._require_admin(caller, "list principals")
        return self._records.list_principals()

    def _principal_named(self, name: str) -> Principal:
        principal = self._records.principal_where("name", name)
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
            name = check_name("business name", name, MAX_BUSINESS_NAME)
            if not principal_authority:
                raise InvalidArgument("a business needs its principal authority (--principal-authority PRINCIPAL)")
            pa = self._principal_named(principal_authority)
            business = Business(abn, name, self._clock())
            with self._records.transaction():
                if not self._records.insert_business(business):
                    raise AlreadyExists(f"business {abn} is already registered")
                self._records.grant_role(abn, pa.id, PA, business.registered_at, caller.name)
                self._audit(caller, "business.register", abn=abn, target=pa.name,
                            detail={"name": name, "principal_authority": pa.name})
            log.info("business %s (%s) registered by %s with principal authority %s", abn, name, caller.name, pa.name)
            return business

    def get_business(self, abn: str) -> Business:
        """The business with this ABN (any authenticated caller may look one up).

        Raises:
            InvalidArgument: bad ABN.
            NotFound: not registered.
        """
        abn = normalise_abn(abn)
        business = self._records.get_business(abn)
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
            held = f"holds {roles_text(roles)}" if roles else "holds no role there"
            raise PermissionDenied(
                f"{caller.name} may not {verb} the {role.title} role in business "
                f"{abn}: that needs {roles_text(managers)}, and {caller.name} {held}"
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
            with self._records.transaction():
                if not self._records.grant_role(abn, principal.id, role, now, caller.name):
                    raise AlreadyExists(f"{principal.name} already holds the {role.title} role in business {abn}")
                self._audit(caller, "role.grant", abn=abn, target=principal.name, detail={"role": role.value})
            log.info("role %s in business %s granted to %s by %s", role.value, abn, principal.name, caller.name)
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
            with self._records.transaction():
                if not self._records.remove_role(abn, principal.id, role):
                    raise NotFound(f"{principal.name} does not hold the {role.title} role in business {abn}")
                self._audit(caller, "role.remove", abn=abn, target=principal.name, detail={"role": role.value})
                if not self._records.roles_of(abn, principal.id) & {PA, MCA}:
                    for credential in self._records.list_credentials(abn=abn, holder_id=principal.id,
                                                                     status=CredentialStatus.ACTIVE):
                        status = lifecycle.next_status(credential.id, credential.status, Transition.UNASSIGN)
                        self._records.update_credential(credential.id, credential.status, status=status,
                                                        holder_id=None, unassigned_at=now)
                        self._audit(caller, "credential.unassign", abn=abn, target=credential.id,
                                    detail={"former_holder": principal.name,
                                            "works_until": lifecycle.window_end(now).isoformat()})
                        unassigned.append(credential.id)
            log.info("role %s in business %s removed from %s by %s%s", role.value, abn, principal.name, caller.name,
                     f"; credentials unassigned: {', '.join(unassigned)}" if unassigned else "")
            return unassigned

    def list_roles(self, caller: Caller, abn: str) -> list[RoleGrant]:
        """Who holds which role in a business (its role holders and the administrator may see)."""
        abn = normalise_abn(abn)
        self.get_business(abn)
        if not caller.is_admin and not self._roles(caller, abn):
            raise PermissionDenied(f"{caller.name} holds no role in business {abn}")
        return self._records.role_grants(abn=abn)

