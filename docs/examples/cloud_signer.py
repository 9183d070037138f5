"""A cloud server signing in bulk through mcagent over mutual TLS, then checking every signature.

    python docs/examples/cloud_signer.py CREDENTIAL_ID [--count 1000] [--stream]

The connection comes from the environment, as for the `mcagent` command:
MCAGENT_ADDRESS=agent.example:7443 with MCAGENT_TLS_CERT, MCAGENT_TLS_KEY (this server's
client certificate, mapped to a principal with `principal create --certificate-subject`)
and MCAGENT_TLS_CA (the CA of the agent's certificate). The principal needs a role in the
credential's business (`software` is enough to sign).

The private key never leaves the agent: the server sends SHA-256 digests (1,000 per
SignBatch request at most; or, with --stream, pipelined over one SignStream whose answers
come back as each sign is done), gets raw signatures back, and verifies them with the
credential's public key using `cryptography` alone.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from mcagent.client import MAX_BATCH, Algorithm, BatchItem, Client, McagentError, StreamItem


def verify(public_key, algorithm: Algorithm, signature: bytes, digest: bytes) -> None:
    """Raise InvalidSignature unless `signature` is `public_key`'s over the SHA-256 `digest`."""
    prehashed = Prehashed(hashes.SHA256())
    if algorithm is Algorithm.ECDSA_SHA256:
        public_key.verify(signature, digest, ec.ECDSA(prehashed))
    elif algorithm is Algorithm.RSA_PSS_SHA256:
        public_key.verify(signature, digest, padding.PSS(padding.MGF1(hashes.SHA256()), 32), prehashed)
    else:
        public_key.verify(signature, digest, padding.PKCS1v15(), prehashed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("credential_id")
    parser.add_argument("--count", type=int, default=1000, help="how many digests to sign (default 1000)")
    parser.add_argument("--stream", action="store_true", help="pipeline the signs over one SignStream")
    args = parser.parse_args(argv)

    digests = [hashlib.sha256(f"document {n}".encode() + os.urandom(16)).digest() for n in range(args.count)]
    try:
        with Client.from_env() as agent:
            public_key = serialization.load_pem_public_key(agent.public_key(args.credential_id).encode())
            algorithm = Algorithm.ECDSA_SHA256 if isinstance(public_key, ec.EllipticCurvePublicKey) \
                else Algorithm.RSA_PKCS1_SHA256
            started = time.monotonic()
            results = []
            if args.stream:  # answers come in any order: put each back in its place by request id
                by_id = {r.request_id: r for r in agent.sign_stream(
                    StreamItem(request_id=str(n), credential_id=args.credential_id, digest=d, algorithm=algorithm)
                    for n, d in enumerate(digests))}
                results = [by_id[str(n)] for n in range(len(digests))]
            for start in range(0, len(digests) if not args.stream else 0, MAX_BATCH):
                results += agent.sign_batch(BatchItem(credential_id=args.credential_id, digest=d, algorithm=algorithm)
                                            for d in digests[start:start + MAX_BATCH])
            elapsed = time.monotonic() - started
    except McagentError as error:
        print(f"cloud_signer: the agent refused: {error}", file=sys.stderr)
        return 1

    failed = 0
    for number, (digest, result) in enumerate(zip(digests, results, strict=True)):
        if not result.ok:
            failed += 1
            print(f"digest {number}: {result.code.name}: {result.error}", file=sys.stderr)
            continue
        try:
            verify(public_key, result.algorithm, result.signature, digest)
        except InvalidSignature:
            failed += 1
            print(f"digest {number}: the signature does not verify", file=sys.stderr)
    verified = len(digests) - failed
    print(f"signed {len(digests)} digests in {elapsed:.2f}s; verified {verified}; failed {failed}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
