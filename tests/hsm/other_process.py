"""A second process on the same token, driven line by line, for tests/hsm/test_shared_token.py.

Reads JSON commands on stdin ({"op": "create"|"sign"|"delete"|"list", ...}) and answers each
with one JSON line: the result, or {"error": <class name>, "message": ...}. The store (one login)
lives as long as the process, so its session key caches do too.

Usage: python -m tests.hsm.other_process STORE_URI (PIN in TOKEN_PIN)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from mcagent.hsm import open_keystore
from mcagent.hsm.base import CreateKeyRequest, KeyType, SignatureAlgorithm, SignRequest


def main() -> None:
    store = open_keystore(sys.argv[1], os.environ["TOKEN_PIN"])
    for line in sys.stdin:
        command = json.loads(line)
        try:
            if command["op"] == "create":
                info = store.create_key(CreateKeyRequest(label=command["label"], key_type=KeyType.EC_P256))
                pem = info.public_key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
                answer = {"uri": info.uri, "public_key": pem}
            elif command["op"] == "sign":
                signature = store.sign(SignRequest(uri=command["uri"], algorithm=SignatureAlgorithm.ECDSA_SHA256,
                                                   key_type=KeyType.EC_P256,
                                                   digest=hashlib.sha256(command["data"].encode()).digest()))
                answer = {"signature": signature.hex()}
            elif command["op"] == "delete":
                answer = {"deleted": store.delete_key(command["uri"])}
            else:
                answer = {"keys": store.list_keys()}
        except Exception as exc:  # every failure goes back to the test, which judges it
            answer = {"error": type(exc).__name__, "message": str(exc)}
        print(json.dumps(answer), flush=True)
    store.close()


if __name__ == "__main__":
    main()
