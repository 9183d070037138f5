"""Adds keys to a key store file in a loop, printing each label once it is saved.

Used by tests/hsm/test_filestore.py, which kills this process at random moments.
"""

import os
import sys

from mcagent.hsm.base import CreateKeyRequest, KeyType
from mcagent.hsm.filestore import FileKeyStore


def main() -> None:
    path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = FileKeyStore(path, os.environ["STORE_PASSWORD"])
    start = sum(1 for uri in store.list_keys() if uri.rsplit("#", 1)[1].startswith(prefix))
    for n in range(start, start + count):
        label = f"{prefix}{n:05d}"
        store.create_key(CreateKeyRequest(label=label, key_type=KeyType.EC_P256))
        print(label, flush=True)


if __name__ == "__main__":
    main()
