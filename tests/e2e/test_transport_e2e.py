"""Callers by transport: mutual TLS on TCP, Unix-socket peer uid, and plain TCP only on request."""

from __future__ import annotations

import os
import socket
import subprocess
import threading

import grpc
import pytest
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc

from tests.conftest import KEYSTORE_PASSWORD
from tests.e2e.certs import TestCA
from tests.e2e.conftest import MCAGENT
from tests.e2e.test_rules_e2e import ACME, OTHER, refused

PASSWORD_ENV = {"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def pki(tmp_path):
    directory = tmp_path / "pki"
    directory.mkdir()
    ca = TestCA(directory, "agent-ca")
    stranger_ca = TestCA(directory, "stranger-ca")
    return {
        "ca": ca,
        "server": ca.issue("server", "localhost", server=True),
        "dsp": ca.issue("dsp", "dsp-server-1"),
        "unmapped": ca.issue("unmapped", "nobody-knows-me"),
        "stranger": stranger_ca.issue("stranger", "dsp-server-1"),
    }


@pytest.fixture(params=[1, 2], ids=["one-process", "two-workers"])
def mtls_daemon(start_daemon, pki, request):
    """With two workers, both bind the mutual-TLS port (SO_REUSEPORT) and the kernel shares connections."""
    address = f"127.0.0.1:{_free_port()}"
    daemon = start_daemon("--listen", address, "--tls-cert", str(pki["server"].cert), "--tls-key",
                          str(pki["server"].key), "--client-ca", str(pki["ca"].ca.cert), "--workers",
                          str(request.param), env=PASSWORD_ENV)
    return daemon, address


def _tcp_cli(address, pki, client, *args, token=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCAGENT_")}
    if token:
        env["MCAGENT_TOKEN"] = token
    return subprocess.run([MCAGENT, "--address", address, "--tls-ca", str(pki["ca"].ca.cert),
                           "--tls-cert", str(pki[client].cert), "--tls-key", str(pki[client].key), *args],
                          capture_output=True, timeout=60, env=env)


def test_client_certificate_acts_as_its_principal_and_no_other(mtls_daemon, pki, tmp_path):
    daemon, address = mtls_daemon
    pa = daemon.new_business(ACME, "alice")
    other_pa = daemon.new_business(OTHER, "olga", "Other Pty Ltd")
    daemon.new_principal("dsp", "--certificate-subject", pki["dsp"].subject)
    pa.ok("role", "grant", "--abn", ACME, "--principal", "dsp", "--role", "software")
    credential = pa.ok("credential", "create", "--abn", ACME, "--name", "cloud", "--key-type", "ec-p256",
                       "--accept-terms").strip()
    message = tmp_path / "m"
    message.write_bytes(b"data")

    whoami = _tcp_cli(address, pki, "dsp", "whoami")
    assert whoami.returncode == 0 and whoami.stdout.decode().strip() == "dsp"
    signed = _tcp_cli(address, pki, "dsp", "credential", "sign", credential, "--in", str(message), "--out",
                      str(tmp_path / "sig"))
    assert signed.returncode == 0, signed.stderr
    # Not another business's credentials, and not another principal's token on top of its certificate.
    other_credential = other_pa.ok("credential", "create", "--abn", OTHER, "--name", "x", "--key-type", "ec-p256",
                                   "--accept-terms").strip()
    refused(_tcp_cli(address, pki, "dsp", "credential", "sign", other_credential, "--in", str(message)),
            "PERMISSION_DENIED", "dsp may not sign", "business 53004085616")
    refused(_tcp_cli(address, pki, "dsp", "whoami", token=other_pa.token), "UNAUTHENTICATED",
            "token and the client certificate name different principals")
    # A certificate from our CA that maps to nobody.
    refused(_tcp_cli(address, pki, "unmapped", "whoami"), "UNAUTHENTICATED", "is not mapped to a principal")


def test_no_client_certificate_or_another_ca_is_refused(mtls_daemon, pki):
    daemon, address = mtls_daemon
    daemon.new_principal("dsp", "--certificate-subject", pki["dsp"].subject)
    root = pki["ca"].ca.cert.read_bytes()
    # First the same listener answers a client with a good certificate, so that the refusals
    # below are the handshake refusing, not a port that is down.
    good = grpc.ssl_channel_credentials(root_certificates=root, private_key=pki["dsp"].key.read_bytes(),
                                        certificate_chain=pki["dsp"].cert.read_bytes())
    with grpc.secure_channel(address, good) as channel:
        assert pb_grpc.PrincipalServiceStub(channel).WhoAmI(pb.WhoAmIRequest(), timeout=10).name == "dsp"
    accepted = _tcp_cli(address, pki, "dsp", "whoami")
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.decode().strip() == "dsp"
    with grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root)) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            pb_grpc.PrincipalServiceStub(channel).WhoAmI(pb.WhoAmIRequest(), timeout=10)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE  # the handshake fails: no certificate
    # Same subject as the mapped client, but signed by a CA the agent does not trust.
    result = _tcp_cli(address, pki, "stranger", "whoami")
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr.decode()
    # The listener is still up for the good client after the refusals.
    assert _tcp_cli(address, pki, "dsp", "whoami").stdout.decode().strip() == "dsp"


def test_plain_tcp_is_refused_unless_asked_for_and_then_loud(tmp_path, start_daemon):
    address = f"127.0.0.1:{_free_port()}"
    result = subprocess.run([MCAGENT, "serve", "--data-dir", str(tmp_path / "plain"), "--listen", address],
                            capture_output=True, timeout=60, env={**os.environ, **PASSWORD_ENV})
    assert result.returncode == 1
    assert "refusing plain TCP" in result.stderr.decode() and "--insecure-listen" in result.stderr.decode()
    daemon = start_daemon("--insecure-listen", address, env=PASSWORD_ENV)
    assert "PLAIN TCP WITHOUT TLS" in daemon.log()
    alice = daemon.new_principal("alice")
    with grpc.insecure_channel(address) as channel:
        stub = pb_grpc.PrincipalServiceStub(channel)
        reply = stub.WhoAmI(pb.WhoAmIRequest(), metadata=(("authorization", f"Bearer {alice.token}"),), timeout=10)
        assert reply.name == "alice"
        with pytest.raises(grpc.RpcError) as caught:
            stub.WhoAmI(pb.WhoAmIRequest(), timeout=10)  # no token, no certificate, no uid
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED


NOBODY = 65534


def _connect_as(uid: int, path: str) -> socket.socket:
    """A connection to `path` made by a child process running as `uid` (the kernel records that
    uid for SO_PEERCRED at connect time), handed back to us over SCM_RIGHTS."""
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the child only makes one connection and exits: no interpreter state is used
        try:
            os.setgid(uid)
            os.setuid(uid)
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.connect(path)
            socket.send_fds(child_end, [b"x"], [connection.fileno()])
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    _, fds, _, _ = socket.recv_fds(parent_end, 1, 1)
    parent_end.close()
    child_end.close()
    return socket.socket(fileno=fds[0])


def _relay_as(uid: int, daemon_socket: str, relay_path: str) -> None:
    """Serve `relay_path`: each connection is relayed to the daemon over a connection made as `uid`."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(relay_path)
    listener.listen()

    def pump(source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass

    def serve():
        while True:
            client, _ = listener.accept()
            upstream = _connect_as(uid, daemon_socket)
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()


def test_unix_peer_uid_identifies_a_principal(start_daemon, tmp_path):
    if os.getuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("CI runs as root so that this test can connect as another uid")
        pytest.skip("connecting as another uid needs root")
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o755)
    for directory in (tmp_path, tmp_path.parent, tmp_path.parent.parent):
        directory.chmod(0o755)  # let uid 65534 reach the socket
    daemon = start_daemon("--socket", str(run_dir / "mcagent.sock"), "--socket-mode", "0666", env=PASSWORD_ENV)
    relay = str(tmp_path / "relay.sock")
    _relay_as(NOBODY, daemon.socket, relay)

    with grpc.insecure_channel(f"unix:{relay}") as channel:
        principals = pb_grpc.PrincipalServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            principals.WhoAmI(pb.WhoAmIRequest(), timeout=10)
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert f"uid {NOBODY} is not a principal" in caught.value.details()
        daemon.new_principal("desktop", "--uid", str(NOBODY))
        assert principals.WhoAmI(pb.WhoAmIRequest(), timeout=10).name == "desktop"
        with pytest.raises(grpc.RpcError) as caught:
            principals.CreatePrincipal(pb.CreatePrincipalRequest(name="x", uid=-1), timeout=10)
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "local administrator" in daemon.ok("whoami")  # our own uid is the administrator
