"""How key look-up cost grows with the keys in one token: not a test, a measurement (issue 12).

Makes a SoftHSM2 file token in a temporary folder with N EC P-256 keys (through the key store),
then signs in rotation across all N from T threads (each key once, cold), R more times (warm),
and once more through a new key store on the same token (cold caches, as after a restart).
Prints signs/s, this process's CPU per sign and the token look-ups the pool counted
(`PoolStats.key_searches`, `key_index_passes`). CPU figures hold on a loaded machine better
than rates do.

Usage: python -m tests.hsm.many_keys N [THREADS=8] [ROUNDS=2]
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time

from tests.conftest import SOFTHSM_MODULE
from tests.hsm.scratch import PIN, scratch_token


def main() -> None:
    count = int(sys.argv[1])
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    scratch_token("many")

    from mcagent.hsm.base import CreateKeyRequest, KeyType, SignatureAlgorithm, SignRequest
    from mcagent.hsm.pkcs11.backend import Pkcs11KeyStore

    store = Pkcs11KeyStore(SOFTHSM_MODULE, "many", PIN)
    uris, began = [], time.process_time()
    for i in range(count):
        if i == count // 2:
            first_half, began = time.process_time() - began, time.process_time()
        uris.append(store.create_key(CreateKeyRequest(label=f"k{i}", key_type=KeyType.EC_P256)).uri)
    second_half = time.process_time() - began
    print(f"{count} keys created: {first_half / (count // 2) * 1e3:.1f} ms CPU each in the first half, "
          f"{second_half / (count - count // 2) * 1e3:.1f} ms in the second")
    digest = hashlib.sha256(b"many keys").digest()

    def run(what: str, passes: int) -> None:
        lock, position = threading.Lock(), [0]

        def work() -> None:
            while True:
                with lock:
                    i = position[0]
                    position[0] += 1
                if i >= passes * count:
                    return
                store.sign(SignRequest(uri=uris[i % count], algorithm=SignatureAlgorithm.ECDSA_SHA256,
                                       key_type=KeyType.EC_P256, digest=digest))

        before, cpu, wall = store.stats(), time.process_time(), time.perf_counter()
        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        signs, cpu, wall, after = passes * count, time.process_time() - cpu, time.perf_counter() - wall, store.stats()
        print(f"{what}: {signs} signs across {count} keys, {threads} threads: {signs / wall:.0f} signs/s, "
              f"{cpu / signs * 1e3:.2f} ms CPU/sign, {after.key_searches - before.key_searches} searches, "
              f"{after.key_index_passes - before.key_index_passes} index passes")

    run("cold", 1)
    run("warm", rounds)
    store.close()
    store = Pkcs11KeyStore(SOFTHSM_MODULE, "many", PIN)
    run("new store, cold", 1)
    store.close()


if __name__ == "__main__":
    main()
