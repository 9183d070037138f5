"""Independent signature checks for tests (cryptography in-process, openssl as a subprocess)."""

from __future__ import annotations

import pathlib
import subprocess

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from mcagent.hsm.base import SignatureAlgorithm

OPENSSL_OPTIONS = {
    SignatureAlgorithm.RSA_PKCS1_SHA256: ["-sha256"],
    SignatureAlgorithm.RSA_PKCS1_SHA1: ["-sha1"],
    SignatureAlgorithm.RSA_PSS_SHA256: [
        "-sha256", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32", "-sigopt", "rsa_mgf1_md:sha256",
    ],
    SignatureAlgorithm.ECDSA_SHA256: ["-sha256"],
}


def verify(public_key, algorithm: SignatureAlgorithm, data: bytes, signature: bytes) -> None:
    """Raise InvalidSignature unless `signature` is `algorithm` over `data` by `public_key`."""
    digest = hashes.SHA1() if algorithm is SignatureAlgorithm.RSA_PKCS1_SHA1 else hashes.SHA256()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(digest))
    elif algorithm is SignatureAlgorithm.RSA_PSS_SHA256:
        assert isinstance(public_key, rsa.RSAPublicKey)
        public_key.verify(signature, data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), digest)
    else:
        public_key.verify(signature, data, padding.PKCS1v15(), digest)


def openssl_verify(
    public_pem: pathlib.Path, algorithm: SignatureAlgorithm, data: pathlib.Path, signature: pathlib.Path
) -> subprocess.CompletedProcess:
    """Run `openssl dgst -verify`; returns the completed process (returncode 0 = verified)."""
    return subprocess.run(
        ["openssl", "dgst", *OPENSSL_OPTIONS[algorithm], "-verify", str(public_pem),
         "-signature", str(signature), str(data)],
        capture_output=True,
        text=True,
    )
