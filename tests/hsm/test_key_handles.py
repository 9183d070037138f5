"""The pool's shared cache of object handles (hsm/pkcs11/handles.py) on a real SoftHSM2 token.

Searches are counted by the pool (`PoolStats.key_searches`, `key_index_passes`); keys made by
another process (tests/hsm/other_process.py) are not in this process's cache until looked up.
"""

from __future__ import annotations

import datetime
import threading
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_public_key
from cryptography.x509.oid import NameOID
from mcagent.hsm.base import CreateKeyRequest, KeyType, SignatureAlgorithm
from mcagent.hsm.errors import KeyNotFound
from mcagent.hsm.pkcs11.handles import object_at
from mcagent.hsm.uri import Pkcs11URI
from pkcs11 import Attribute, ObjectClass

from tests.hsm.test_shared_token import OtherProcess, _sign
from tests.verify import verify

ECDSA = SignatureAlgorithm.ECDSA_SHA256


class _Counted:
    """The session-wide store with empty caches, and its look-ups counted from here on."""

    def __init__(self, store) -> None:
        store._pool.forget_keys()
        self.store = store
        self._base = self._now()

    def _now(self) -> tuple[int, int]:
        stats = self.store.stats()
        return stats.key_searches, stats.key_index_passes

    def lookups(self) -> tuple[int, int]:
        """(targeted searches, index passes) since the caches were emptied."""
        now = self._now()
        return now[0] - self._base[0], now[1] - self._base[1]


@pytest.fixture
def counted(pkcs11_store):
    return _Counted(pkcs11_store)


@pytest.fixture
def other(softhsm):
    process = OtherProcess(softhsm.store_uri, softhsm.pin)
    yield process
    process.close()


def _on_a_second_session(store, action):
    """Run `action` while another thread holds the session most recently used, so it gets another."""
    held, release = threading.Event(), threading.Event()

    def hold(_worker):
        held.set()
        release.wait(30)

    holder = threading.Thread(target=store._pool.run, args=("hold a session", hold))
    holder.start()
    try:
        assert held.wait(30)
        return action()
    finally:
        release.set()
        holder.join(30)


def test_a_key_found_through_one_session_signs_on_another_without_a_search(pkcs11_store, counted, other):
    made = other(op="create", label=f"shared-{uuid.uuid4()}")
    public_key = load_pem_public_key(made["public_key"].encode())
    verify(public_key, ECDSA, b"first", _sign(pkcs11_store, made["uri"], "first"))
    found = counted.lookups()
    assert found == (0, 1)  # found once: by the index pass of the first miss
    signature = _on_a_second_session(pkcs11_store, lambda: _sign(pkcs11_store, made["uri"], "second"))
    verify(public_key, ECDSA, b"second", signature)
    assert pkcs11_store.stats().sessions_open >= 2
    assert counted.lookups() == found  # the second session made the key from the shared handle


def test_a_key_made_by_another_process_after_the_index_pass_is_found_by_one_search(pkcs11_store, counted, other):
    first = other(op="create", label=f"before-{uuid.uuid4()}")
    _sign(pkcs11_store, first["uri"], "index")
    assert counted.lookups() == (0, 1)
    later = other(op="create", label=f"after-{uuid.uuid4()}")
    verify(load_pem_public_key(later["public_key"].encode()), ECDSA, b"later",
           _sign(pkcs11_store, later["uri"], "later"))
    assert counted.lookups() == (1, 1)
    _on_a_second_session(pkcs11_store, lambda: _sign(pkcs11_store, later["uri"], "again"))
    assert counted.lookups() == (1, 1)


def test_a_key_made_here_needs_no_search(pkcs11_store, counted):
    info = pkcs11_store.create_key(CreateKeyRequest(label=f"here-{uuid.uuid4()}", key_type=KeyType.EC_P256))
    _on_a_second_session(pkcs11_store, lambda: verify(info.public_key, ECDSA, b"x", _sign(pkcs11_store, info.uri, "x")))
    assert counted.lookups() == (0, 0)


def test_a_cached_key_destroyed_by_another_process_fails_cleanly_then_a_new_one_is_used(pkcs11_store, counted, other):
    label = f"gone-{uuid.uuid4()}"
    made = other(op="create", label=label)
    _sign(pkcs11_store, made["uri"], "cached")  # cached on this session and in the shared cache
    label_uri = str(Pkcs11URI(token=pkcs11_store.token_label, label=label))
    _sign(pkcs11_store, label_uri, "by label")
    assert other(op="delete", uri=made["uri"])["deleted"] == 2  # the private and public halves
    for uri in (made["uri"], label_uri):
        with pytest.raises(KeyNotFound):
            _sign(pkcs11_store, uri, "gone")
        with pytest.raises(KeyNotFound):  # on another session, which made no object for it yet
            _on_a_second_session(pkcs11_store, lambda uri=uri: _sign(pkcs11_store, uri, "gone"))
    # A new key under the same label: the label URI signs with it, never with the old handle.
    remade = other(op="create", label=label)
    assert remade["uri"] != made["uri"]
    verify(load_pem_public_key(remade["public_key"].encode()), ECDSA, b"new",
           _sign(pkcs11_store, label_uri, "new"))


def test_a_handle_that_names_another_object_is_not_used(pkcs11_store, counted):
    # As on a token that reuses the handle of a destroyed object: the cache holds the wrong
    # handle for a key; its class, id and label are read back, so it is dropped and searched for.
    mine = pkcs11_store.create_key(CreateKeyRequest(label=f"mine-{uuid.uuid4()}", key_type=KeyType.EC_P256))
    theirs = pkcs11_store.create_key(CreateKeyRequest(label=f"theirs-{uuid.uuid4()}", key_type=KeyType.EC_P256))
    handles = pkcs11_store._pool.handles
    parsed = Pkcs11URI.parse(theirs.uri)
    their_handle = handles._handles[(ObjectClass.PRIVATE_KEY, parsed.key_id, parsed.label)]
    parsed = Pkcs11URI.parse(mine.uri)
    handles.put((ObjectClass.PRIVATE_KEY, parsed.key_id, parsed.label), their_handle)
    verify(mine.public_key, ECDSA, b"mine", _sign(pkcs11_store, mine.uri, "mine"))
    assert counted.lookups() == (1, 0)


def test_recovery_empties_the_cache(softhsm, pkcs11_store, counted, other):
    import pkcs11

    made = other(op="create", label=f"recover-{uuid.uuid4()}")
    _sign(pkcs11_store, made["uri"], "before")
    assert pkcs11_store._pool.handles._handles
    pkcs11.lib(softhsm.module).reinitialize()  # every handle of this process is void now
    generation = pkcs11_store.stats().generation
    verify(load_pem_public_key(made["public_key"].encode()), ECDSA, b"after",
           _sign(pkcs11_store, made["uri"], "after"))
    assert pkcs11_store.stats().generation == generation + 1
    assert counted.lookups() == (0, 2)  # looked up afresh after the recovery


def test_object_at_makes_a_signing_object_of_the_given_session(pkcs11_store, counted):
    # hsm/pkcs11/handles.py reaches python-pkcs11's make_object through SearchIter._batch_iter.
    info = pkcs11_store.create_key(CreateKeyRequest(label=f"at-{uuid.uuid4()}", key_type=KeyType.EC_P256))
    _sign(pkcs11_store, info.uri, "made")

    def check(worker):
        parsed = Pkcs11URI.parse(info.uri)
        handle = pkcs11_store._pool.handles._handles[(ObjectClass.PRIVATE_KEY, parsed.key_id, parsed.label)]
        obj = object_at(worker.session, handle)
        assert obj.session is worker.session and obj.handle == handle
        assert bytes(obj[Attribute.ID]) == info.key_id
        return obj

    assert hasattr(pkcs11_store._pool.run("check", check), "sign")


def test_a_certificate_for_a_key_destroyed_elsewhere_is_key_not_found(pkcs11_store, counted, other):
    made = other(op="create", label=f"cert-gone-{uuid.uuid4()}")
    pkcs11_store.public_key(made["uri"])  # its handle is now in the shared cache
    assert other(op="delete", uri=made["uri"])["deleted"] == 2
    with pytest.raises(KeyNotFound):
        pkcs11_store.store_certificate(made["uri"], _self_signed())


def _self_signed() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "handles test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()).public_bytes(Encoding.DER))


def test_destroying_a_key_forgets_only_its_own_handles(pkcs11_store, counted):
    kept = pkcs11_store.create_key(CreateKeyRequest(label=f"kept-{uuid.uuid4()}", key_type=KeyType.EC_P256))
    gone = pkcs11_store.create_key(CreateKeyRequest(label=f"gone-{uuid.uuid4()}", key_type=KeyType.EC_P256))
    _sign(pkcs11_store, kept.uri, "cached")
    _sign(pkcs11_store, gone.uri, "cached")
    assert pkcs11_store.delete_key(gone.uri) == 2
    # The other key needs no look-up, on this session or another (a full clear would list the token again).
    verify(kept.public_key, ECDSA, b"still", _sign(pkcs11_store, kept.uri, "still"))
    _on_a_second_session(pkcs11_store, lambda: verify(kept.public_key, ECDSA, b"other",
                                                       _sign(pkcs11_store, kept.uri, "other")))
    assert counted.lookups() == (0, 0)
    with pytest.raises(KeyNotFound):
        _sign(pkcs11_store, gone.uri, "gone")
