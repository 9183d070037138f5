"""Keys created from many threads at once on a SoftHSM2 file token, with searches running alongside.

SoftHSM2 2.6.1 re-reads objects during a search with no lock against a writer in the same
process, so a search could catch a key being made half written and fail its creation (see
`hsm.pkcs11.pool.ObjectGate`). Listing keys while creating them makes that race frequent.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys
import threading
import uuid

import pkcs11
from mcagent.hsm.base import CreateKeyRequest, KeyType, SignatureAlgorithm, SignRequest
from mcagent.hsm.pkcs11.backend import Pkcs11KeyStore

from tests.conftest import REPO, SO_PIN
from tests.verify import verify

CREATORS, SEARCHERS, KEYS_EACH, RSA_EVERY = 6, 2, 30, 30  # 180 keys, 6 of them RSA-2048


def _new_token(softhsm) -> tuple[str, pathlib.Path]:
    """A token of its own in the session's SoftHSM2 directory, and the folder holding its files."""
    tokens = pathlib.Path(next(line.split("=", 1)[1].strip() for line in open(softhsm.conf)
                               if line.startswith("directories.tokendir")))
    before = set(tokens.iterdir())
    label = f"create-{uuid.uuid4().hex[:12]}"
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", softhsm.pin,
                    "--so-pin", SO_PIN], check=True, capture_output=True)
    (folder,) = set(tokens.iterdir()) - before
    return label, folder


def test_keys_created_concurrently_all_succeed_sign_and_leave_nothing_else(softhsm):
    label, folder = _new_token(softhsm)
    # In a process of its own: SoftHSM2 sees only the tokens that existed when the module was
    # initialised, and this test process initialised it long before (the session's key store).
    crowd = subprocess.run([sys.executable, "-m", "tests.hsm.test_concurrent_create", softhsm.module, label,
                            str(folder)], cwd=REPO, env={**os.environ, "TOKEN_PIN": softhsm.pin},
                           capture_output=True, text=True, timeout=300)
    assert crowd.returncode == 0, crowd.stderr[-4000:]
    assert crowd.stdout.strip() == f"{CREATORS * KEYS_EACH} keys made, signed and counted"


def _create_in_a_crowd(module: str, label: str, pin: str, folder: pathlib.Path) -> None:
    """CREATORS threads create keys while SEARCHERS threads list them; every check asserted here."""
    store = Pkcs11KeyStore(module, label, pin, max_sessions=CREATORS + SEARCHERS)
    made, failures, done = [], [], threading.Event()

    def create(worker: int) -> None:
        for i in range(KEYS_EACH):
            key_type = KeyType.RSA_2048 if i % RSA_EVERY == RSA_EVERY - 1 else KeyType.EC_P256
            try:
                made.append((store.create_key(CreateKeyRequest(label=f"w{worker}-{i}", key_type=key_type))))
            except Exception as exc:  # every kind counts: the test reports them all
                failures.append(f"create w{worker}-{i}: {type(exc).__name__}: {exc}")

    def search() -> None:
        while not done.wait(0.005):  # searches now and then: the creations' own label checks search too
            try:
                store.list_keys()
            except Exception as exc:
                failures.append(f"list_keys: {type(exc).__name__}: {exc}")

    creators = [threading.Thread(target=create, args=(w,)) for w in range(CREATORS)]
    searchers = [threading.Thread(target=search) for _ in range(SEARCHERS)]
    try:
        for thread in creators + searchers:
            thread.start()
        for thread in creators:
            thread.join()
        done.set()
        for thread in searchers:
            thread.join()
        assert failures == []
        assert len(made) == CREATORS * KEYS_EACH
        digest = hashlib.sha256(b"made in a crowd").digest()
        for info in made:
            algorithm = SignatureAlgorithm.ECDSA_SHA256 if info.key_type is KeyType.EC_P256 \
                else SignatureAlgorithm.RSA_PKCS1_SHA256
            signature = store.sign(SignRequest(uri=info.uri, algorithm=algorithm, key_type=info.key_type,
                                               digest=digest))
            verify(info.public_key, algorithm, b"made in a crowd", signature)
        assert sorted(store.list_keys()) == sorted(info.uri for info in made)
    finally:
        done.set()
        store.close()
    # Exactly a private and a public key per creation, as the module lists the token's objects
    # and as files on disk, where a half-made object the module could not finish would lie.
    token = pkcs11.lib(module).get_token(token_label=label)
    with token.open(user_pin=pin) as session:
        objects = list(session.get_objects({}))
    assert len(objects) == 2 * len(made)
    assert len([f for f in os.listdir(folder) if f.endswith(".object")]) - 1 == 2 * len(made)  # less token.object
    print(f"{len(made)} keys made, signed and counted")


if __name__ == "__main__":
    _create_in_a_crowd(sys.argv[1], sys.argv[2], os.environ["TOKEN_PIN"], pathlib.Path(sys.argv[3]))
