"""One behavioural suite, run against every backend: SoftHSM2, the same through p11-kit's client
module (p11-kit server remoting a SoftHSM2 token: a module other than libsofthsm2), and the key
store file."""

from __future__ import annotations

import uuid

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from mcagent.hsm.base import CreateKeyRequest, KeyDeleter, KeyLister, KeyType, SignatureAlgorithm, SignRequest
from mcagent.hsm.errors import KeyExists, KeyNotFound, Unsupported

from tests.verify import verify

MESSAGE = b"<wst:RequestSecurityToken>sbr</wst:RequestSecurityToken>"


@pytest.fixture(params=["pkcs11", "p11kit", "file"])
def store(request):
    return request.getfixturevalue(f"{request.param}_store")


def _label() -> str:
    return f"test-{uuid.uuid4()}"


CASES = [(kt, alg) for kt in KeyType for alg in SignatureAlgorithm if alg.fits(kt)]


def _case_id(value):
    return value.value if isinstance(value, KeyType) else value.algorithm_name


@pytest.mark.parametrize(("key_type", "algorithm"), CASES, ids=_case_id)
def test_signs_data_digest_with_every_fitting_algorithm(store, key_type, algorithm):
    info = store.create_key(CreateKeyRequest(label=_label(), key_type=key_type))
    signature = store.sign(
        SignRequest(uri=info.uri, algorithm=algorithm, key_type=key_type, digest=algorithm.hash.digest(MESSAGE))
    )
    verify(info.public_key, algorithm, MESSAGE, signature)
    with pytest.raises(InvalidSignature):
        verify(info.public_key, algorithm, MESSAGE + b"!", signature)


@pytest.mark.parametrize("key_type", list(KeyType), ids=lambda kt: kt.value)
def test_key_id_is_sha1_of_public_key_and_public_key_reads_back(store, key_type):
    info = store.create_key(CreateKeyRequest(label=_label(), key_type=key_type))
    assert info.key_id == x509.SubjectKeyIdentifier.from_public_key(info.public_key).digest
    again = store.public_key(info.uri)
    assert again.public_key.public_numbers() == info.public_key.public_numbers()
    assert again.key_type is key_type
    if key_type.is_rsa:
        assert info.public_key.key_size == key_type.rsa_bits


def test_algorithm_that_does_not_fit_is_refused(store):
    info = store.create_key(CreateKeyRequest(label=_label(), key_type=KeyType.EC_P256))
    algorithm = SignatureAlgorithm.RSA_PSS_SHA256
    with pytest.raises(Unsupported, match="does not fit a ec-p256 key"):
        store.sign(SignRequest(uri=info.uri, algorithm=algorithm, key_type=KeyType.EC_P256, digest=bytes(32)))


def test_digest_of_wrong_size_is_refused(store):
    info = store.create_key(CreateKeyRequest(label=_label()))
    algorithm = SignatureAlgorithm.RSA_PKCS1_SHA1
    with pytest.raises(Unsupported, match="needs a 20-byte SHA1 digest, got 32 bytes"):
        store.sign(SignRequest(uri=info.uri, algorithm=algorithm, key_type=KeyType.RSA_2048, digest=bytes(32)))


def test_label_is_unique(store):
    label = _label()
    store.create_key(CreateKeyRequest(label=label, key_type=KeyType.EC_P256))
    with pytest.raises(KeyExists):
        store.create_key(CreateKeyRequest(label=label, key_type=KeyType.EC_P256))


def test_delete_by_label_uri_destroys_the_key(store):
    assert isinstance(store, KeyDeleter) and isinstance(store, KeyLister)
    label = _label()
    info = store.create_key(CreateKeyRequest(label=label, key_type=KeyType.EC_P256))
    assert info.uri in store.list_keys()
    # Sign once so the key is cached, then make sure the cache does not outlive the key.
    ecdsa = SignRequest(uri=info.uri, algorithm=SignatureAlgorithm.ECDSA_SHA256, key_type=KeyType.EC_P256,
                        digest=bytes(32))
    store.sign(ecdsa)
    assert store.delete_key(store.label_uri(label)) >= 1
    assert info.uri not in store.list_keys()
    with pytest.raises(KeyNotFound):
        store.sign(ecdsa)
    with pytest.raises(KeyNotFound):
        store.public_key(info.uri)
    assert store.delete_key(info.uri) == 0


@pytest.mark.parametrize("key_type", list(KeyType), ids=lambda kt: kt.value)
def test_imported_key_signs_and_keeps_its_public_key(store, key_type):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from mcagent.hsm.base import KeyImporter

    assert isinstance(store, KeyImporter)
    private = (rsa.generate_private_key(65537, key_type.rsa_bits) if key_type.is_rsa
               else ec.generate_private_key(ec.SECP256R1()))
    info = store.import_key(_label(), private)
    assert info.key_type is key_type
    assert info.public_key.public_numbers() == private.public_key().public_numbers()
    assert info.key_id == x509.SubjectKeyIdentifier.from_public_key(private.public_key()).digest
    algorithm = SignatureAlgorithm.default_for(key_type)
    signature = store.sign(SignRequest(uri=info.uri, algorithm=algorithm, key_type=key_type,
                                       digest=algorithm.hash.digest(MESSAGE)))
    verify(private.public_key(), algorithm, MESSAGE, signature)


def test_unsupported_key_is_refused_on_import(store):
    from cryptography.hazmat.primitives.asymmetric import ec

    with pytest.raises(Unsupported, match="only RSA-2048, RSA-3072 and EC P-256"):
        store.import_key(_label(), ec.generate_private_key(ec.SECP384R1()))


def test_only_the_file_store_exports_keys(store):
    from mcagent.hsm.base import KeyExporter

    info = store.create_key(CreateKeyRequest(label=_label(), key_type=KeyType.EC_P256))
    if store.scheme == "pkcs11":
        assert not isinstance(store, KeyExporter)  # a token key never leaves the token
    else:
        exported = store.export_private_key(info.uri)
        assert exported.public_key().public_numbers() == info.public_key.public_numbers()


def _stored_certificates(store, info) -> list[bytes]:
    """What the backend holds as the key's certificate, read around the interface."""
    import base64
    import json

    import pkcs11
    from pkcs11 import Attribute, ObjectClass

    if store.scheme == "file":
        entry = json.loads(open(store.path).read())["keys"].get(info.uri.rsplit("#", 1)[1], {})
        return [base64.b64decode(entry["certificate"])] if "certificate" in entry else []
    token = pkcs11.lib(store._pool._module_path).get_token(token_label=store.token_label)
    with token.open() as session:  # shares the store's login
        return [bytes(c[Attribute.VALUE]) for c in session.get_objects(
            {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: info.key_id})]


def test_certificate_is_kept_next_to_the_key_and_goes_with_it(store):
    import datetime as dt

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from mcagent.hsm.base import CertificateStore

    assert isinstance(store, CertificateStore)
    info = store.create_key(CreateKeyRequest(label=_label(), key_type=KeyType.EC_P256))
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)

    def certificate(common_name: str) -> bytes:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        built = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(info.public_key)
                 .serial_number(x509.random_serial_number()).not_valid_before(now)
                 .not_valid_after(now + dt.timedelta(days=1)).sign(issuer_key, hashes.SHA256()))
        return built.public_bytes(serialization.Encoding.DER)

    first, second = certificate("first"), certificate("second")
    store.store_certificate(info.uri, first)
    assert _stored_certificates(store, info) == [first]
    store.store_certificate(info.uri, second)  # replaces, never two
    assert _stored_certificates(store, info) == [second]
    store.delete_key(info.uri)
    assert _stored_certificates(store, info) == []
