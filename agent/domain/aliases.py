"""RAM aliases and renewal that software does not notice; the per-credential "local" flag.

SBR software selects a credential by its alias `ABRD:<ABN>_<name>`. The agent keeps which
credential each alias names: the first credential of a name takes it; a newer credential of
the same name takes it over once it has its certificate (created or renewed with a leaf from
the agent's CA, or a certificate installed or imported). The switch is one transaction with
one `credential.alias-moved` audit entry; the permissions and the local flag carry over; the
old credential stays usable by its id until it expires or is revoked. Software configured
with the alias signs with the new key on its next request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from cryptography import x509
from mcagent.agent.domain import credential as lifecycle
from mcagent.agent.domain.calls import AuditContext, Caller, CredentialView
from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.errors import Aborted, FailedPrecondition, NotFound
from mcagent.agent.domain.guard import ServiceBase
from mcagent.agent.domain.model import Credential
from mcagent.agent.domain.policy import Action
from mcagent.agent.domain.ramkeystore import ALIAS_PREFIX, alias_for
from mcagent.hsm.base import CreateKeyRequest, KeyType

log = logging.getLogger(__name__)

_LIVE = (CredentialStatus.ACTIVE, CredentialStatus.UNASSIGNED)


@dataclass(frozen=True)
class Renewed:
    """A renewal: the new credential, its CSR (None when the agent's CA issued its certificate)."""

    view: CredentialView
    alias: str
    csr: x509.CertificateSigningRequest | None
    alias_moved: bool


class Aliases(ServiceBase):
    """Resolve aliases, move them on renewal, flag credentials local."""

    def credential_id_for(self, reference: str) -> str:
        """The credential id a caller's reference names: an id as given, an alias as it names now.

        The one resolution every sign path (Sign, SignBatch, streams, STS, XML) calls.

        Raises:
            NotFound: an alias that names no credential.
        """
        if not reference.startswith(ALIAS_PREFIX):
            return reference
        target = self._records.alias_target(reference)
        if target is None:
            raise NotFound(f"no credential with alias {reference!r}")
        return target

    def _credential_named(self, caller: Caller, ctx: AuditContext, reference: str, action: Action) -> Credential:
        """The credential an id or alias names, loaded and authorised for `action`.

        An alias and its credential are read from the records, both now: an alias moves in the
        same commit that installs the new credential's certificate, so a request's cached view
        (of when it began) could pair a moved alias with the credential as it was before.
        """
        credential_id = self.credential_id_for(reference)
        return self._authorised_credential(caller, ctx, credential_id, action, fresh=credential_id != reference)

    def _alias_follows(self, caller: Caller | str, credential: Credential, why: str) -> bool:
        """Point the credential's alias at it, unless a newer live credential holds it already.

        The first credential of a name takes its alias silently (its create entry says it all);
        a move is one transaction: the alias, the permissions and local flag carried over, and
        one `credential.alias-moved` entry.

        Returns:
            Whether the alias moved from another credential.
        """
        alias = alias_for(credential.abn, credential.name)
        actor = caller if isinstance(caller, str) else caller.name
        with self._records.transaction():
            current_id = self._records.alias_target(alias)
            if current_id == credential.id:
                return False
            current = self._records.get_credential(current_id) if current_id else None
            if current is not None and current.status in _LIVE and \
                    (current.created_at, current.id) > (credential.created_at, credential.id):
                return False  # never backwards: a newer credential holds it (ties: the order lists use)
            now = self._clock()
            if not self._records.point_alias(alias, credential.id, current_id, now):
                raise Aborted(f"alias {alias} moved while being moved; look again and retry")
            if current is None:
                return False
            if current.permissions is not None:
                mine = self._records.get_credential(credential.id)
                self._records.update_credential(credential.id, mine.status, permissions=current.permissions,
                                                first_used_at=mine.first_used_at or current.first_used_at)
            if self._records.is_local(current.id):
                self._records.set_local(credential.id, True, now, actor)
            self._audit(caller, "credential.alias-moved", abn=credential.abn, target=credential.id,
                        detail={"alias": alias, "from": current.id, "to": credential.id, "why": why})
        log.info("alias %s moved from credential %s to %s (%s) by %s", alias, current.id, credential.id, why, actor)
        return True

    def renew_credential(self, caller: Caller, reference: str, *, issue: bool, accepted_terms_version: str,
                         key_type: KeyType | None = None) -> Renewed:
        """A new key for the credential an alias (or id) names, of the same business and name.

        With `issue`, the agent's CA certifies it and the alias moves at once; otherwise the
        answer carries a CSR, and the alias moves when its certificate is installed. The old
        credential keeps working by its id meanwhile and after.

        Raises:
            PermissionDenied: not the business's PA or one of its MCAs.
            FailedPrecondition: the credential is revoked, or the terms are not accepted.
            NotFound: no such credential or alias.
        """
        with self._audited(caller, "credential.renew", target=reference) as ctx:
            old = self._credential_named(caller, ctx, reference, Action.CREATE_CREDENTIAL)
            if old.status is CredentialStatus.REVOKED:
                raise FailedPrecondition(f"credential {old.id} is revoked; create a new credential instead")
            self._check_terms(accepted_terms_version)
            key_type = key_type or old.key_type
            business = self.get_business(old.abn)
            created = self._provision(
                caller, ctx, action="credential.renew", business=business, name=old.name, key_type=key_type,
                backend=old.backend, store=None, terms_version=accepted_terms_version, holder_id=caller.principal_id,
                make_key=lambda store, label: store.create_key(CreateKeyRequest(label=label, key_type=key_type)),
                chain_for=lambda key: self._issue_leaf(key, business.abn, old.name),
            )
        new = created.view.credential
        moved = self._alias_follows(caller, new, "renewed; certificate issued by the agent CA") if issue else False
        csr = None if issue else self.csr(caller, new.id)
        return Renewed(self._view(self._credential(new.id)), alias_for(new.abn, new.name), csr, moved)

    def set_credential_local(self, caller: Caller, reference: str, local: bool) -> CredentialView:
        """Flag a credential local (it refuses ActAs), or clear the flag (PA or MCA)."""
        with self._audited(caller, "credential.local", target=reference) as ctx:
            credential = self._credential_named(caller, ctx, reference, Action.CREATE_CREDENTIAL)
            lifecycle.check_usable(credential.id, credential.status, credential.unassigned_at, self._clock())
            with self._records.transaction():
                self._records.set_local(credential.id, local, self._clock(), caller.name)
                self._audit(caller, "credential.local", abn=credential.abn, target=credential.id,
                            detail={"local": local})
        return self._view(credential)

    def alias_and_local(self, credential_ids: list[str]) -> tuple[dict[str, str], set[str]]:
        """For display: the alias each of these credentials holds, and which are flagged local."""
        return (self._records.aliases_of(credential_ids),
                {i for i in credential_ids if self._records.is_local(i)})
