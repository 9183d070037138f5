"""Failures of concurrent key creation on a SoftHSM2 file token: not a test, a measurement.

Makes a token in a temporary folder and creates N keys (every R-th RSA-2048, the rest EC P-256)
from T threads through Pkcs11KeyStore; prints the rate, the failures by kind and the private
keys the token then holds (more than the successes means a failure left a key behind).

Usage: python -m tests.hsm.concurrent_create N [THREADS=16] [RSA_EVERY=20]
"""

from __future__ import annotations

import collections
import sys
import threading
import time

from tests.conftest import SOFTHSM_MODULE
from tests.hsm.scratch import PIN, scratch_token


def main() -> None:
    total = int(sys.argv[1])
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    rsa_every = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    scratch_token("race")

    from mcagent.hsm.base import CreateKeyRequest, KeyType
    from mcagent.hsm.pkcs11.backend import Pkcs11KeyStore

    store = Pkcs11KeyStore(SOFTHSM_MODULE, "race", PIN, max_sessions=threads)
    lock, position, ok, failures = threading.Lock(), [0], [0], collections.Counter()

    def work() -> None:
        while True:
            with lock:
                i = position[0]
                position[0] += 1
            if i >= total:
                return
            key_type = KeyType.RSA_2048 if rsa_every and i % rsa_every == 0 else KeyType.EC_P256
            try:
                store.create_key(CreateKeyRequest(label=f"k{i}", key_type=key_type))
                with lock:
                    ok[0] += 1
            except Exception as exc:
                with lock:
                    failures[f"{type(exc).__name__}: {exc}"] += 1

    wall = time.perf_counter()
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - wall
    print(f"{total} creations, {threads} threads: {ok[0]} ok, {sum(failures.values())} failed, "
          f"{total / wall:.1f}/s; private keys in the token: {len(store.list_keys())}")
    for failure, count in failures.most_common():
        print(f"  {count}x {failure}")
    store.close()


if __name__ == "__main__":
    main()
