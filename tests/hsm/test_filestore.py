"""The key store file: atomic, locked, private, and loud about wrong passwords and damage."""

from __future__ import annotations

import base64
import os
import random
import signal
import stat
import subprocess
import sys
import time

import pytest

from hsm.base import CreateKeyRequest, KeyType, SignatureAlgorithm, SignRequest
from hsm.errors import AuthFailed, StoreCorrupted
from hsm.filestore import FileKeyStore
from tests.conftest import KEYSTORE_PASSWORD, REPO
from tests.verify import verify

EC = KeyType.EC_P256
ECDSA = SignatureAlgorithm.ECDSA_SHA256


def _writer(path, prefix: str, count: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.hsm.store_writer", str(path), prefix, str(count)],
        cwd=REPO,
        env={**os.environ, "STORE_PASSWORD": KEYSTORE_PASSWORD},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _labels(store: FileKeyStore) -> list[str]:
    return [uri.rsplit("#", 1)[1] for uri in store.list_keys()]


def _sign_check(store: FileKeyStore, label: str) -> None:
    uri = store.label_uri(label)
    digest = ECDSA.hash.digest(label.encode())
    signature = store.sign(SignRequest(uri=uri, algorithm=ECDSA, key_type=EC, digest=digest))
    verify(store.public_key(uri).public_key, ECDSA, label.encode(), signature)


def test_file_is_private_even_under_a_loose_umask(tmp_path):
    old = os.umask(0)
    try:
        store = FileKeyStore(str(tmp_path / "keys.mcks"), KEYSTORE_PASSWORD)
        store.create_key(CreateKeyRequest(label="one", key_type=EC))
    finally:
        os.umask(old)
    for name in ("keys.mcks", "keys.mcks.lock"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


def test_private_keys_are_not_in_the_file_in_clear(tmp_path):
    from cryptography.hazmat.primitives import serialization

    path = tmp_path / "keys.mcks"
    store = FileKeyStore(str(path), KEYSTORE_PASSWORD)
    store.create_key(CreateKeyRequest(label="one", key_type=EC))
    key = store._private_key("one")  # white box: the decrypted key held in memory
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    scalar = key.private_numbers().private_value.to_bytes(32, "big")
    content = path.read_bytes()
    for secret in (der, scalar):
        assert secret not in content and base64.b64encode(secret) not in content


def test_wrong_password_is_refused_and_file_untouched(tmp_path):
    path = tmp_path / "keys.mcks"
    FileKeyStore(str(path), KEYSTORE_PASSWORD).create_key(CreateKeyRequest(label="one", key_type=EC))
    before = path.read_bytes()
    with pytest.raises(AuthFailed, match=f"wrong password for key store file {path}") as caught:
        FileKeyStore(str(path), "Not-the-password-1")
    assert "Not-the-password-1" not in str(caught.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("damage", ["truncated", "not-json", "other-format"])
def test_corrupted_file_is_refused_and_never_overwritten(tmp_path, damage):
    path = tmp_path / "keys.mcks"
    store = FileKeyStore(str(path), KEYSTORE_PASSWORD)
    store.create_key(CreateKeyRequest(label="one", key_type=EC))
    good = path.read_bytes()
    broken = {
        "truncated": good[: len(good) // 2],
        "not-json": b"\x00\x01garbage",
        "other-format": good.replace(b"mcagent-keystore/1", b"something-else/9"),
    }[damage]
    path.write_bytes(broken)
    with pytest.raises(StoreCorrupted, match=f"key store file {path} cannot be read"):
        FileKeyStore(str(path), KEYSTORE_PASSWORD)
    # A store opened before the damage re-reads the file under the lock and refuses to write.
    with pytest.raises(StoreCorrupted):
        store.create_key(CreateKeyRequest(label="two", key_type=EC))
    assert path.read_bytes() == broken


def test_damaged_key_entry_is_reported_as_damaged(tmp_path):
    import json

    path = tmp_path / "keys.mcks"
    FileKeyStore(str(path), KEYSTORE_PASSWORD).create_key(CreateKeyRequest(label="one", key_type=EC))
    document = json.loads(path.read_text())
    sealed = bytearray(document["keys"]["one"]["private_key"].encode())
    sealed[40] = ord("A") if sealed[40] != ord("A") else ord("B")
    document["keys"]["one"]["private_key"] = sealed.decode()
    path.write_text(json.dumps(document))
    store = FileKeyStore(str(path), KEYSTORE_PASSWORD)
    with pytest.raises(StoreCorrupted, match="key 'one' in key store file .* is damaged"):
        store.sign(SignRequest(uri=store.label_uri("one"), algorithm=ECDSA, key_type=EC, digest=bytes(32)))


def test_two_writers_lose_nothing(tmp_path):
    path = tmp_path / "keys.mcks"
    FileKeyStore(str(path), KEYSTORE_PASSWORD).create_key(CreateKeyRequest(label="seed", key_type=EC))
    writers = [_writer(path, prefix, 25) for prefix in ("a", "b")]
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    labels = set(_labels(FileKeyStore(str(path), KEYSTORE_PASSWORD)))
    assert labels == {"seed"} | {f"{p}{n:05d}" for p in "ab" for n in range(25)}


def test_killed_writer_leaves_old_or_new_file(tmp_path):
    """SIGKILL a writing process at random moments; the store always loads, losing nothing saved."""
    path = tmp_path / "keys.mcks"
    rng = random.Random(7519)
    saved: list[str] = []
    for _ in range(30):
        writer = _writer(path, "k", 10_000)
        time.sleep(rng.uniform(0.3, 0.9))  # past interpreter start-up, into the write loop
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate()
        printed = out.split()
        saved.extend(printed)
        store = FileKeyStore(str(path), KEYSTORE_PASSWORD)
        labels = _labels(store)
        # Every key reported as saved is there; at most one more (saved, not yet reported).
        assert labels[: len(saved)] == saved
        assert len(labels) - len(saved) in (0, 1)
        if len(labels) > len(saved):
            saved.append(labels[-1])
        assert labels == [f"k{n:05d}" for n in range(len(labels))]
        for label in {labels[0], labels[-1], rng.choice(labels)} if labels else ():
            _sign_check(store, label)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(saved) > 30  # the writers really wrote
