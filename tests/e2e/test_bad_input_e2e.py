"""Bad input: a non-zero exit, one line naming the problem, and nothing created."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import KEYSTORE_PASSWORD
from tests.e2e.conftest import MCAGENT

ABN = "51824753556"


def _one_line_error(result: subprocess.CompletedProcess, *expected: str) -> str:
    assert result.returncode != 0
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def daemon_with_credential(file_daemon, tmp_path):
    pa = file_daemon.new_business(ABN, "pa")
    credential_id = pa.ok("credential", "create", "--abn", ABN, "--name", "ec", "--key-type", "ec-p256",
                          "--accept-terms").strip()
    message = tmp_path / "message"
    message.write_bytes(b"data")
    return pa, credential_id, str(message)


def _state(daemon) -> tuple:
    credentials = json.loads(daemon.ok("credential", "list", "--json"))["credentials"]
    return tuple(sorted(c["id"] for c in credentials)), (daemon.data_dir / "keystore.mcks").read_bytes()


@pytest.mark.parametrize(("args", "expected"), [
    (["business", "register", "--abn", "12 345 678 901", "--name", "Bad", "--principal-authority", "pa"],
     ["PERMISSION_DENIED", "only the local administrator may register businesses"]),
    (["credential", "create", "--abn", "12 345 678 901", "--name", "x", "--accept-terms"],
     ["INVALID_ARGUMENT", "checksum"]),
    (["credential", "create", "--abn", ABN, "--name", "no-terms"],
     ["FAILED_PRECONDITION", "terms of use", "--accept-terms"]),
    (["credential", "create", "--abn", "53 004 085 616", "--name", "x", "--accept-terms"],
     ["NOT_FOUND", "53004085616 is not registered"]),
    (["credential", "create", "--abn", ABN, "--name", "x", "--accept-terms"], None),
    (["credential", "create", "--abn", ABN, "--name", "x", "--key-type", "rsa-1024", "--accept-terms"],
     ["invalid choice: 'rsa-1024'"]),
    (["credential", "create", "--abn", ABN, "--name", "x", "--backend", "pkcs11", "--accept-terms"],
     ["FAILED_PRECONDITION", "pkcs11 backend is not enabled"]),
    (["credential", "show", "00000000-0000-0000-0000-000000000000"],
     ["NOT_FOUND", "no credential with id '00000000-0000-0000-0000-000000000000'"]),
    (["credential", "sign", "no-such-id", "--in", "{message}"], ["NOT_FOUND", "no credential with id 'no-such-id'"]),
    (["credential", "sign", "{id}", "--in", "{message}", "--algorithm", "rsa-md5"], ["invalid choice: 'rsa-md5'"]),
    (["credential", "sign", "{id}", "--in", "{message}", "--algorithm", "rsa-pss-sha256"],
     ["INVALID_ARGUMENT", "rsa-pss-sha256 does not fit", "ec-p256 key"]),
    (["credential", "sign", "{id}", "--in", "{message}", "--digest"],
     ["INVALID_ARGUMENT", "needs a 32-byte SHA256 digest, got 4 bytes"]),
    (["credential", "sign", "{id}", "--in", "/nonexistent/file"], ["cannot read --in /nonexistent/file"]),
])
def test_bad_input_gives_one_line_and_creates_nothing(daemon_with_credential, args, expected):
    daemon, credential_id, message = daemon_with_credential
    before = _state(daemon)
    args = [a.replace("{id}", credential_id).replace("{message}", message) for a in args]
    if expected is None:  # a valid request, to show the state check can see a change
        daemon.ok(*args)
        assert _state(daemon) != before
        return
    _one_line_error(daemon.cli(*args), *expected)
    assert _state(daemon) == before


def test_invalid_abn_is_refused_at_registration(file_daemon):
    file_daemon.new_principal("someone")
    _one_line_error(file_daemon.cli("business", "register", "--abn", "12 345 678 901", "--name", "Bad",
                                    "--principal-authority", "someone"),
                    "INVALID_ARGUMENT", "ABN '12 345 678 901' is not valid: its checksum does not match")


def test_unreachable_agent_says_so(tmp_path):
    result = subprocess.run([MCAGENT, "--socket", str(tmp_path / "none.sock"), "credential", "list"],
                            capture_output=True, timeout=60)
    _one_line_error(result, "cannot reach the agent", "is `mcagent serve` running?")


def _serve(tmp_path, *args, env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MCAGENT_")}
    return subprocess.run([MCAGENT, "serve", "--data-dir", str(tmp_path / "data"), *args],
                          capture_output=True, timeout=60, env={**clean, **env})


def test_serve_without_password_refuses_to_start(tmp_path):
    line = _one_line_error(_serve(tmp_path, env={}), "no key store password", "MCAGENT_KEYSTORE_PASSWORD")
    assert not (tmp_path / "data" / "mcagent.sock").exists(), line


def test_serve_without_pin_refuses_to_start(tmp_path, softhsm):
    _one_line_error(
        _serve(tmp_path, "--keystore-backend", "pkcs11", "--pkcs11-module", softhsm.module,
               "--pkcs11-token", softhsm.token, env={"SOFTHSM2_CONF": softhsm.conf}),
        "no PKCS#11 PIN", "MCAGENT_PKCS11_PIN",
    )


def test_serve_with_wrong_pin_refuses_without_showing_it(tmp_path, softhsm):
    result = _serve(tmp_path, "--keystore-backend", "pkcs11", "--pkcs11-module", softhsm.module,
                    "--pkcs11-token", softhsm.token,
                    env={"SOFTHSM2_CONF": softhsm.conf, "MCAGENT_PKCS11_PIN": "11112222"})
    _one_line_error(result, "refused the PIN")
    assert b"11112222" not in result.stderr + result.stdout


def test_serve_with_wrong_keystore_password_refuses(tmp_path, start_daemon):
    daemon = start_daemon(env={"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD})
    daemon.new_business(ABN, "pa").ok("credential", "create", "--abn", ABN, "--name", "x", "--key-type", "ec-p256",
                                      "--accept-terms")
    assert daemon.stop() == 0
    result = subprocess.run([MCAGENT, "serve", "--data-dir", str(daemon.data_dir)], capture_output=True, timeout=60,
                            env={**os.environ, "MCAGENT_KEYSTORE_PASSWORD": "Wrong-password-9"})
    _one_line_error(result, "wrong password for key store file")
    assert b"Wrong-password-9" not in result.stderr


def test_password_file_open_to_others_is_refused(tmp_path):
    secret = tmp_path / "password"
    secret.write_text(KEYSTORE_PASSWORD)
    secret.chmod(0o644)
    _one_line_error(_serve(tmp_path, "--keystore-password-file", str(secret), env={}),
                    "accessible to other users", f"chmod 600 {secret}")


def test_an_unwritable_out_file_is_refused_before_anything_is_signed(daemon_with_credential, tmp_path):
    pa, credential_id, message = daemon_with_credential
    signs_before = [e for e in pa.audit() if e["action"] == "credential.sign"]
    result = pa.cli("credential", "sign", credential_id, "--in", message, "--out", str(tmp_path / "no" / "dir" / "sig"))
    _one_line_error(result, "cannot write", "nothing was signed")
    assert [e for e in pa.audit() if e["action"] == "credential.sign"] == signs_before
