"""The agent's operations on businesses and machine credentials.

Transport-free: the gRPC servicer converts requests into these calls and maps the
errors they raise (agent.domain.errors, hsm.errors) to status codes.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization

from agent.clock import Clock, system_clock
from agent.domain.abn import normalise_abn
from agent.domain.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from agent.domain.model import Backend, Business, Credential, CredentialStatus
from agent.domain.terms import CURRENT_TERMS, MachineTerms
from agent.keys import KeyStores
from agent.storage import Storage
from hsm import base as keys_base
from hsm.base import CreateKeyRequest, KeyType, SignatureAlgorithm
from hsm.base import SignRequest as KeySignRequest

log = logging.getLogger(__name__)

# The certificate's CN holds the credential name: X.520 allows at most 64 characters.
MAX_CREDENTIAL_NAME = 64
MAX_BUSINESS_NAME = 200


@dataclass(frozen=True)
class Caller:
    """Who is asking (for records; the rules that use it come with roles)."""

    name: str


@dataclass(frozen=True)
class Signature:
    """A signature and what produced it."""

    signature: bytes
    algorithm: SignatureAlgorithm
    certificate_chain: tuple[bytes, ...] = ()


def _check_name(kind: str, name: str, limit: int) -> str:
    name = name.strip()
    if not name:
        raise InvalidArgument(f"{kind} must not be empty")
    if len(name) > limit:
        raise InvalidArgument(f"{kind} is {len(name)} characters long; at most {limit} are allowed")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidArgument(f"{kind} must not contain control characters")
    return name


class AgentService:
    """Businesses, machine credentials and signing."""

    def __init__(self, storage: Storage, keys: KeyStores, clock: Clock = system_clock) -> None:
        """Wire the service to its storage, key backends and clock."""
        self._storage = storage
        self._keys = keys
        self._clock = clock

    # -- start-up -----------------------------------------------------------------------

    def finish_interrupted_creates(self) -> int:
        """Remove credentials whose creation was interrupted, and any key they left.

        Returns:
            How many were removed.
        """
        interrupted = self._storage.list_credentials(status=CredentialStatus.CREATING)
        for credential in interrupted:
            removed = self._keys.delete_key(credential.key_uri)
            self._storage.delete_credential(credential.id)
            log.warning(
                "removed credential %s whose creation was interrupted (%d key objects destroyed)",
                credential.id, removed,
            )
        return len(interrupted)

    # -- businesses ---------------------------------------------------------------------

    def register_business(self, caller: Caller, abn: str, name: str) -> Business:
        """Register a business by ABN.

        Raises:
            InvalidArgument: bad ABN or name.
            AlreadyExists: the ABN is registered already.
        """
        business = Business(normalise_abn(abn), _check_name("business name", name, MAX_BUSINESS_NAME), self._clock())
        if not self._storage.insert_business(business):
            raise AlreadyExists(f"business {business.abn} is already registered")
        log.info("business %s registered by %s", business.abn, caller.name)
        return business

    def get_business(self, abn: str) -> Business:
        """The business with this ABN.

        Raises:
            InvalidArgument: bad ABN.
            NotFound: not registered.
        """
        abn = normalise_abn(abn)
        business = self._storage.get_business(abn)
        if business is None:
            raise NotFound(f"business {abn} is not registered; register it first")
        return business

    # -- credentials --------------------------------------------------------------------

    @staticmethod
    def machine_terms() -> MachineTerms:
        """The machine terms of use a creator must accept now."""
        return CURRENT_TERMS

    def create_credential(
        self,
        caller: Caller,
        *,
        abn: str,
        name: str,
        key_type: KeyType | None,
        backend: Backend | None,
        keystore_path: str | None,
        accepted_terms_version: str,
    ) -> Credential:
        """Create a machine credential with a new key pair in the chosen backend.

        The record and the key exist together or not at all: the record is written first as
        ``creating`` (naming where the key will be), the key is generated, then the record
        becomes ``active``. If generation fails the record is removed; if activation fails the
        key is destroyed; if the agent stops in between, start-up removes both.

        Raises:
            FailedPrecondition: terms not accepted, or the backend is not enabled.
            InvalidArgument: bad ABN, name or key store path.
            NotFound: the business is not registered.
        """
        if not accepted_terms_version:
            raise FailedPrecondition(
                f"the machine terms of use (version {CURRENT_TERMS.version}) must be accepted "
                "to create a credential (--accept-terms)"
            )
        if accepted_terms_version != CURRENT_TERMS.version:
            raise FailedPrecondition(
                f"terms version {accepted_terms_version!r} is not current; accept version "
                f"{CURRENT_TERMS.version}"
            )
        business = self.get_business(abn)
        name = _check_name("credential name", name, MAX_CREDENTIAL_NAME)
        backend, store = self._keys.for_new_key(backend, keystore_path)
        credential_id = str(uuid.uuid4())
        credential = Credential(
            id=credential_id,
            abn=business.abn,
            name=name,
            status=CredentialStatus.CREATING,
            key_type=key_type or keys_base.DEFAULT_KEY_TYPE,
            backend=backend,
            key_uri=store.label_uri(credential_id),
            created_at=self._clock(),
            created_by=caller.name,
            terms_version=accepted_terms_version,
        )
        self._storage.insert_credential(credential)
        try:
            key = store.create_key(CreateKeyRequest(label=credential_id, key_type=credential.key_type))
        except BaseException:
            self._storage.delete_credential(credential_id)
            raise
        try:
            self._storage.activate_credential(credential_id, key.uri)
        except BaseException:
            self._keys.delete_key(key.uri)
            self._storage.delete_credential(credential_id)
            raise
        log.info("credential %s (%s) created for %s by %s", credential_id, name, business.abn, caller.name)
        return self.get_credential(credential_id)

    def get_credential(self, credential_id: str) -> Credential:
        """A credential by id.

        Raises:
            NotFound: no such credential.
        """
        credential = self._storage.get_credential(credential_id)
        if credential is None or credential.status is CredentialStatus.CREATING:
            raise NotFound(f"no credential with id {credential_id!r}")
        return credential

    def list_credentials(self, abn: str | None) -> list[Credential]:
        """Credentials of one business (or all), oldest first."""
        abn = normalise_abn(abn) if abn else None
        return [
            c for c in self._storage.list_credentials(abn=abn) if c.status is not CredentialStatus.CREATING
        ]

    def public_key_pem(self, credential_id: str) -> str:
        """The credential's public key, PEM SubjectPublicKeyInfo."""
        credential = self.get_credential(credential_id)
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
    ) -> Signature:
        """Sign data (hashed here) or a precomputed digest with the credential's key.

        Raises:
            InvalidArgument: neither or both of data and digest, a digest of the wrong size,
                or an algorithm that does not fit the key.
            NotFound: no such credential.
        """
        if (data is None) == (digest is None):
            raise InvalidArgument("give either the data to sign or its digest, not both")
        credential = self.get_credential(credential_id)
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
        store = self._keys.for_uri(credential.key_uri)
        signature = store.sign(
            KeySignRequest(uri=credential.key_uri, algorithm=algorithm, key_type=credential.key_type, digest=digest)
        )
        return Signature(signature=signature, algorithm=algorithm)
