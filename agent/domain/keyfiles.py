"""RAM key store files (keystore.xml) and PKCS#12: inspect, import, export."""

from __future__ import annotations

import logging

from mcagent.agent.domain import certificates, ramkeystore
from mcagent.agent.domain.abn import normalise_abn
from mcagent.agent.domain.calls import (
    Caller,
    Created,
)
from mcagent.agent.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
)
from mcagent.agent.domain.guard import ServiceBase
from mcagent.agent.domain.model import Backend
from mcagent.agent.domain.policy import Action
from mcagent.hsm import base as keys_base
from mcagent.hsm.base import (
    KeyExporter,
    KeyImporter,
    KeyInfo,
    KeyStore,
)

log = logging.getLogger(__name__)


class KeyFiles(ServiceBase):
    """Credentials in and out of key files."""

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
            business = self._records.get_business(ctx.abn)
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

            created = self._provision(
                caller, ctx, action="credential.import", business=business, name=name, key_type=key_type,
                backend=backend, store=store, terms_version=accepted_terms_version,
                holder_id=holder_id, make_key=make_key, chain_for=lambda _: chain,
            )
        self._alias_follows(caller, created.view.credential, "imported with its certificate")  # SBR
        return created

    def export_credential(self, caller: Caller, credential_id: str, *, format: str, password: str) -> bytes:
        """A credential whose key is in the key store file, as RAM's keystore.xml or PKCS#12 (PA or MCA).

        Raises:
            FailedPrecondition: the key is in a token (it cannot leave it), revoked, or no certificate.
            InvalidArgument: unknown format, or the password misses RAM's rule.
        """
        with self._audited(caller, "credential.export", target=credential_id) as ctx:
            credential = self._authorised_credential(caller, ctx, credential_id, Action.CREATE_CREDENTIAL)
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
            self._record_key_use(caller, "credential.export", credential, {"format": format})
            return data

