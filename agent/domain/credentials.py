"""Machine credentials: create and renew, list and show, revoke, claim, permissions."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mcagent.agent.domain import certificates
from mcagent.agent.domain import credential as lifecycle
from mcagent.agent.domain.abn import normalise_abn
from mcagent.agent.domain.audit import (
    MAX_PAGE,
)
from mcagent.agent.domain.calls import (
    DEFAULT_PAGE,
    MAX_CREDENTIAL_NAME,
    SYSTEM_ACTOR,
    AuditContext,
    Caller,
    Created,
    CredentialView,
    check_name,
    decode_page_token,
    encode_page_token,
)
from mcagent.agent.domain.credential import CredentialStatus, Transition
from mcagent.agent.domain.errors import (
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
)
from mcagent.agent.domain.guard import ServiceBase
from mcagent.agent.domain.model import Backend, Business, Credential
from mcagent.agent.domain.permissions import ALL_PERMISSIONS, CATALOGUE, Permission, check_permissions
from mcagent.agent.domain.policy import Action, may
from mcagent.agent.domain.terms import CURRENT_TERMS, MachineTerms
from mcagent.hsm import base as keys_base
from mcagent.hsm.base import (
    CertificateStore,
    CreateKeyRequest,
    KeyInfo,
    KeyStore,
    KeyType,
)
from mcagent.hsm.errors import KeyStoreError

log = logging.getLogger(__name__)


class Credentials(ServiceBase):
    """The life of a machine credential, except signing, certificates and key files."""

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
            reminders=tuple(self._records.reminders(credential.id)),
        )

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
            created = self._provision(
                caller, ctx, action="credential.create", business=business, name=name, key_type=key_type,
                backend=backend, store=store, terms_version=accepted_terms_version,
                holder_id=caller.principal_id,
                make_key=lambda store, label: store.create_key(CreateKeyRequest(label=label, key_type=key_type)),
                chain_for=lambda key: self._issue_leaf(key, business.abn, name),
            )
        self._alias_follows(caller, created.view.credential, "created; certificate issued by the agent CA")  # SBR
        return created

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
        ctx: AuditContext,
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
        name = check_name("credential name", name, MAX_CREDENTIAL_NAME)
        if len(name.encode("utf-8")) > MAX_CREDENTIAL_NAME:  # the certificate library counts UTF-8 bytes
            raise InvalidArgument(f"credential name is {len(name.encode('utf-8'))} bytes long in UTF-8; the "
                                  f"certificate's common name holds at most {MAX_CREDENTIAL_NAME}")
        replaced = [c for c in self._records.list_credentials(abn=business.abn, name=name)
                    if c.status in (CredentialStatus.ACTIVE, CredentialStatus.UNASSIGNED)]
        previous = replaced[-1] if replaced else None
        backend, store = self._custody.for_new_key(backend, store)
        credential_id = str(uuid.uuid4())
        ctx.target = credential_id
        with self._records.transaction():
            self._records.insert_credential(Credential(
                id=credential_id, abn=business.abn, name=name, status=CredentialStatus.CREATING, key_type=key_type,
                backend=backend, key_uri=store.label_uri(credential_id), created_at=self._clock(),
                created_by=caller.name, terms_version=terms_version, holder_id=holder_id,
                permissions=previous.permissions if previous else None,
            ))
        try:
            key = make_key(store, credential_id)
        except BaseException:
            with self._records.transaction():
                self._records.delete_credential(credential_id)
            raise
        try:
            chain = chain_for(key)
            certificates.check_chain_size(chain)
            issued_by_agent = self._issued_by_agent(chain[0])
            if isinstance(store, CertificateStore):  # next to the key, for PKCS#11-aware software
                store.store_certificate(key.uri, chain[0].public_bytes(serialization.Encoding.DER))
            with self._records.transaction():
                self._records.update_credential(
                    credential_id, CredentialStatus.CREATING, status=CredentialStatus.ACTIVE, key_uri=key.uri,
                    certificate_chain=[c.public_bytes(serialization.Encoding.DER) for c in chain],
                    certificate_serial=str(chain[0].serial_number), issued_by_agent=int(issued_by_agent),
                )
                self._audit(caller, action, abn=business.abn, target=credential_id, detail={
                    "name": name, "key_type": key_type.value, "backend": backend.value, "terms_version": terms_version,
                    "replaces": previous.id if previous else None, "certificate_serial": str(chain[0].serial_number),
                })
        except BaseException as exc:
            self._custody.delete_key(key.uri)
            with self._records.transaction():
                self._records.delete_credential(credential_id)
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
        after = decode_page_token(page_token)
        self.record_due_reminders()
        if abn:
            abn = normalise_abn(abn)
            self._may_view(caller, abn)
            credentials = self._records.list_credentials(abn=abn, page=(after, page_size + 1))
        elif caller.is_admin:
            credentials = self._records.list_credentials(page=(after, page_size + 1))
        else:
            visible = sorted({g.abn for g in self._records.role_grants(principal_id=caller.principal_id)
                              if may({g.role}, Action.VIEW)})
            credentials = self._records.list_credentials(abns=visible, page=(after, page_size + 1))
        more = len(credentials) > page_size
        credentials = credentials[:page_size]
        next_token = encode_page_token(credentials[-1]) if more else ""
        return [self._view(c) for c in credentials], next_token

    def public_key_pem(self, caller: Caller, credential_id: str) -> str:
        """The credential's public key, PEM SubjectPublicKeyInfo."""
        credential = self._credential(credential_id)
        self._may_view(caller, credential.abn)
        if credential.status is CredentialStatus.REVOKED:
            raise FailedPrecondition(f"credential {credential_id} is revoked; its key was destroyed")
        info = self._custody.for_uri(credential.key_uri).public_key(credential.key_uri)
        return info.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")


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
            credential = self._authorised_credential(caller, ctx, credential_id, Action.REVOKE_CREDENTIAL)
            status = lifecycle.next_status(credential.id, credential.status, Transition.REVOKE)
            if not confirm:
                raise FailedPrecondition(
                    f"revoking credential {credential_id} cannot be undone: the key is destroyed and the "
                    "credential can never be used or reinstated; confirm with --yes"
                )
            with self._records.transaction():
                self._records.update_credential(credential.id, credential.status, status=status,
                                                revoked_at=self._clock(), revoked_by=caller.name)
                self._audit(caller, "credential.revoke", abn=credential.abn, target=credential.id)
        log.info("credential %s (%s) of business %s revoked by %s", credential.id, credential.name, credential.abn,
                 caller.name)
        self._destroy_revoked_key(self._credential(credential_id))
        return self._view(self._credential(credential_id))

    def _destroy_revoked_key(self, credential: Credential) -> None:
        try:
            destroyed = self._custody.delete_key(credential.key_uri)
            with self._records.transaction():
                self._records.lock("key-destroyed")  # instances finishing the same one record it once
                current = self._records.get_credential(credential.id)
                if current is None or current.key_destroyed:
                    return
                self._records.update_credential(credential.id, CredentialStatus.REVOKED, key_destroyed=1)
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
            credential = self._authorised_credential(caller, ctx, credential_id, Action.CLAIM_CREDENTIAL)
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
            with self._records.transaction():
                self._records.update_credential(credential.id, credential.status, status=status,
                                                holder_id=caller.principal_id, unassigned_at=None)
                self._records.delete_reminders(credential.id)
                self._audit(caller, "credential.claim", abn=credential.abn, target=credential.id)
            log.info("credential %s of business %s claimed by %s", credential.id, credential.abn, caller.name)
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
                with self._records.transaction():
                    self._records.update_credential(credential.id, credential.status, permissions=chosen)
                    self._audit(caller, "credential.permissions", abn=credential.abn, target=credential.id,
                                detail={"before": list(credential.permissions or ALL_PERMISSIONS),
                                        "after": list(chosen)})
                log.info("permissions of credential %s of business %s set by %s: %s", credential.id, credential.abn,
                         caller.name, ", ".join(chosen) or "none")
                credential = self._credential(credential_id)
        granted = set(credential.permissions) if credential.permissions is not None else set(ALL_PERMISSIONS)
        return credential, [(CATALOGUE[p], p in granted) for p in ALL_PERMISSIONS]
