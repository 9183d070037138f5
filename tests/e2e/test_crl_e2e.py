"""The agent's CRL end to end: who is on it, where relying parties find it, and openssl's verdict."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
import subprocess
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import KEYSTORE_PASSWORD, require_tool
from tests.e2e.conftest import MCAGENT
from tests.e2e.test_certificates_e2e import ABN, EXPORT_PASSWORD, _split_pem

POLICY = "1.2.36.1.333.1"
ENV = {"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}


def _openssl(*args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("openssl", "openssl"), *args], capture_output=True, input=input)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _create(pa, name: str = "server-1") -> dict:
    return json.loads(pa.ok("credential", "create", "--abn", ABN, "--name", name, "--backend", "file",
                            "--key-type", "ec-p256", "--accept-terms", "--json"))


class Files:
    """root.pem, issuing.pem and leaf.pem of a credential, and openssl's verdict on the leaf."""

    def __init__(self, pa, credential_id: str, directory) -> None:
        self.dir = directory
        chain = _split_pem(pa.ok("credential", "certificate", credential_id))
        (directory / "root.pem").write_text(pa.ok("ca", "certificate"))
        (directory / "issuing.pem").write_text(pa.ok("ca", "certificate", "--issuing"))
        (directory / "leaf.pem").write_text(chain[0])
        self.leaf = x509.load_pem_x509_certificate(chain[0].encode())

    def verify(self, crl_pem: bytes) -> subprocess.CompletedProcess:
        """openssl verify -crl_check of the leaf against this CRL."""
        (self.dir / "crl.pem").write_bytes(crl_pem)
        return _openssl("verify", "-crl_check", "-CAfile", str(self.dir / "root.pem"),
                        "-untrusted", str(self.dir / "issuing.pem"), "-CRLfile", str(self.dir / "crl.pem"),
                        str(self.dir / "leaf.pem"))


def _accepted(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0 and b"leaf.pem: OK" in result.stdout, result.stdout + result.stderr


def _refused_as_revoked(result: subprocess.CompletedProcess) -> None:
    assert result.returncode != 0, result.stdout
    assert b"certificate revoked" in result.stdout + result.stderr, result.stdout + result.stderr


def _crl_serials(pem: str) -> set[int]:
    return {entry.serial_number for entry in x509.load_pem_x509_crl(pem.encode())}


def test_an_agent_certificate_installed_again_goes_on_the_crl_when_revoked(file_daemon, tmp_path):
    pa = file_daemon.new_business(ABN, "alice")
    credential = _create(pa)
    files = Files(pa, credential["id"], tmp_path)
    # The same agent-issued certificate, installed with `credential install`.
    pa.ok("credential", "install", credential["id"], "--certificate", str(tmp_path / "leaf.pem"))
    _accepted(files.verify(pa.ok("ca", "crl").encode()))  # not revoked yet: openssl accepts it
    pa.ok("credential", "revoke", credential["id"], "--yes")
    crl = pa.ok("ca", "crl")
    assert _crl_serials(crl) == {files.leaf.serial_number}
    _refused_as_revoked(files.verify(crl.encode()))


def test_an_imported_pkcs12_whose_leaf_is_ours_goes_on_the_crl_when_revoked(file_daemon, tmp_path):
    pa = file_daemon.new_business(ABN, "alice")
    original = _create(pa)
    files = Files(pa, original["id"], tmp_path)
    p12 = tmp_path / "c.p12"
    result = pa.cli("credential", "export", original["id"], "--format", "pkcs12", "--out", str(p12),
                    env={"MCAGENT_EXPORT_PASSWORD": EXPORT_PASSWORD})
    assert result.returncode == 0, result.stderr
    imported = json.loads(pa.cli("credential", "import", "--pkcs12", str(p12), "--backend", "file",
                                 "--accept-terms", "--json", env={"MCAGENT_IMPORT_PASSWORD": EXPORT_PASSWORD}).stdout)
    imported_id = imported["id"]
    assert _split_pem(pa.ok("credential", "certificate", imported_id))[0] == (tmp_path / "leaf.pem").read_text()
    pa.ok("credential", "revoke", imported_id, "--yes")  # only the imported one
    crl = pa.ok("ca", "crl")
    assert _crl_serials(crl) == {files.leaf.serial_number}
    _refused_as_revoked(files.verify(crl.encode()))
    pa.ok("credential", "revoke", original["id"], "--yes")  # the same certificate: still listed once
    assert [e.serial_number for e in x509.load_pem_x509_crl(pa.ok("ca", "crl").encode())] == [
        files.leaf.serial_number]


def test_certificates_from_other_cas_never_go_on_the_crl(file_daemon, tmp_path):
    from tests.e2e.certs import TestCA

    pa = file_daemon.new_business(ABN, "alice")
    (tmp_path / "issuing.pem").write_text(pa.ok("ca", "certificate", "--issuing"))
    agent_issuing = x509.load_pem_x509_certificate((tmp_path / "issuing.pem").read_bytes())
    external = TestCA(tmp_path, "external-ca")
    impostor_key = ec.generate_private_key(ec.SECP256R1())  # names itself like our issuing CA
    now = dt.datetime.now(dt.UTC)
    serials = []
    for name, (issuer_name, issuer_key) in {"external": (external.cert.subject, external.key),
                                            "impostor": (agent_issuing.subject, impostor_key)}.items():
        credential = _create(pa, name=name)
        csr = x509.load_pem_x509_csr(pa.ok("credential", "csr", credential["id"]).encode())
        certificate = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(issuer_name)
                       .public_key(csr.public_key()).serial_number(x509.random_serial_number())
                       .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
                       .sign(issuer_key, hashes.SHA256()))
        path = tmp_path / f"{name}.pem"
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        pa.ok("credential", "install", credential["id"], "--certificate", str(path))
        pa.ok("credential", "revoke", credential["id"], "--yes")
        serials.append(certificate.serial_number)
    ours = _create(pa, name="ours")
    pa.ok("credential", "revoke", ours["id"], "--yes")
    ours_serial = x509.load_pem_x509_certificate(
        _split_pem(pa.ok("credential", "certificate", ours["id"]))[0].encode()).serial_number
    assert _crl_serials(pa.ok("ca", "crl")) == {ours_serial}  # the agent's own, and neither of the others
    assert ours_serial not in serials


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_leaves_point_to_the_crl_the_agent_publishes_over_http(start_daemon, tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}/crl"
    daemon = start_daemon("--crl-url", url, "--crl-listen", f"127.0.0.1:{port}", "--certificate-policy", POLICY,
                          env=ENV, secrets=[KEYSTORE_PASSWORD])
    assert f"CRL published over HTTP at http://127.0.0.1:{port}/crl" in daemon.log()
    pa = daemon.new_business(ABN, "alice")
    credential = _create(pa)
    files = Files(pa, credential["id"], tmp_path)
    # The leaf names the URL and the policy, non-critical, as the ATO's leaves do.
    points = files.leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    policies = files.leaf.extensions.get_extension_for_class(x509.CertificatePolicies)
    assert not points.critical and not policies.critical
    assert [[n.value for n in p.full_name] for p in points.value] == [[url]]
    assert [p.policy_identifier.dotted_string for p in policies.value] == [POLICY]
    text = _openssl("x509", "-in", str(tmp_path / "leaf.pem"), "-noout", "-text").stdout.decode()
    assert "X509v3 CRL Distribution Points" in text and f"URI:{url}" in text
    assert "X509v3 Certificate Policies" in text and f"Policy: {POLICY}" in text
    # A relying party fetches the CRL from the leaf's own distribution point.
    (fetched_from,) = points.value[0].full_name
    status, content_type, der = _get(fetched_from.value)
    assert (status, content_type) == (200, "application/pkix-crl")
    (tmp_path / "crl.der").write_bytes(der)
    checked = _openssl("crl", "-inform", "DER", "-in", str(tmp_path / "crl.der"), "-CAfile",
                       str(tmp_path / "issuing.pem"), "-noout")
    assert checked.returncode == 0 and b"verify OK" in checked.stdout + checked.stderr, checked.stderr
    crl = x509.load_der_x509_crl(der)
    assert list(crl) == []
    assert _get(url)[2] == der  # nothing revoked since: the same CRL, not a new signature per request
    _accepted(files.verify(crl.public_bytes(serialization.Encoding.PEM)))
    # After the revocation the published CRL lists the leaf and openssl refuses it.
    pa.ok("credential", "revoke", credential["id"], "--yes")
    status, _, der = _get(url)
    crl = x509.load_der_x509_crl(der)
    assert status == 200 and [e.serial_number for e in crl] == [files.leaf.serial_number]
    assert crl.is_signature_valid(x509.load_pem_x509_certificate((tmp_path / "issuing.pem").read_bytes())
                                  .public_key())
    _refused_as_revoked(files.verify(crl.public_bytes(serialization.Encoding.PEM)))
    # Nothing else is served.
    for path in ("/other", "/", "/crl/", "/crl?x=1", "/../crl", "/mcagent.db"):
        status, content_type, body = _get(f"http://127.0.0.1:{port}{path}")
        assert status == 404 and content_type.startswith("text/plain"), (path, status)
        assert b"CRL" not in body and b"<" not in body
    post = urllib.request.Request(url, data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused_post:
        urllib.request.urlopen(post, timeout=30)
    assert refused_post.value.code == 404


def test_without_the_flags_leaves_carry_neither_extension(file_daemon, tmp_path):
    pa = file_daemon.new_business(ABN, "alice")
    leaf = Files(pa, _create(pa)["id"], tmp_path).leaf
    classes = {type(extension.value) for extension in leaf.extensions}
    assert x509.CRLDistributionPoints not in classes and x509.CertificatePolicies not in classes


@pytest.mark.parametrize(("flags", "message"), [
    (["--crl-url", "ftp://example.com/crl"], "--crl-url: CRL URL 'ftp://example.com/crl' must be http://"),
    (["--crl-url", "/crl"], "must be http://"),
    (["--crl-url", "http://host:99999/crl"], "--crl-url: CRL URL 'http://host:99999/crl' is not a URL"),
    (["--certificate-policy", "1.2.x"], "--certificate-policy: certificate policy '1.2.x' is not a dotted-decimal"),
    (["--certificate-policy", "9.1"], "is not a dotted-decimal OID"),
    (["--crl-listen", "8080"], "--crl-listen '8080' is not HOST:PORT"),
])
def test_bad_crl_flags_stop_start_up_with_a_clear_message(tmp_path, flags, message):
    result = subprocess.run([MCAGENT, "serve", "--data-dir", str(tmp_path / "data"), *flags], capture_output=True,
                            timeout=60, env={**os.environ, **ENV})
    assert result.returncode != 0
    assert message in result.stderr.decode(), result.stderr.decode()
    assert not (tmp_path / "data" / "mcagent.sock").exists()


def test_a_database_from_before_decides_installed_certificates_at_start_up(start_daemon, tmp_path):
    from mcagent.agent.storage.migrate import migrations

    daemon = start_daemon(env=ENV, secrets=[KEYSTORE_PASSWORD])
    pa = daemon.new_business(ABN, "alice")
    credential = _create(pa)
    files = Files(pa, credential["id"], tmp_path)
    pa.ok("credential", "install", credential["id"], "--certificate", str(tmp_path / "leaf.pem"))
    token = pa.token
    assert daemon.stop() == 0
    # As the previous schema recorded it: installed, so "issued elsewhere".
    with sqlite3.connect(daemon.data_dir / "mcagent.db") as db:
        db.execute("UPDATE credential SET issued_by_agent = 0")
        # before 0005 (the migrations after it run again too: they are written to allow that)
        db.execute(f"PRAGMA user_version = {[m.id[:4] for m in migrations()].index('0005')}")
    pa = start_daemon(data_dir=daemon.data_dir, env=ENV, secrets=[KEYSTORE_PASSWORD]).as_principal(token)
    pa.ok("credential", "revoke", credential["id"], "--yes")
    _refused_as_revoked(files.verify(pa.ok("ca", "crl").encode()))


def test_a_crl_listener_on_a_port_in_use_stops_start_up(start_daemon, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        result = subprocess.run([MCAGENT, "serve", "--data-dir", str(tmp_path / "data"), "--crl-listen", address],
                                capture_output=True, timeout=60, env={**os.environ, **ENV})
    assert result.returncode != 0
    assert f"cannot serve the CRL on {address}" in result.stderr.decode(), result.stderr.decode()
    assert not (tmp_path / "data" / "mcagent.sock").exists()
