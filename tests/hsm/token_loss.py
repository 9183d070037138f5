"""A SoftHSM2 token whose directory goes away and comes back while a key store is open.

Run by tests/hsm/test_softhsm.py as a subprocess with its own SOFTHSM2_CONF: SoftHSM reads
its token directory when the module is initialised, and the test must not take the
session's shared token away from the other tests. Arguments: the key store URI and the
token's directory (which this process renames away and back). Prints one JSON line: for
each step, "ok" with the signature, or the error class and message.
"""

import hashlib
import json
import os
import sys
import time

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from mcagent.hsm import open_keystore
from mcagent.hsm.base import CreateKeyRequest, KeyType, SignatureAlgorithm, SignRequest

ALGORITHM = SignatureAlgorithm.ECDSA_SHA256
MESSAGE = b"token loss"
BACK_DEADLINE = 60.0  # generous: recovery is retried every second; this bounds a hang, it is no target


def main() -> None:
    store_uri, token_dir = sys.argv[1], sys.argv[2]
    store = open_keystore(store_uri, os.environ["TOKEN_PIN"])
    info = store.create_key(CreateKeyRequest(label="kept", key_type=KeyType.EC_P256))

    def attempt(uri: str) -> dict[str, str]:
        try:
            signature = store.sign(SignRequest(uri=uri, algorithm=ALGORITHM, key_type=KeyType.EC_P256,
                                               digest=hashlib.sha256(MESSAGE).digest()))
        except Exception as exc:  # every outcome goes to the test
            return {"error": type(exc).__name__, "message": str(exc)}
        return {"signature": signature.hex()}

    report: dict[str, object] = {"uri": info.uri}
    report["before"] = attempt(info.uri)
    report["missing_before"] = attempt(store.label_uri("never-created"))
    # Out of the token directory altogether: SoftHSM finds a token in any directory inside it.
    away = os.path.join(os.path.dirname(os.path.dirname(token_dir)), "token-away")
    os.rename(token_dir, away)
    report["gone"] = attempt(info.uri)  # the key was found and cached on this session before
    report["gone_again"] = attempt(info.uri)
    os.rename(away, token_dir)
    deadline = time.monotonic() + BACK_DEADLINE
    failures_after_return = []
    while True:
        outcome = attempt(info.uri)
        if "signature" in outcome or time.monotonic() > deadline:
            break
        failures_after_return.append(outcome)
        time.sleep(0.2)
    report["back"] = outcome
    report["failures_after_return"] = [f["error"] for f in failures_after_return]
    report["missing_after"] = attempt(store.label_uri("never-created"))
    report["public_key"] = info.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    store.close()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
