"""The client library (`mcagent.client`) against a real daemon: typed replies, the error tree,
sync and asyncio; and docs/examples/cloud_signer.py signing 1,000 digests over mutual TLS."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import os
import socket
import subprocess
import sys

import grpc
import mcagent.client as mc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from mcagent.client import types as t

from tests.conftest import KEYSTORE_PASSWORD, REPO
from tests.e2e.certs import TestCA
from tests.e2e.conftest import MCAGENT
from tests.e2e.test_rules_e2e import ACME, OTHER

EXAMPLE = REPO / "docs" / "examples" / "cloud_signer.py"
PASSWORD_ENV = {"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _socket_client(daemon, token: str | None = None, **kw) -> mc.Client:
    return mc.Client(mc.Connection(target=f"unix:{daemon.socket}", token=token, **kw))


@pytest.fixture
def acme(file_daemon):
    """ACME with alice as PA and an RSA credential; returns (daemon, alice's token, credential id)."""
    with _socket_client(file_daemon) as admin:
        alice = admin.create_principal("alice")
        file_daemon.secrets.append(alice.token)
        admin.register_business("51 824 753 556", "Acme Pty Ltd", principal_authority="alice")
    with _socket_client(file_daemon, alice.token) as agent:
        terms = agent.machine_terms()
        created = agent.create_credential(ACME, "server-1", accepted_terms_version=terms.version)
    return file_daemon, alice.token, created.credential.id


def test_replies_are_frozen_dataclasses_not_protobuf(acme):
    daemon, token, credential_id = acme
    with _socket_client(daemon, token) as agent:
        assert agent.whoami() == t.WhoAmI(name="alice", local_administrator=False)
        assert agent.health() == "SERVING"
        credential = agent.get_credential(credential_id)
        assert isinstance(credential, mc.Credential)
        assert (credential.abn, credential.name, credential.status) == (ACME, "server-1", "active")
        assert credential.key_type is mc.KeyType.RSA_2048 and credential.backend is mc.Backend.FILE
        assert isinstance(credential.created_at, dt.datetime) and credential.created_at.tzinfo is not None
        assert credential.revoked_at is None and credential.permissions is None  # not used yet
        with pytest.raises(dataclasses.FrozenInstanceError):
            credential.status = "revoked"
        page = agent.list_credentials(ACME)
        assert [c.id for c in page.credentials] == [credential_id] and page.next_page_token == ""
        assert agent.list_roles(ACME)[0].role is mc.Role.PRINCIPAL_AUTHORITY
        assert "BEGIN CERTIFICATE" in agent.certificate_chain(credential_id)

        public_key = serialization.load_pem_public_key(agent.public_key(credential_id).encode())
        signed = agent.sign(credential_id, data=b"<request/>", algorithm="rsa-pkcs1-sha256")
        assert signed.algorithm is mc.Algorithm.RSA_PKCS1_SHA256 and signed.certificate_chain == ()
        chained = agent.sign(credential_id, data=b"<request/>", include_chain=True)
        assert len(chained.certificate_chain) >= 1  # DER, leaf first: the chain GetCertificateChain gives
        assert x509.load_der_x509_certificate(chained.certificate_chain[0]).public_bytes(
            serialization.Encoding.PEM).decode() in agent.certificate_chain(credential_id)
        public_key.verify(signed.signature, b"<request/>", padding.PKCS1v15(), hashes.SHA256())
        digest = hashlib.sha256(b"x").digest()
        pss = agent.sign(credential_id, digest=digest, algorithm=mc.Algorithm.RSA_PSS_SHA256)
        public_key.verify(pss.signature, digest, padding.PSS(padding.MGF1(hashes.SHA256()), 32),
                          Prehashed(hashes.SHA256()))
        assert agent.get_credential(credential_id).permissions  # first use: now in the access manager view


def test_refusals_raise_one_tree_with_the_status_code(acme, tmp_path):
    daemon, token, credential_id = acme
    with _socket_client(daemon, token) as agent:
        with pytest.raises(mc.NotFound) as caught:
            agent.get_credential("no-such-credential")
        assert caught.value.code is grpc.StatusCode.NOT_FOUND and isinstance(caught.value, mc.McagentError)
        with pytest.raises(mc.InvalidArgument, match="ecdsa"):
            agent.sign(credential_id, digest=b"\0" * 32, algorithm=mc.Algorithm.ECDSA_SHA256)
        with pytest.raises(mc.InvalidArgument):
            agent.get_business("12 345 678 901")  # fails the ABN checksum
        with pytest.raises(mc.PermissionDenied):
            agent.create_principal("mallory")  # the local administrator's job
        with pytest.raises(mc.FailedPrecondition, match="confirm"):
            agent.revoke(credential_id, confirm=False)
        assert agent.revoke(credential_id, confirm=True).status == "revoked"
        with pytest.raises(mc.FailedPrecondition):
            agent.sign(credential_id, data=b"x")
        with pytest.raises(TypeError):
            agent.sign(credential_id)
        with pytest.raises(mc.ClientConfigError, match="Algorithm"):
            agent.sign(credential_id, data=b"x", algorithm="md5")
    with _socket_client(daemon, "not-a-token") as stranger, pytest.raises(mc.Unauthenticated):
        stranger.whoami()
    with mc.Client(mc.Connection(target=f"unix:{tmp_path}/nothing.sock", timeout=5)) as nowhere:
        with pytest.raises(mc.Unavailable):
            nowhere.whoami()
    with pytest.raises(mc.ClientConfigError, match="TLS"):
        mc.Client.from_env(address="127.0.0.1:1", environ={})


def test_sign_batch_reports_each_item(acme):
    daemon, token, credential_id = acme
    digest = hashlib.sha256(b"batch").digest()
    with _socket_client(daemon, token) as agent:
        good, unknown, short = agent.sign_batch([
            mc.BatchItem(credential_id=credential_id, digest=digest),
            mc.BatchItem(credential_id="missing", digest=digest),
            mc.BatchItem(credential_id=credential_id, digest=b"short"),
        ])
    assert good.ok and good.algorithm is mc.Algorithm.RSA_PKCS1_SHA256 and good.raise_for_error() == good.signature
    assert unknown.code is grpc.StatusCode.NOT_FOUND and not unknown.ok
    with pytest.raises(mc.NotFound):
        unknown.raise_for_error()
    assert short.code is grpc.StatusCode.INVALID_ARGUMENT


def test_sign_stream_answers_every_item_by_its_request_id(acme):
    daemon, token, credential_id = acme
    digests = {str(n): hashlib.sha256(b"%d" % n).digest() for n in range(200)}
    items = [mc.StreamItem(request_id=n, credential_id=credential_id, digest=d) for n, d in digests.items()]
    items.append(mc.StreamItem(request_id="missing", credential_id="no-such-credential", digest=bytes(32)))
    items.append(mc.StreamItem(request_id="data", credential_id=credential_id, data=b"<request/>"))
    with _socket_client(daemon, token) as agent:
        results = {r.request_id: r for r in agent.sign_stream(iter(items))}
        public_key = serialization.load_pem_public_key(agent.public_key(credential_id).encode())
        with pytest.raises(TypeError):
            list(agent.sign_stream([mc.StreamItem(request_id="both", credential_id=credential_id)]))
    assert set(results) == set(digests) | {"missing", "data"}
    for request_id, digest in digests.items():
        result = results[request_id]
        assert isinstance(result, mc.StreamResult) and result.ok and result.algorithm is mc.Algorithm.RSA_PKCS1_SHA256
        public_key.verify(result.signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    assert results["missing"].code is grpc.StatusCode.NOT_FOUND
    with pytest.raises(mc.NotFound):
        results["missing"].raise_for_error()
    public_key.verify(results["data"].raise_for_error(), b"<request/>", padding.PKCS1v15(), hashes.SHA256())


def test_async_client_has_the_same_methods(acme):
    daemon, token, credential_id = acme
    digest = hashlib.sha256(b"async").digest()

    async def run():
        async with mc.AsyncClient(mc.Connection(target=f"unix:{daemon.socket}", token=token)) as agent:
            assert (await agent.whoami()).name == "alice"
            signed, batch = await asyncio.gather(
                agent.sign(credential_id, digest=digest),
                agent.sign_batch([mc.BatchItem(credential_id=credential_id, digest=digest)] * 10))
            assert signed.algorithm is mc.Algorithm.RSA_PKCS1_SHA256
            assert all(r.ok and r.signature == signed.signature for r in batch)  # PKCS#1 v1.5 is deterministic
            with pytest.raises(mc.NotFound):
                await agent.get_credential("missing")
            return await agent.public_key(credential_id)

    public_key = serialization.load_pem_public_key(asyncio.run(run()).encode())
    assert public_key.key_size == 2048


def test_from_env_reads_the_command_lines_variables(acme, monkeypatch):
    daemon, token, _ = acme
    monkeypatch.delenv("MCAGENT_ADDRESS", raising=False)
    monkeypatch.setenv("MCAGENT_SOCKET", daemon.socket)
    monkeypatch.setenv("MCAGENT_TOKEN", token)
    with mc.Client.from_env() as agent:
        assert agent.connection.target == f"unix:{daemon.socket}"
        assert agent.whoami().name == "alice"


def test_cloud_signer_example_signs_and_verifies_1000_digests_over_mtls(start_daemon, tmp_path):
    directory = tmp_path / "pki"
    directory.mkdir()
    ca = TestCA(directory, "agent-ca")
    server, dsp = ca.issue("server", "localhost", server=True), ca.issue("dsp", "dsp-server-1")
    address = f"127.0.0.1:{_free_port()}"
    daemon = start_daemon("--listen", address, "--tls-cert", str(server.cert), "--tls-key", str(server.key),
                          "--client-ca", str(ca.ca.cert), env=PASSWORD_ENV)
    pa = daemon.new_business(ACME, "alice")
    daemon.new_principal("dsp", "--certificate-subject", dsp.subject)
    pa.ok("role", "grant", "--abn", ACME, "--principal", "dsp", "--role", "software")
    credential_id = pa.ok("credential", "create", "--abn", ACME, "--name", "cloud", "--accept-terms").strip()
    other = daemon.new_business(OTHER, "olga", "Other Pty Ltd")
    foreign = other.ok("credential", "create", "--abn", OTHER, "--name", "x", "--accept-terms").strip()

    env = {k: v for k, v in os.environ.items() if not k.startswith("MCAGENT_")}
    env.update(MCAGENT_ADDRESS=address, MCAGENT_TLS_CERT=str(dsp.cert), MCAGENT_TLS_KEY=str(dsp.key),
               MCAGENT_TLS_CA=str(ca.ca.cert))
    run = subprocess.run([sys.executable, str(EXAMPLE), credential_id], capture_output=True, text=True,
                         timeout=300, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "signed 1000 digests" in run.stdout and "verified 1000; failed 0" in run.stdout
    streamed = subprocess.run([sys.executable, str(EXAMPLE), credential_id, "--count", "300", "--stream"],
                              capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert streamed.returncode == 0, streamed.stderr
    assert "signed 300 digests" in streamed.stdout and "verified 300; failed 0" in streamed.stdout
    # The command line reads the same variables.
    whoami = subprocess.run([MCAGENT, "whoami"], capture_output=True, text=True, timeout=60, env=env)
    assert whoami.returncode == 0 and whoami.stdout.strip() == "dsp", whoami.stderr
    # The same principal, another business's credential: every item refused, the example says so.
    refused = subprocess.run([sys.executable, str(EXAMPLE), foreign, "--count", "3"], capture_output=True,
                             text=True, timeout=60, env=env, cwd=tmp_path)
    assert refused.returncode == 1
    assert "PERMISSION_DENIED" in refused.stderr
