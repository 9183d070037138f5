"""The agent's CA and credentials' certificates: CA, CSR, chain, install, CRL."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mcagent.agent.domain import certificates
from mcagent.agent.domain.calls import (
    SYSTEM_ACTOR,
    Caller,
    CredentialView,
)
from mcagent.agent.domain.credential import CredentialStatus
from mcagent.agent.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
)
from mcagent.agent.domain.guard import ServiceBase
from mcagent.agent.domain.model import Credential
from mcagent.agent.domain.policy import Action
from mcagent.hsm.base import (
    CertificateStore,
    CreateKeyRequest,
    KeyDeleter,
    KeyInfo,
    KeyStore,
    KeyType,
)
from mcagent.hsm.signer import store_private_key

log = logging.getLogger(__name__)


class Pki(ServiceBase):
    """Certificates and the agent's CA."""

    # -- certificates and the agent's CA ----------------------------------------------------

    CA_LABELS = {"root": "mcagent-ca-root", "issuing": "mcagent-ca-issuing"}

    def ensure_ca(self, caller: Caller | str = SYSTEM_ACTOR) -> bool:
        """Create the agent's root and issuing CA (keys in the default backend) unless they exist.

        Returns:
            True when they were created now.
        """
        if len(self._records.ca()) == 2:
            return False
        _, store = self._custody.for_new_key(None, None)
        if not isinstance(store, KeyDeleter):
            raise FailedPrecondition(f"the {store.scheme} backend cannot hold the CA keys")
        keys: list[KeyInfo] = []
        # One process at a time creates it (instances starting at once on one database), and
        # looks again once it holds the lock: a CA another one made meanwhile is kept.
        with self._records.transaction():
            self._records.lock("ca")
            if len(self._records.ca()) == 2:
                return False
            for label in self.CA_LABELS.values():
                store.delete_key(store.label_uri(label))  # left over from an interrupted creation, if any
            try:
                now = self._clock()
                for role in ("root", "issuing"):
                    keys.append(store.create_key(CreateKeyRequest(label=self.CA_LABELS[role],
                                                                  key_type=KeyType.RSA_2048)))
                root_key, issuing_key = (store_private_key(store, k) for k in keys)
                root = certificates.make_root(root_key, now)
                issuing = certificates.make_issuing(issuing_key, root_key, root, now)
                with self._records.transaction():
                    for role, key, cert in (("root", keys[0], root), ("issuing", keys[1], issuing)):
                        self._records.insert_ca(role, key.uri, key.key_type.value,
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
                created = self._records.ca()["root"]["created_at"]
                raise AlreadyExists(f"the agent's CA already exists (created {created})")
            return self.ca_certificates()

    def ca_certificates(self) -> tuple[x509.Certificate, x509.Certificate]:
        """The root and issuing CA certificates."""
        rows = self._records.ca()
        if len(rows) != 2:
            raise FailedPrecondition("the agent's CA does not exist yet; run `mcagent ca init`")
        return tuple(x509.load_der_x509_certificate(rows[r]["certificate"]) for r in ("root", "issuing"))

    def _ca_signer(self) -> tuple[Any, x509.Certificate, x509.Certificate]:
        root, issuing = self.ca_certificates()
        uri = self._records.ca()["issuing"]["key_uri"]
        store = self._custody.for_uri(uri)
        return store_private_key(store, store.public_key(uri)), issuing, root

    def _issue_leaf(self, key: KeyInfo, abn: str, name: str) -> tuple[x509.Certificate, ...]:
        issuer_key, issuing, root = self._ca_signer()
        leaf = certificates.issue_leaf(issuer_key=issuer_key, issuer=issuing, public_key=key.public_key, abn=abn,
                                       name=name, now=self._clock(), publication=self._publication)
        return leaf, issuing, root

    def _issued_by_agent(self, leaf: x509.Certificate) -> bool:
        """Whether the agent's issuing CA signed `leaf` (so its revocation goes on our CRL)."""
        issuing = self._records.ca().get("issuing")
        return issuing is not None and certificates.issued_by(
            leaf, x509.load_der_x509_certificate(issuing["certificate"]))

    def decide_crl_membership(self) -> None:
        """Decide from their certificates whether credentials recorded before such decisions
        were made belong on the CRL (start-up; e.g. agent-issued certificates installed with
        `credential install`, once recorded as issued elsewhere)."""
        for credential_id, leaf in self._records.undecided_crl_membership():
            ours = self._issued_by_agent(x509.load_der_x509_certificate(leaf))
            with self._records.transaction():
                self._records.set_issued_by_agent(credential_id, ours)
            if ours:
                log.info("credential %s: its certificate is the agent's; it goes on the CRL once revoked",
                         credential_id)

    def crl_entries(self) -> list[tuple[int, dt.datetime]]:
        """(serial, revocation time) of every certificate the agent's CRL lists now."""
        return self._records.revoked_agent_certificates()

    def _credential_key(self, credential: Credential) -> tuple[KeyStore, KeyInfo]:
        if credential.status is CredentialStatus.REVOKED:
            raise FailedPrecondition(f"credential {credential.id} is revoked; its key was destroyed")
        store = self._custody.for_uri(credential.key_uri)
        return store, store.public_key(credential.key_uri)

    def csr(self, caller: Caller, credential_id: str) -> x509.CertificateSigningRequest:
        """A PKCS#10 request for the credential, signed inside its backend (PA or MCA)."""
        with self._audited(caller, "credential.csr", target=credential_id) as ctx:
            credential = self._authorised_credential(caller, ctx, credential_id, Action.CREATE_CREDENTIAL)
            store, key = self._credential_key(credential)
            request = certificates.build_csr(store_private_key(store, key), credential.abn, credential.name)
            self._record_key_use(caller, "credential.csr", credential)
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
            credential = self._authorised_credential(caller, ctx, credential_id, Action.CREATE_CREDENTIAL)
            _, key = self._credential_key(credential)
            leaf, *rest = certificates.load_certificates(certificate, "--certificate")
            extra = certificates.load_certificates(chain, "--chain") if chain else []
            certificates.check_installable(leaf, public_key=key.public_key, abn=credential.abn, now=self._clock())
            full = [leaf, *rest, *extra]
            certificates.check_chain_size(full)
            store = self._custody.for_uri(credential.key_uri)
            issued_by_agent = self._issued_by_agent(leaf)  # decided from the certificate, wherever it came from
            if isinstance(store, CertificateStore):
                store.store_certificate(credential.key_uri, leaf.public_bytes(serialization.Encoding.DER))
            with self._records.transaction():
                self._records.update_credential(
                    credential.id, credential.status,
                    certificate_chain=[c.public_bytes(serialization.Encoding.DER) for c in full],
                    certificate_serial=str(leaf.serial_number), issued_by_agent=int(issued_by_agent))
                self._audit(caller, "credential.install", abn=credential.abn, target=credential.id,
                            detail={"issuer": leaf.issuer.rfc4514_string(), "serial": str(leaf.serial_number)})
                self._alias_follows(caller, credential, "certificate installed")  # SBR: atomic with the install
            return self._view(self._credential(credential_id))

    def crl(self) -> x509.CertificateRevocationList:
        """A fresh CRL of the issuing CA listing the revoked credentials it certified."""
        issuer_key, issuing, _ = self._ca_signer()
        with self._records.transaction():
            number = self._records.next_crl_number()
        return certificates.build_crl(issuer_key=issuer_key, issuer=issuing,
                                      revoked=self._records.revoked_agent_certificates(), number=number,
                                      now=self._clock())

