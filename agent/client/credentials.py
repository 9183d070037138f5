"""The CredentialService calls, written once for both `Client` and `AsyncClient`.

Each method builds the request and names the reply's conversion; `_call` (sync or asyncio)
sends it, so on `AsyncClient` the same methods return awaitables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.client import types as t
from mcagent.client.convert import converter, from_pb, to_pb_enum

MAX_BATCH = 1000  # items per SignBatch request (the agent refuses more)


def _field(name: str) -> Callable[[Any], Any]:
    return lambda reply: getattr(reply, name)


class CallsBase:
    """Sends one request; implemented by the sync and asyncio clients."""

    def _call(self, service: str, method: str, request: Any, convert: Callable[[Any], Any]) -> Any:
        raise NotImplementedError


class CredentialCalls(CallsBase):
    """Machine credentials: create, inspect, sign, revoke."""

    def machine_terms(self) -> t.MachineTerms:
        """The current machine terms of use; their version is what `create_credential` accepts."""
        return self._call("credentials", "GetMachineTerms", pb.GetMachineTermsRequest(), converter(t.MachineTerms))

    def create_credential(self, abn: str, name: str, *, accepted_terms_version: str,
                          key_type: t.KeyType | str | None = None, backend: t.Backend | str | None = None,
                          store: str = "") -> t.CreatedCredential:
        """A new credential (PA or MCA); the same name again renews it.

        Args:
            accepted_terms_version: the `machine_terms().version` the caller accepts.
            key_type: default RSA-2048. backend: default the agent's. store: a key store file
                the operator configured, by name.
        """
        request = pb.CreateCredentialRequest(abn=abn, name=name, key_type=to_pb_enum(t.KeyType, key_type),
                                             backend=to_pb_enum(t.Backend, backend), store=store,
                                             accepted_terms_version=accepted_terms_version)
        return self._call("credentials", "CreateCredential", request, converter(t.CreatedCredential))

    def get_credential(self, credential_id: str) -> t.Credential:
        return self._call("credentials", "GetCredential", pb.GetCredentialRequest(id=credential_id),
                          converter(t.Credential))

    def list_credentials(self, abn: str = "", *, page_size: int = 0, page_token: str = "") -> t.CredentialPage:
        """One page (100 by default, at most 1,000); pass `next_page_token` on for the next."""
        request = pb.ListCredentialsRequest(abn=abn, page_size=page_size, page_token=page_token)
        return self._call("credentials", "ListCredentials", request, converter(t.CredentialPage))

    def public_key(self, credential_id: str) -> str:
        """The credential's public key, PEM (SubjectPublicKeyInfo)."""
        return self._call("credentials", "GetPublicKey", pb.GetPublicKeyRequest(id=credential_id), _field("pem"))

    def certificate_chain(self, credential_id: str) -> str:
        """The certificate chain, PEM, leaf first."""
        return self._call("credentials", "GetCertificateChain", pb.CredentialRef(id=credential_id), _field("pem"))

    def csr(self, credential_id: str) -> str:
        """A PKCS#10 request signed inside the agent's backend, PEM."""
        return self._call("credentials", "GetCsr", pb.CredentialRef(id=credential_id), _field("pem"))

    def sign_sts_request(self, credential: str, *, applies_to: str, sts_endpoint: str = "",
                         lifetime_minutes: int = 0, act_as_abn: str = "", claims: Iterable[str] = ()) -> bytes:
        """A WS-Trust 1.3 Issue request for the STS, signed inside the agent: the SOAP 1.2 envelope to send.

        Args:
            credential: its id or its RAM alias ``ABRD:<ABN>_<name>``.
            act_as_abn: the client business (needs its active cloud software notification).
        """
        request = pb.SignStsRequestRequest(credential_id=credential, applies_to=applies_to,
                                           sts_endpoint=sts_endpoint, lifetime_minutes=lifetime_minutes,
                                           act_as_abn=act_as_abn, claims=list(claims))
        return self._call("credentials", "SignStsRequest", request, _field("envelope"))

    def sign_xml(self, credential: str, document: bytes, ids: Iterable[str]) -> bytes:
        """The document with an enveloped XML signature over the elements with these Ids."""
        request = pb.SignXmlRequest(credential_id=credential, document=document, ids=list(ids))
        return self._call("credentials", "SignXml", request, _field("document"))

    def sign(self, credential_id: str, *, data: bytes | None = None, digest: bytes | None = None,
             algorithm: t.Algorithm | str | None = None, permission: str = "",
             include_chain: bool = False) -> t.Signature:
        """Sign `data` (the agent hashes it) or a `digest` already hashed with the algorithm's hash.

        Args:
            algorithm: default RSA PKCS#1 v1.5 SHA-256 for RSA keys, ECDSA SHA-256 for EC keys.
            permission: the catalogue permission the signature is for; refused if not granted.
            include_chain: also return the certificate chain (else `certificate_chain` is empty:
                get it once with `certificate_chain()` rather than with every signature).

        Raises:
            TypeError: neither or both of `data` and `digest`.
        """
        if (data is None) == (digest is None):
            raise TypeError("sign() needs exactly one of data= or digest=")
        request = pb.SignRequest(credential_id=credential_id, algorithm=to_pb_enum(t.Algorithm, algorithm),
                                 permission=permission, include_chain=include_chain)
        if data is not None:
            request.data = data
        else:
            request.digest = digest
        return self._call("credentials", "Sign", request, converter(t.Signature))

    def sign_batch(self, items: Iterable[t.BatchItem]) -> tuple[t.BatchResult, ...]:
        """Many digests in one request (1..1,000): a result per item, in order, each with its own error.

        A refused item does not raise; check `result.ok` or call `result.raise_for_error()`.
        The certificate chain is not repeated per item: get it once with `certificate_chain`.
        """
        request = pb.SignBatchRequest(items=[
            pb.SignBatchItem(credential_id=item.credential_id, digest=item.digest, permission=item.permission,
                             algorithm=to_pb_enum(t.Algorithm, item.algorithm)) for item in items])
        return self._call("credentials", "SignBatch", request,
                          lambda reply: tuple(from_pb(t.BatchResult, r) for r in reply.results))

    @staticmethod
    def _stream_request(item: t.StreamItem) -> Any:
        if (item.data is None) == (item.digest is None):
            raise TypeError(f"stream item {item.request_id!r} needs exactly one of data= or digest=")
        request = pb.SignStreamRequest(request_id=item.request_id, credential_id=item.credential_id,
                                       algorithm=to_pb_enum(t.Algorithm, item.algorithm), permission=item.permission)
        if item.data is not None:
            request.data = item.data
        else:
            request.digest = item.digest
        return request

    def revoke(self, credential_id: str, *, confirm: bool) -> t.Credential:
        """Revoke for good: the key is destroyed. `confirm=True` says you mean it."""
        return self._call("credentials", "RevokeCredential",
                          pb.RevokeCredentialRequest(id=credential_id, confirm=confirm), converter(t.Credential))

    def claim(self, credential_id: str) -> t.Credential:
        """Take over an unassigned credential within its 60-day window (another MCA)."""
        return self._call("credentials", "ClaimCredential", pb.ClaimCredentialRequest(id=credential_id),
                          converter(t.Credential))

    def permissions(self, credential_id: str, *, set_to: Iterable[str] | None = None) -> t.Permissions:
        """The credential's permissions; with `set_to`, amend them first (PA or AA, after first use)."""
        request = pb.PermissionsRequest(id=credential_id)
        if set_to is not None:
            request.set.permissions.extend(set_to)
        return self._call("credentials", "Permissions", request, converter(t.Permissions))

    def install_certificate(self, credential_id: str, certificate: bytes, chain: bytes = b"") -> t.Credential:
        """Install a certificate issued elsewhere (PEM or DER; `chain` a PEM bundle of issuers)."""
        request = pb.InstallCertificateRequest(id=credential_id, certificate=certificate, chain=chain)
        return self._call("credentials", "InstallCertificate", request, converter(t.Credential))

    def import_credential(self, *, password: str, accepted_terms_version: str, keystore_xml: bytes | None = None,
                          alias: str = "", pkcs12: bytes | None = None, backend: t.Backend | str | None = None,
                          store: str = "", principal_authority: str = "") -> t.CreatedCredential:
        """Install a RAM keystore.xml credential (by `alias`) or a PKCS#12 file into the agent."""
        if (keystore_xml is None) == (pkcs12 is None):
            raise TypeError("import_credential() needs exactly one of keystore_xml= or pkcs12=")
        request = pb.ImportCredentialRequest(alias=alias, password=password, backend=to_pb_enum(t.Backend, backend),
                                             store=store, principal_authority=principal_authority,
                                             accepted_terms_version=accepted_terms_version)
        if keystore_xml is not None:
            request.keystore_xml = keystore_xml
        else:
            request.pkcs12 = pkcs12
        return self._call("credentials", "ImportCredential", request, converter(t.CreatedCredential))

    def export_credential(self, credential_id: str, *, format: str, password: str) -> t.ExportedCredential:
        """A file-backed credential as `keystore-xml` or `pkcs12`, under `password` (RAM's rule)."""
        request = pb.ExportCredentialRequest(id=credential_id, format=format, password=password)
        return self._call("credentials", "ExportCredential", request, converter(t.ExportedCredential))

    def inspect_keystore(self, keystore_xml: bytes) -> tuple[t.KeystoreEntry, ...]:
        """The credentials in a keystore.xml, read without its password."""
        return self._call("credentials", "InspectKeystore", pb.InspectKeystoreRequest(keystore_xml=keystore_xml),
                          lambda reply: tuple(from_pb(t.KeystoreEntry, e) for e in reply.entries))
