"""End to end: create credentials through the command line and verify signatures with openssl."""

from __future__ import annotations

import hashlib
import json

from mcagent.hsm.base import KeyType, SignatureAlgorithm

from tests.conftest import require_tool
from tests.pkcs11_tool import list_objects, objects_by_label
from tests.verify import openssl_verify

ABN = "51 824 753 556"
PAYLOAD = b'<wst:RequestSecurityToken xmlns:wst="http://docs.oasis-open.org/ws-sx/ws-trust/200512"/>\n'


def _exercise_every_key_type_and_algorithm(daemon, tmp_path, backend: str) -> None:
    require_tool("openssl", "openssl")
    daemon = daemon.new_business(ABN, "pa")
    message = tmp_path / "request.xml"
    message.write_bytes(PAYLOAD)
    for key_type in KeyType:
        created = json.loads(daemon.ok(
            "credential", "create", "--abn", ABN, "--name", f"{backend}-{key_type.value}",
            "--key-type", key_type.value, "--accept-terms", "--json",
        ))
        assert created["status"] == "active"
        assert created["key_uri"].startswith("pkcs11:" if backend == "pkcs11" else "file:")
        public_pem = tmp_path / f"{key_type.value}.pem"
        public_pem.write_text(daemon.ok("credential", "public-key", created["id"]))
        for algorithm in (a for a in SignatureAlgorithm if a.fits(key_type)):
            name = algorithm.algorithm_name
            signature = tmp_path / f"{key_type.value}-{name}.sig"
            daemon.ok("credential", "sign", created["id"], "--in", str(message), "--out", str(signature),
                      "--algorithm", name)
            verified = openssl_verify(public_pem, algorithm, message, signature)
            assert verified.returncode == 0 and "Verified OK" in verified.stdout, (name, verified.stderr)
            # Over a precomputed digest, the same signature scheme verifies against the data.
            digest = tmp_path / f"{name}.digest"
            digest.write_bytes(hashlib.new(algorithm.hash.hashlib_name, PAYLOAD).digest())
            from_digest = tmp_path / f"{key_type.value}-{name}-digest.sig"
            daemon.ok("credential", "sign", created["id"], "--in", str(digest), "--digest", "--out",
                      str(from_digest), "--algorithm", name)
            assert openssl_verify(public_pem, algorithm, message, from_digest).returncode == 0, name
            # The verifier can say no: the same signature over other data fails.
            other = tmp_path / "other.xml"
            other.write_bytes(PAYLOAD + b"tampered")
            assert openssl_verify(public_pem, algorithm, other, signature).returncode != 0
        # Signature to stdout, default algorithm for the key type.
        raw = daemon.cli("credential", "sign", created["id"], "--in", str(message)).stdout
        (tmp_path / "stdout.sig").write_bytes(raw)
        default = SignatureAlgorithm.default_for(key_type)
        assert openssl_verify(public_pem, default, message, tmp_path / "stdout.sig").returncode == 0
    listing = json.loads(daemon.ok("credential", "list", "--abn", ABN, "--json"))
    assert len(listing["credentials"]) == len(KeyType)


def test_pkcs11_backend_signs_with_every_key_type_and_algorithm(pkcs11_daemon, tmp_path, fresh_token):
    _exercise_every_key_type_and_algorithm(pkcs11_daemon, tmp_path, "pkcs11")
    # The keys are in the token, seen by an independent tool.
    listing = list_objects(fresh_token)
    for credential in json.loads(pkcs11_daemon.as_principal(None).ok("credential", "list", "--json"))["credentials"]:
        assert [b for b in objects_by_label(listing, credential["id"]) if b.startswith("Private Key Object")]


def test_file_backend_signs_with_every_key_type_and_algorithm(file_daemon, tmp_path):
    _exercise_every_key_type_and_algorithm(file_daemon, tmp_path, "file")
    keystore = file_daemon.data_dir / "keystore.mcks"
    assert keystore.stat().st_mode & 0o777 == 0o600


def test_credential_in_a_configured_key_store_file_chosen_by_name(start_daemon, tmp_path):
    from tests.conftest import KEYSTORE_PASSWORD

    chosen = tmp_path / "elsewhere" / "my-store.mcks"
    chosen.parent.mkdir(mode=0o700)
    daemon = start_daemon("--store", f"desk={chosen}", env={"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD})
    pa = daemon.new_business(ABN, "pa")
    created = json.loads(pa.ok("credential", "create", "--abn", ABN, "--name", "desk", "--backend", "file",
                               "--store", "desk", "--accept-terms", "--json"))
    assert created["key_uri"].startswith(f"file://{chosen}#")
    assert chosen.exists() and chosen.stat().st_mode & 0o777 == 0o600


def test_both_backends_in_one_daemon(start_daemon, fresh_token, tmp_path):
    from tests.conftest import KEYSTORE_PASSWORD

    daemon = start_daemon(
        "--pkcs11-module", fresh_token.module, "--pkcs11-token", fresh_token.token,
        env={"MCAGENT_PKCS11_PIN": fresh_token.pin, "MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD},
    )
    pa = daemon.new_business(ABN, "pa")
    for backend in ("pkcs11", "file"):
        created = json.loads(pa.ok("credential", "create", "--abn", ABN, "--name", backend,
                                       "--backend", backend, "--accept-terms", "--json"))
        assert created["key_uri"].startswith(f"{backend}:")


def test_health_and_reflection_are_served(file_daemon):
    import grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(f"unix:{file_daemon.socket}") as channel:
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {"mcagent.v1.CredentialService", "mcagent.v1.BusinessService", "mcagent.v1.PrincipalService",
            "mcagent.v1.AuditService", "grpc.health.v1.Health"} <= services
