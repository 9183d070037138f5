"""Many threads signing at once on one SoftHSM2 token, in a fresh process.

Run by tests/hsm/test_softhsm.py as a subprocess, so a crash in the module (what
python-pkcs11's default initialisation without OS locking did) shows as a failed test
with its signal rather than taking the test run down. Prints one JSON line of results.
"""

import hashlib
import json
import os
import sys
import threading

from mcagent.hsm import open_keystore
from mcagent.hsm.base import CreateKeyRequest, KeyType, SignatureAlgorithm, SignRequest

from tests.verify import verify

THREADS = 16
SIGNS_PER_THREAD = 40


def main() -> None:
    store = open_keystore(sys.argv[1], os.environ["HAMMER_PIN"])
    keys = [
        (store.create_key(CreateKeyRequest(label=f"hammer-{kt.value}-{os.getpid()}", key_type=kt)), kt)
        for kt in (KeyType.RSA_2048, KeyType.EC_P256)
    ]
    failures: list[str] = []
    signed = [0]
    lock = threading.Lock()

    def work(index: int) -> None:
        info, key_type = keys[index % len(keys)]
        algorithm = SignatureAlgorithm.default_for(key_type)
        for n in range(SIGNS_PER_THREAD):
            message = f"thread {index} message {n}".encode()
            try:
                signature = store.sign(
                    SignRequest(uri=info.uri, algorithm=algorithm, key_type=key_type,
                                digest=hashlib.sha256(message).digest())
                )
                verify(info.public_key, algorithm, message, signature)
                with lock:
                    signed[0] += 1
            except Exception as exc:  # report every kind of failure to the test
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = store.stats()
    for info, _ in keys:
        store.delete_key(info.uri)
    store.close()
    print(json.dumps({"signed": signed[0], "failures": failures[:5], "max_in_flight": stats.max_in_flight,
                      "sessions_open": stats.sessions_open}))


if __name__ == "__main__":
    main()
