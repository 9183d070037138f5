"""PKCS#11 behaviour that only a real token shows: attributes, concurrency, recovery."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid

import pkcs11
import pytest
from mcagent.hsm.base import CreateKeyRequest, KeyType, SignatureAlgorithm, SignRequest
from mcagent.hsm.uri import Pkcs11URI
from pkcs11 import Attribute, ObjectClass

from tests.conftest import REPO
from tests.pkcs11_tool import list_objects, objects_by_label
from tests.verify import verify


@pytest.mark.parametrize("key_type", [KeyType.RSA_2048, KeyType.EC_P256], ids=lambda k: k.value)
def test_private_key_is_token_object_sensitive_never_extractable_sharing_id(softhsm, pkcs11_store, key_type):
    label = f"attrs-{uuid.uuid4()}"
    info = pkcs11_store.create_key(CreateKeyRequest(label=label, key_type=key_type))
    # Seen by another process at all: they are token objects, not session objects.
    blocks = objects_by_label(list_objects(softhsm), label)
    private = [b for b in blocks if b.startswith("Private Key Object")]
    public = [b for b in blocks if b.startswith("Public Key Object")]
    assert len(private) == 1 and len(public) == 1, blocks
    access = next(line for line in private[0].splitlines() if "Access:" in line)
    assert "sensitive" in access and "never extractable" in access
    usage = next(line for line in private[0].splitlines() if "Usage:" in line)
    assert usage.split(":", 1)[1].strip() == "sign"
    key_id_hex = info.key_id.hex()
    assert f"ID:         {key_id_hex}" in private[0]
    assert f"ID:         {key_id_hex}" in public[0]


def test_private_key_value_cannot_be_read(softhsm, pkcs11_store):
    label = f"secret-{uuid.uuid4()}"
    info = pkcs11_store.create_key(CreateKeyRequest(label=label, key_type=KeyType.RSA_2048))
    # C_GetAttributeValue on the secret parts is refused: the key is sensitive.
    token = pkcs11.lib(softhsm.module).get_token(token_label=softhsm.token)
    with token.open(rw=False) as session:  # shares the agent's login; no second login
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=info.key_id)
        for secret in (Attribute.PRIVATE_EXPONENT, Attribute.PRIME_1, Attribute.VALUE):
            with pytest.raises((pkcs11.exceptions.AttributeSensitive, pkcs11.exceptions.AttributeTypeInvalid)):
                key[secret]
        with pytest.raises(pkcs11.exceptions.AttributeSensitive):
            key[Attribute.PRIVATE_EXPONENT]
        assert key[Attribute.SENSITIVE] is True
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.TOKEN] is True


def test_many_threads_sign_at_once_in_parallel_sessions(softhsm):
    result = subprocess.run(
        [sys.executable, "-m", "tests.hsm.hammer", softhsm.store_uri],
        cwd=REPO,
        env={**os.environ, "HAMMER_PIN": softhsm.pin},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"hammer process exited with {result.returncode}: {result.stderr[-2000:]}"
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failures"] == []
    assert report["signed"] == 16 * 40
    # Signs ran side by side on separate sessions, not one after another behind a lock.
    assert report["max_in_flight"] > 1
    assert report["sessions_open"] > 1


def _sign(store, info, message=b"after recovery"):
    algorithm = SignatureAlgorithm.RSA_PKCS1_SHA256
    return store.sign(SignRequest(uri=info.uri, algorithm=algorithm, key_type=KeyType.RSA_2048,
                                  digest=hashlib.sha256(message).digest()))


def _break_sessions_closed(store, softhsm):
    for worker in list(store._pool._all):  # white box: sessions die under the pool
        worker.session.close()


def _break_logged_out(store, softhsm):
    # White box: C_Logout (python-pkcs11 calls it when the login session closes) ends the
    # login of every session of the process.
    store._pool._login_session.close()


def _break_module_reinitialised(store, softhsm):
    pkcs11.lib(softhsm.module).reinitialize()  # python-pkcs11's own re-init, without OS locking




@pytest.mark.parametrize(
    "breaker",
    [
        pytest.param(_break_sessions_closed, id="sessions-closed"),
        pytest.param(_break_logged_out, id="logged-out"),
        pytest.param(_break_module_reinitialised, id="module-reinitialised"),
    ],
)
def test_sign_recovers_without_restart(softhsm, pkcs11_store, breaker):
    info = pkcs11_store.create_key(CreateKeyRequest(label=f"recover-{uuid.uuid4()}", key_type=KeyType.RSA_2048))
    _sign(pkcs11_store, info)  # warm the session and key caches
    before = pkcs11_store.stats().recoveries
    breaker(pkcs11_store, softhsm)
    # The token itself is still there, so the very first sign after the break succeeds: the
    # pool sees the failure, recovers (new module state, login, sessions) and retries once.
    # The caller never sees the break.
    verify(info.public_key, SignatureAlgorithm.RSA_PKCS1_SHA256, b"after recovery", _sign(pkcs11_store, info))
    stats = pkcs11_store.stats()
    assert stats.healthy
    assert stats.recoveries == before + 1  # exactly one recovery, by that first sign
    for _ in range(3):
        verify(info.public_key, SignatureAlgorithm.RSA_PKCS1_SHA256, b"after recovery", _sign(pkcs11_store, info))
    assert pkcs11_store.stats().recoveries == before + 1  # and none after it


def test_wrong_pin_is_refused_without_showing_it(softhsm):
    # A fresh process: within one process the token's login is shared by every session.
    wrong = "99999999"
    script = (
        "import os, sys\n"
        "from mcagent.hsm import open_keystore\n"
        "from mcagent.hsm.errors import AuthFailed\n"
        "try:\n"
        "    open_keystore(sys.argv[1], os.environ['TRY_PIN'])\n"
        "except AuthFailed as exc:\n"
        "    print(exc); sys.exit(3)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, softhsm.store_uri], cwd=REPO,
                            env={**os.environ, "TRY_PIN": wrong}, capture_output=True, text=True)
    assert result.returncode == 3, result.stderr
    assert "refused the PIN (PinIncorrect)" in result.stdout
    assert wrong not in result.stdout + result.stderr


def test_pin_in_uri_is_refused(softhsm):
    from mcagent.hsm.errors import InvalidURI

    with pytest.raises(InvalidURI, match="must not carry a PIN"):
        Pkcs11URI.parse(f"pkcs11:token={softhsm.token};pin-value=1234")


def test_missing_key_on_a_present_token_is_key_not_found(pkcs11_store):
    from mcagent.hsm.errors import KeyNotFound

    uri = pkcs11_store.label_uri(f"never-created-{uuid.uuid4()}")
    with pytest.raises(KeyNotFound, match="no private key at"):
        pkcs11_store.sign(SignRequest(uri=uri, algorithm=SignatureAlgorithm.RSA_PKCS1_SHA256,
                                      key_type=KeyType.RSA_2048, digest=bytes(32)))
    assert pkcs11_store.stats().healthy


def test_token_directory_gone_is_token_unavailable_then_signing_resumes(softhsm, tmp_path):
    """SoftHSM 2.6.1 answers searches with nothing once its token directory is gone."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from tests.conftest import SO_PIN, USER_PIN, require_tool

    util = require_tool("softhsm2-util", "softhsm2")
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    conf = tmp_path / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf), "TOKEN_PIN": USER_PIN}
    subprocess.run([util, "--init-token", "--free", "--label", "goes-away", "--pin", USER_PIN, "--so-pin", SO_PIN],
                   check=True, capture_output=True, env=env)
    (token_dir,) = tokens.iterdir()
    result = subprocess.run(
        [sys.executable, "-m", "tests.hsm.token_loss", f"pkcs11:token=goes-away?module-path={softhsm.module}",
         str(token_dir)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    public_key = load_pem_public_key(report["public_key"].encode())
    algorithm = SignatureAlgorithm.ECDSA_SHA256

    verify(public_key, algorithm, b"token loss", bytes.fromhex(report["before"]["signature"]))
    assert report["missing_before"]["error"] == "KeyNotFound"
    for step in ("gone", "gone_again"):
        assert report[step]["error"] == "TokenUnavailable", report[step]
        assert "not present" in report[step]["message"]
        assert USER_PIN not in report[step]["message"]
    # Back without a restart: the key signs again and a missing key is a missing key again.
    assert "signature" in report["back"], report
    verify(public_key, algorithm, b"token loss", bytes.fromhex(report["back"]["signature"]))
    assert set(report["failures_after_return"]) <= {"TokenUnavailable"}
    assert report["missing_after"]["error"] == "KeyNotFound"
    assert "no private key at" in report["missing_after"]["message"]
