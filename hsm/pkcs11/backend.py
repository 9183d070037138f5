"""Key custody in a PKCS#11 token through python-pkcs11 (tested on SoftHSM2)."""

from __future__ import annotations

import os
from typing import Any

from asn1crypto.core import OctetString
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_der_public_key
from mcagent.hsm.base import (
    CreateKeyRequest,
    KeyInfo,
    KeyStore,
    KeyType,
    SignatureAlgorithm,
    SignRequest,
    key_type_of,
)
from mcagent.hsm.errors import InvalidURI, KeyExists, KeyNotFound, KeyStoreError, Unsupported
from mcagent.hsm.pkcs11.pool import PoolStats, SessionPool, WorkerSession
from mcagent.hsm.pkcs11.templates import PRIVATE_KEY_TEMPLATE, PUBLIC_KEY_TEMPLATE
from mcagent.hsm.uri import Pkcs11URI
from pkcs11 import MGF, Attribute, Mechanism, ObjectClass
from pkcs11 import KeyType as P11KeyType
from pkcs11 import exceptions as p11e
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters
from pkcs11.util.x509 import decode_x509_certificate

_P256_OID = "1.2.840.10045.3.1.7"  # secp256r1 / prime256v1


def _mechanism(algorithm: SignatureAlgorithm) -> tuple[Mechanism, Any]:
    """The raw (no hashing) mechanism and parameters for signing a precomputed digest."""
    if algorithm is SignatureAlgorithm.RSA_PSS_SHA256:
        return Mechanism.RSA_PKCS_PSS, (Mechanism.SHA256, MGF.SHA256, algorithm.hash.digest_size)
    if algorithm is SignatureAlgorithm.ECDSA_SHA256:
        return Mechanism.ECDSA, None
    return Mechanism.RSA_PKCS, None


def _public_key_of(p11_public: Any, key_type: KeyType) -> PublicKeyTypes:
    if key_type.is_rsa:
        modulus = int.from_bytes(p11_public[Attribute.MODULUS], "big")
        exponent = int.from_bytes(p11_public[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    return load_der_public_key(encode_ec_public_key(p11_public))


def _bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def _key_type_of(p11_key: Any) -> KeyType:
    if p11_key.key_type == P11KeyType.EC:
        return KeyType.EC_P256
    bits = len(p11_key[Attribute.MODULUS]) * 8
    for key_type in (KeyType.RSA_2048, KeyType.RSA_3072):
        if key_type.rsa_bits == bits:
            return key_type
    raise Unsupported(f"RSA key of {bits} bits is not a supported key type")


class Pkcs11KeyStore(KeyStore):
    """Keys in one PKCS#11 token, addressed as ``pkcs11:token=…;id=…;object=…``."""

    scheme = "pkcs11"

    def __init__(self, module_path: str, token_label: str, pin: str, *, max_sessions: int = 8) -> None:
        """Open the token and log in once.

        Args:
            module_path: the PKCS#11 shared library (e.g. /usr/lib/softhsm/libsofthsm2.so).
            token_label: label of the token holding the keys.
            pin: the user PIN (from the environment or a file; never from a URI or argv).
            max_sessions: worker sessions for concurrent signing.

        Raises:
            AuthFailed: wrong or locked PIN.
            TokenUnavailable: module cannot be loaded or token not found.
        """
        self.token_label = token_label
        self._pool = SessionPool(module_path, token_label, pin, max_sessions=max_sessions)
        self._public: dict[str, KeyInfo] = {}

    # -- helpers ------------------------------------------------------------------------

    def _parse(self, uri: str) -> Pkcs11URI:
        parsed = Pkcs11URI.parse(uri)
        if parsed.token != self.token_label:
            raise InvalidURI(
                f"key URI names token {parsed.token!r} but this agent uses {self.token_label!r}"
            )
        if parsed.key_id is None and parsed.label is None:
            raise InvalidURI("pkcs11 key URI names neither id= nor object=")
        return parsed

    @staticmethod
    def _template(parsed: Pkcs11URI, object_class: ObjectClass | None) -> dict[Attribute, Any]:
        template: dict[Attribute, Any] = {}
        if object_class is not None:
            template[Attribute.CLASS] = object_class
        if parsed.key_id is not None:
            template[Attribute.ID] = parsed.key_id
        if parsed.label is not None:
            template[Attribute.LABEL] = parsed.label
        return template

    def _search(self, session: Any, template: dict[Attribute, Any]) -> list[Any]:
        """The objects matching `template`, found while no object is being written (see `ObjectGate`)."""
        with self._pool.objects.searching():
            return list(session.get_objects(template))

    def _find_one(self, session: Any, parsed: Pkcs11URI, object_class: ObjectClass) -> Any:
        found = self._search(session, self._template(parsed, object_class))
        if not found and object_class is ObjectClass.PRIVATE_KEY:
            # Private objects are invisible to a session that lost its login. Our keys come
            # in pairs, so a public half without its private half means "logged out":
            # recover (log in again) rather than report the key missing.
            if self._search(session, self._template(parsed, ObjectClass.PUBLIC_KEY)):
                raise p11e.UserNotLoggedIn()
        if not found:
            self._pool.require_token()  # an empty answer may mean the token went away
            raise KeyNotFound(f"no {object_class.name.lower().replace('_', ' ')} at {parsed}")
        if len(found) > 1:
            raise KeyStoreError(f"{len(found)} objects match {parsed}; the URI is ambiguous")
        return found[0]

    def _object(self, worker: WorkerSession, uri: str, object_class: ObjectClass) -> Any:
        """The object at `uri` as an object of the borrowed session, checked to be still there: made
        from the pool's shared handle (see `hsm.pkcs11.handles`), or searched for."""
        parsed = self._parse(uri)
        return self._pool.handles.find(worker.session, (object_class, parsed.key_id, parsed.label),
                                       lambda session: self._find_one(session, parsed, object_class))

    def _destroy(self, session: Any, objects: list[Any]) -> int:
        """Destroy `objects` (found by `_search` on `session`); how many."""
        with self._pool.objects.writing():
            for obj in objects:
                obj.destroy()
        return len(objects)

    def _remember(self, key_id: bytes, label: str, private: Any, public: Any) -> None:
        """Put the handles of a key pair just made into the shared cache: its first use needs no search."""
        self._pool.handles.put((ObjectClass.PRIVATE_KEY, key_id, label), private.handle)
        self._pool.handles.put((ObjectClass.PUBLIC_KEY, key_id, label), public.handle)

    # -- KeyStore -----------------------------------------------------------------------

    def create_key(self, request: CreateKeyRequest) -> KeyInfo:
        """See `KeyStore.create_key`. CKA_ID becomes the SHA-1 key identifier."""

        def generate(worker: WorkerSession) -> KeyInfo:
            session = worker.session
            if self._search(session, {Attribute.LABEL: request.label}):
                raise KeyExists(f"token {self.token_label!r} already holds objects labelled {request.label!r}")
            # The final CKA_ID is a hash of the public key, known only after generation.
            provisional_id = os.urandom(20)
            options = dict(
                id=provisional_id,
                label=request.label,
                store=True,
                public_template=PUBLIC_KEY_TEMPLATE,
                private_template=PRIVATE_KEY_TEMPLATE,
            )
            try:
                with self._pool.objects.writing():
                    if request.key_type.is_rsa:
                        public, private = session.generate_keypair(
                            P11KeyType.RSA, request.key_type.rsa_bits, **options
                        )
                    else:
                        params = session.create_domain_parameters(
                            P11KeyType.EC,
                            {Attribute.EC_PARAMS: encode_named_curve_parameters(_P256_OID)},
                            local=True,
                        )
                        public, private = params.generate_keypair(**options)
            except p11e.PKCS11Error:
                # The module removes the halves it made; anything still carrying the
                # provisional id would be a key without its identity.
                self._destroy(session, self._search(session, {Attribute.ID: provisional_id}))
                raise
            with self._pool.objects.writing():
                try:
                    public_key = _public_key_of(public, request.key_type)
                    key_id = x509.SubjectKeyIdentifier.from_public_key(public_key).digest
                    public[Attribute.ID] = key_id
                    private[Attribute.ID] = key_id
                except BaseException:
                    # No key without its identity: remove both halves before reporting.
                    for obj in (private, public):
                        obj.destroy()
                    raise
            self._remember(key_id, request.label, private, public)
            uri = str(Pkcs11URI(token=self.token_label, key_id=key_id, label=request.label))
            info = KeyInfo(uri=uri, key_type=request.key_type, public_key=public_key, key_id=key_id)
            self._public[uri] = info
            return info

        # Never retried: a second attempt could leave a second key behind.
        return self._pool.run(f"create key {request.label!r}", generate, retry=False)

    def import_key(self, label: str, private_key: PrivateKeyTypes) -> KeyInfo:
        """See `KeyImporter.import_key`: the key becomes a sensitive, non-extractable token object.

        The key passes through this process's memory once, on its way into the token.
        """
        public_key = private_key.public_key()
        key_type = key_type_of(public_key)
        key_id = x509.SubjectKeyIdentifier.from_public_key(public_key).digest
        common = {Attribute.ID: key_id, Attribute.LABEL: label}
        if key_type.is_rsa:
            numbers = private_key.private_numbers()  # type: ignore[union-attr]
            public_part = {Attribute.KEY_TYPE: P11KeyType.RSA,
                           Attribute.MODULUS: _bytes(numbers.public_numbers.n),
                           Attribute.PUBLIC_EXPONENT: _bytes(numbers.public_numbers.e)}
            private_part = {**public_part, Attribute.PRIVATE_EXPONENT: _bytes(numbers.d),
                            Attribute.PRIME_1: _bytes(numbers.p), Attribute.PRIME_2: _bytes(numbers.q),
                            Attribute.EXPONENT_1: _bytes(numbers.dmp1), Attribute.EXPONENT_2: _bytes(numbers.dmq1),
                            Attribute.COEFFICIENT: _bytes(numbers.iqmp)}
        else:
            params = encode_named_curve_parameters(_P256_OID)
            point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
            public_part = {Attribute.KEY_TYPE: P11KeyType.EC, Attribute.EC_PARAMS: params,
                           Attribute.EC_POINT: OctetString(point).dump()}
            private_part = {Attribute.KEY_TYPE: P11KeyType.EC, Attribute.EC_PARAMS: params,
                            Attribute.VALUE: private_key.private_numbers().private_value.to_bytes(32, "big")}  # type: ignore[union-attr]

        def store(worker: WorkerSession) -> KeyInfo:
            session = worker.session
            if self._search(session, {Attribute.LABEL: label}):
                raise KeyExists(f"token {self.token_label!r} already holds objects labelled {label!r}")
            with self._pool.objects.writing():
                private = session.create_object({Attribute.CLASS: ObjectClass.PRIVATE_KEY, **common,
                                                 **private_part, **PRIVATE_KEY_TEMPLATE})
                try:
                    public = session.create_object({Attribute.CLASS: ObjectClass.PUBLIC_KEY, **common,
                                                    **public_part, **PUBLIC_KEY_TEMPLATE})
                except BaseException:
                    private.destroy()
                    raise
            self._remember(key_id, label, private, public)
            uri = str(Pkcs11URI(token=self.token_label, key_id=key_id, label=label))
            return KeyInfo(uri=uri, key_type=key_type, public_key=public_key, key_id=key_id)

        return self._pool.run(f"import key {label!r}", store, retry=False)

    def store_certificate(self, uri: str, certificate_der: bytes) -> None:
        """See `CertificateStore.store_certificate`: a public token object with the key's id and label."""
        self._parse(uri)  # a malformed URI is refused before a session is borrowed

        def store(worker: WorkerSession) -> None:
            session = worker.session
            key = self._object(worker, uri, ObjectClass.PUBLIC_KEY)
            identity = {Attribute.ID: bytes(key[Attribute.ID]), Attribute.LABEL: key[Attribute.LABEL]}
            old = self._search(session, {Attribute.CLASS: ObjectClass.CERTIFICATE, **identity})
            self._destroy(session, old)
            with self._pool.objects.writing():  # never nested: a waiting search would deadlock it
                session.create_object({**decode_x509_certificate(certificate_der), **identity, Attribute.TOKEN: True,
                                       Attribute.PRIVATE: False})

        self._pool.run(f"store the certificate of {uri}", store, retry=False)

    def label_uri(self, label: str) -> str:
        """See `KeyStore.label_uri`: ``pkcs11:token=…;object=<label>``."""
        return str(Pkcs11URI(token=self.token_label, label=label))

    def public_key(self, uri: str) -> KeyInfo:
        """See `KeyStore.public_key`. Cached per URI."""
        cached = self._public.get(uri)
        if cached is not None:
            return cached
        self._parse(uri)  # a malformed URI is refused before a session is borrowed

        def read(worker: WorkerSession) -> KeyInfo:
            public = self._object(worker, uri, ObjectClass.PUBLIC_KEY)
            key_type = _key_type_of(public)
            public_key = _public_key_of(public, key_type)
            key_id = bytes(public[Attribute.ID])
            return KeyInfo(uri=uri, key_type=key_type, public_key=public_key, key_id=key_id)

        info = self._pool.run(f"read public key {uri}", read)
        self._public[uri] = info
        return info

    def sign(self, request: SignRequest) -> bytes:
        """See `KeyStore.sign`. Signs the digest with a raw mechanism (no hashing in the token)."""
        request.check()
        algorithm = request.algorithm
        mechanism, param = _mechanism(algorithm)
        payload = request.digest
        if mechanism is Mechanism.RSA_PKCS:
            payload = algorithm.hash.digest_info_prefix + request.digest

        def sign(worker: WorkerSession) -> bytes:
            key = worker.keys.get(request.uri)  # made on this session before: no call at all
            if key is None:
                key = worker.keys[request.uri] = self._object(worker, request.uri, ObjectClass.PRIVATE_KEY)
            return key.sign(payload, mechanism=mechanism, mechanism_param=param)

        signature = self._pool.run(f"sign with {request.uri}", sign)
        if mechanism is Mechanism.ECDSA:  # PKCS#11 gives r || s; X.509, CMS and openssl want DER
            half = len(signature) // 2
            signature = encode_dss_signature(int.from_bytes(signature[:half], "big"),
                                             int.from_bytes(signature[half:], "big"))
        return signature

    def delete_key(self, uri: str) -> int:
        """Destroy the private key, public key and any certificate the URI matches."""
        parsed = self._parse(uri)

        def destroy(worker: WorkerSession) -> set[int]:
            found = self._search(worker.session, self._template(parsed, None))
            if not found:
                self._pool.require_token()  # "nothing destroyed" must not hide a missing token
            self._destroy(worker.session, found)
            return {obj.handle for obj in found}

        destroyed = self._pool.run(f"delete {uri}", destroy)
        # By handle, not by URI: a label URI may match keys cached under their full URI.
        self._pool.forget_handles(destroyed)
        self._public.clear()
        return len(destroyed)

    def list_keys(self) -> list[str]:
        """URIs of every private key in the token."""

        def collect(worker: WorkerSession) -> list[str]:
            with self._pool.objects.searching():  # the attributes are read as part of the search
                keys = list(worker.session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
                uris = [str(Pkcs11URI(self.token_label, bytes(k[Attribute.ID]), k[Attribute.LABEL])) for k in keys]
            if not keys:
                self._pool.require_token()
            return uris

        return self._pool.run("list keys", collect)

    def check(self) -> None:
        """Ask the token whether it is still there (C_GetTokenInfo through a pooled session).

        Cheap enough for a health check every second. While the token is away this also
        drives recovery, so the store comes back without waiting for a sign to try.

        Raises:
            TokenUnavailable: the token is gone or the module failed; recovery is under way.
            AuthFailed: the token refused the PIN on re-login.
        """
        self._pool.run("token check", lambda _worker: self._pool.require_token())

    def stats(self) -> PoolStats:
        """Session pool state (health, recoveries, peak concurrency)."""
        return self._pool.stats()

    def close(self) -> None:
        """Log out and close every session."""
        self._pool.close()
