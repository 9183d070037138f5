"""The Unix socket under a connection flood: caps per uid and overall, idle timeout, no thread per connection."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time

import grpc
import pytest
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc

from tests.conftest import KEYSTORE_PASSWORD
from tests.e2e.conftest import MCAGENT
from tests.e2e.test_transport_e2e import NOBODY

PASSWORD_ENV = {"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}
FLOOD = 2500
MAX_THREADS = 60  # the gRPC pool (32) and the daemon's own few; far below one per connection
WAIT = 30.0  # generous: only a broken daemon takes this long


@pytest.fixture(autouse=True)
def open_file_limit():
    """Room for the flood in this process (the daemon inherits it and raises its own)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 3 * FLOOD + 1024
    if hard != resource.RLIM_INFINITY and hard < needed:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the hard open-file limit {hard} is below the {needed} these tests need")
        pytest.skip(f"the hard open-file limit {hard} is below the {needed} these tests need")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


def _daemon_connections(path: str) -> int:
    """Connections the daemon has accepted on its public socket and not closed (from /proc/net/unix)."""
    with open("/proc/net/unix") as table:
        return sum(1 for line in table if line.split()[5:6] == ["03"] and line.split()[7:] == [path])


def _wait_until_no_connections(path: str) -> None:
    """The daemon lets go of a closed connection (e.g. the start-up health check's) a moment later."""
    deadline = time.monotonic() + WAIT
    while _daemon_connections(path):
        assert time.monotonic() < deadline, "the daemon holds connections nobody uses"
        time.sleep(0.05)


_CONNECT_AND_PASS = """
import os, socket, sys
back = socket.socket(fileno=int(sys.argv[1]))
uid = int(sys.argv[3])
os.setgroups([])
os.setgid(uid)
os.setuid(uid)
connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
connection.connect(sys.argv[2])
socket.send_fds(back, [b"x"], [connection.fileno()])
"""


def _connect_as(uid: int, path: str) -> socket.socket:
    """A connection to `path` made by a process running as `uid` (the kernel records that uid for
    SO_PEERCRED at connect time), handed back over SCM_RIGHTS. A fresh interpreter, not a bare fork:
    forking this process while gRPC's threads run can deadlock the child. It drops to `uid` itself,
    as our interpreter may live where `uid` cannot read."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        subprocess.run([os.path.realpath(sys.executable), "-I", "-c", _CONNECT_AND_PASS, str(theirs.fileno()), path,
                        str(uid)], pass_fds=[theirs.fileno()], check=True, timeout=WAIT)
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
    return socket.socket(fileno=fds[0])


def _relay_as(uid: int, daemon_socket: str, relay_path: str) -> None:
    """Serve `relay_path`: each connection is relayed to the daemon over a connection made as `uid`."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(relay_path)
    listener.listen()

    def pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass

    def serve() -> None:
        while True:
            client, _ = listener.accept()
            upstream = _connect_as(uid, daemon_socket)
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()


def _connect(path: str, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        sockets.append(sock)
    return sockets


def _relayed(sock: socket.socket) -> bool:
    """True if the connection reached the gRPC server (which greets with its HTTP/2 SETTINGS), False if
    the daemon closed it."""
    sock.settimeout(WAIT)
    try:
        return bool(sock.recv(65536))
    except ConnectionResetError:
        return False


def _closed_by_daemon(sock: socket.socket) -> bool:
    """True once the daemon closes a connection we leave idle (after any greeting)."""
    sock.settimeout(WAIT)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def _eventually_ok(daemon, *args: str) -> str:
    """The command's output once it succeeds: closed connections free their slots a moment later."""
    deadline = time.monotonic() + WAIT
    while True:
        result = daemon.cli(*args)
        if result.returncode == 0 or time.monotonic() > deadline:
            assert result.returncode == 0, result.stderr.decode()
            return result.stdout.decode()
        time.sleep(0.2)


def _close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def test_a_flood_from_one_uid_is_capped_costs_no_threads_and_leaves_other_uids_served(start_daemon, tmp_path):
    as_root = os.getuid() == 0
    args: list[str] = []
    if as_root:  # let uid 65534 reach the socket too
        run_dir = tmp_path / "run"
        run_dir.mkdir(mode=0o755)
        for directory in (tmp_path, tmp_path.parent, tmp_path.parent.parent):
            directory.chmod(0o755)
        args = ["--socket", str(run_dir / "mcagent.sock"), "--socket-mode", "0666"]
    elif os.environ.get("CI") == "true":
        pytest.fail("CI runs as root so that this test can connect as another uid")
    daemon = start_daemon(*args, env=PASSWORD_ENV)  # the default caps: 64 per uid, 1024 overall

    _wait_until_no_connections(daemon.socket)
    flood = _connect(daemon.socket, FLOOD)
    try:
        relayed = [sock for sock in flood if _relayed(sock)]
        assert _threads(daemon.process.pid) < MAX_THREADS
        assert len(relayed) == 64, "the per-uid cap was not applied"
        assert _daemon_connections(daemon.socket) == 64  # the others are closed, not merely waiting
        refusals = [line for line in daemon.log().splitlines() if "refused a connection" in line]
        assert refusals and f"uid {os.getuid()}" in refusals[0] and "WARNING" in refusals[0]
        assert len(refusals) < 10, "refusals must not flood the log"
        assert daemon.cli("whoami").returncode != 0  # this uid is at its cap

        if as_root:  # another uid is served while this one is at its cap
            relay = str(tmp_path / "relay.sock")
            _relay_as(NOBODY, daemon.socket, relay)
            with grpc.insecure_channel(f"unix:{relay}") as channel:
                with pytest.raises(grpc.RpcError) as caught:
                    pb_grpc.PrincipalServiceStub(channel).WhoAmI(pb.WhoAmIRequest(), timeout=WAIT)
            assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert f"uid {NOBODY} is not a principal" in caught.value.details()
    finally:
        _close_all(flood)
    assert "local administrator" in _eventually_ok(daemon, "whoami")  # the slots come back


def test_the_overall_cap_holds_idle_connections_without_threads_and_still_serves(start_daemon):
    daemon = start_daemon("--max-connections", "1000", "--max-connections-per-uid", "5000", env=PASSWORD_ENV)
    _wait_until_no_connections(daemon.socket)
    flood = _connect(daemon.socket, 1200)
    try:
        relayed = [sock for sock in flood if _relayed(sock)]
        assert len(relayed) == 1000, "the overall cap was not applied"
        assert _threads(daemon.process.pid) < MAX_THREADS  # 1,000 relayed connections, no thread each
        _close_all(relayed[:100])
        assert "local administrator" in _eventually_ok(daemon, "whoami")  # while 900 are held
    finally:
        _close_all(flood)


def test_an_idle_connection_is_closed_and_frees_its_slot(start_daemon):
    daemon = start_daemon("--idle-timeout", "1", "--max-connections-per-uid", "1", env=PASSWORD_ENV)
    _wait_until_no_connections(daemon.socket)
    [held] = _connect(daemon.socket, 1)
    assert _relayed(held)
    [over] = _connect(daemon.socket, 1)
    assert not _relayed(over)  # the uid's one slot is taken
    assert _closed_by_daemon(held)
    [again] = _connect(daemon.socket, 1)
    assert _relayed(again)  # the idle connection's slot was given back
    _close_all([held, over, again])
    assert "local administrator" in _eventually_ok(daemon, "whoami")


TRANSPORT_FAILURES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN,
                      grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.INTERNAL}


def test_the_relay_carries_many_concurrent_calls_and_large_messages(file_daemon):
    errors: list[BaseException] = []
    codes: list[grpc.StatusCode] = []

    def who_am_i() -> None:
        try:
            with grpc.insecure_channel(f"unix:{file_daemon.socket}") as channel:
                stub = pb_grpc.PrincipalServiceStub(channel)
                for _ in range(200):
                    assert stub.WhoAmI(pb.WhoAmIRequest(), timeout=WAIT).local_administrator
        except BaseException as exc:
            errors.append(exc)

    def large() -> None:
        try:
            with grpc.insecure_channel(f"unix:{file_daemon.socket}") as channel:
                stub = pb_grpc.CredentialServiceStub(channel)
                for _ in range(3):
                    try:
                        stub.InspectKeystore(pb.InspectKeystoreRequest(keystore_xml=os.urandom(3 * 1024 * 1024)),
                                             timeout=WAIT)
                        codes.append(grpc.StatusCode.OK)
                    except grpc.RpcError as exc:
                        codes.append(exc.code())
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=who_am_i) for _ in range(8)] + [threading.Thread(target=large) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not errors, errors[0]
    assert len(codes) == 6 and not TRANSPORT_FAILURES & set(codes), codes


@pytest.mark.parametrize("flag", ["--max-connections", "--max-connections-per-uid", "--idle-timeout"])
def test_limits_must_be_positive(tmp_path, flag):
    result = subprocess.run([MCAGENT, "serve", "--data-dir", str(tmp_path / "data"), flag, "0"],
                            capture_output=True, timeout=60, env={**os.environ, **PASSWORD_ENV})
    assert result.returncode == 1
    assert f"{flag} 0 must be a positive whole number" in result.stderr.decode()
