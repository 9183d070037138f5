"""The daemon on a PKCS#11 module other than libsofthsm2: p11-kit's client, reaching a token
that `p11-kit server` serves (a stand-in for a network HSM shared by several hosts)."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_sign_e2e import _exercise_every_key_type_and_algorithm

pytestmark = pytest.mark.e2e


def test_a_daemon_through_p11_kit_client_creates_signs_and_revokes(start_daemon, p11kit, p11kit_store, tmp_path):
    # Two workers: each loads p11-kit's client after the fork and logs in over its own connection
    # (the single-process path is the key-store contract suite's, tests/hsm/test_contract.py).
    daemon = start_daemon("--keystore-backend", "pkcs11", "--pkcs11-module", p11kit.module,
                          "--pkcs11-token", p11kit.token, "--workers", "2", env={"MCAGENT_PKCS11_PIN": p11kit.pin},
                          secrets=[p11kit.pin])
    assert "p11-kit-client.so" in p11kit.module
    # Create every key type, sign with every algorithm, openssl verifies each signature.
    _exercise_every_key_type_and_algorithm(daemon, tmp_path, "pkcs11")
    admin = daemon.as_principal(None)
    credentials = json.loads(admin.ok("credential", "list", "--json"))["credentials"]
    on_token = p11kit_store.list_keys()
    for credential in credentials:
        assert credential["key_uri"].startswith(f"pkcs11:token={p11kit.token};")
        assert any(uri.endswith(f"object={credential['id']}") for uri in on_token), credential["id"]
    # Revoke: the key leaves the remote token and signing is refused.
    victim = credentials[0]["id"]
    pa = daemon.as_principal(daemon.secrets[-1])  # the business's PA, made by the helper above
    pa.ok("credential", "revoke", victim, "--yes")
    refused = pa.cli("credential", "sign", victim, "--in", "-", input=b"after revocation")
    assert refused.returncode != 0 and b"revoked" in refused.stderr, refused.stderr
    assert not any(uri.endswith(f"object={victim}") for uri in p11kit_store.list_keys())
    assert "audit log intact" in admin.ok("audit", "verify")
    assert "initialized_forkid" not in daemon.log()
