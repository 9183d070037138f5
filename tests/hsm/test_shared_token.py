"""Keys shared by instances: two processes on one SoftHSM2 token directory, and a token reached
through p11-kit's client module (`p11-kit server`), as several hosts reach one network HSM."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from mcagent.hsm.base import CreateKeyRequest, KeyType, SignatureAlgorithm, SignRequest
from mcagent.hsm.errors import KeyNotFound

from tests.conftest import REPO
from tests.verify import verify


class OtherProcess:
    """tests/hsm/other_process.py: another process with its own login on the same token."""

    def __init__(self, store_uri: str, pin: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "tests.hsm.other_process", store_uri], cwd=REPO,
                                        env={**os.environ, "TOKEN_PIN": pin}, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def __call__(self, **command) -> dict:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the other process died ({self.process.poll()}): {self.process.stderr.read()}"
        return json.loads(line)

    def close(self) -> None:
        self.process.communicate(timeout=30)
        assert self.process.returncode == 0


def _sign(store, uri: str, data: str) -> bytes:
    return store.sign(SignRequest(uri=uri, algorithm=SignatureAlgorithm.ECDSA_SHA256, key_type=KeyType.EC_P256,
                                  digest=hashlib.sha256(data.encode()).digest()))


def test_a_key_made_by_one_process_signs_in_the_other_and_a_destroyed_one_fails_cleanly(softhsm, pkcs11_store):
    other = OtherProcess(softhsm.store_uri, softhsm.pin)
    try:
        # Made there, used here.
        made = other(op="create", label=f"theirs-{uuid.uuid4()}")
        verify(load_pem_public_key(made["public_key"].encode()), SignatureAlgorithm.ECDSA_SHA256, b"from here",
               _sign(pkcs11_store, made["uri"], "from here"))
        # Made here, used there (so its key handle sits in the other process's session cache) ...
        ours = pkcs11_store.create_key(CreateKeyRequest(label=f"ours-{uuid.uuid4()}", key_type=KeyType.EC_P256))
        for n in range(3):
            answer = other(op="sign", uri=ours.uri, data=f"there {n}")
            verify(ours.public_key, SignatureAlgorithm.ECDSA_SHA256, f"there {n}".encode(),
                   bytes.fromhex(answer["signature"]))
        # ... then destroyed here: there, the cached handle is stale and the key is simply not found.
        assert pkcs11_store.delete_key(ours.uri) == 2
        answer = other(op="sign", uri=ours.uri, data="after")
        assert answer.get("error") == "KeyNotFound", answer
        assert "no private key at" in answer["message"]
        # The other process carries on with the keys that remain; and the reverse way round.
        assert "signature" in other(op="sign", uri=made["uri"], data="still")
        _sign(pkcs11_store, made["uri"], "cache it here")
        assert other(op="delete", uri=made["uri"]) == {"deleted": 2}
        with pytest.raises(KeyNotFound):
            _sign(pkcs11_store, made["uri"], "gone")
        assert pkcs11_store.stats().healthy
    finally:
        other.close()


def test_many_threads_sign_through_p11_kit_client(p11kit):
    result = subprocess.run([sys.executable, "-m", "tests.hsm.hammer", p11kit.store_uri], cwd=REPO,
                            env={**os.environ, "HAMMER_PIN": p11kit.pin}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"hammer process exited with {result.returncode}: {result.stderr[-2000:]}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failures"] == []
    assert report["signed"] == 16 * 40
    assert report["max_in_flight"] > 1
    assert "initialized_forkid" not in result.stderr  # no finalising of an instance python-pkcs11 does not use


def test_two_processes_through_p11_kit_share_keys(p11kit, p11kit_store):
    other = OtherProcess(p11kit.store_uri, p11kit.pin)
    try:
        made = other(op="create", label=f"remote-{uuid.uuid4()}")
        verify(load_pem_public_key(made["public_key"].encode()), SignatureAlgorithm.ECDSA_SHA256, b"here",
               _sign(p11kit_store, made["uri"], "here"))
        assert p11kit_store.delete_key(made["uri"]) == 2
        assert other(op="sign", uri=made["uri"], data="gone")["error"] == "KeyNotFound"
    finally:
        other.close()
