"""Under systemd: Type=notify (READY=1, STOPPING=1) and socket activation of the Unix socket."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from tests.conftest import KEYSTORE_PASSWORD, REPO
from tests.e2e.conftest import MCAGENT, wait_until_serving


def _receive(notify: socket.socket, wanted: str) -> list[str]:
    """Datagrams until one carries the line `wanted`."""
    seen = []
    while True:
        message = notify.recv(4096).decode()
        seen.append(message)
        if wanted in message.splitlines():
            return seen


@pytest.mark.parametrize("workers", [1, 2])
def test_notify_ready_and_stopping_and_the_cli_through_an_inherited_socket(tmp_path, workers):
    public = tmp_path / "run" / "mcagent.sock"
    public.parent.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(public))  # as systemd would, from mcagent.socket
    os.chmod(public, 0o600)
    listener.listen(16)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    data_dir = tmp_path / "data"
    log_path = tmp_path / "daemon.log"
    env = {**os.environ, "MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD, "NOTIFY_SOCKET": str(tmp_path / "notify"),
           "LISTEN_FDS": "1"}
    env.pop("LISTEN_PID", None)
    fd = listener.fileno()
    # LISTEN_PID must be the daemon's pid: a small wrapper moves the listening socket to
    # descriptor 3 (as sd_listen_fds expects), sets LISTEN_PID to its own pid and execs the daemon.
    # It also forbids writable+executable memory where the kernel can (PR_SET_MDWE, Linux 6.3+;
    # what MemoryDenyWriteExecute=yes in contrib/systemd/mcagent.service asks for).
    wrapper = ("import ctypes, os, sys; ctypes.CDLL(None).prctl(65, 1, 0, 0, 0); "
               "fd = int(sys.argv[1]); os.dup2(fd, 3); os.close(fd); "
               "os.environ['LISTEN_PID'] = str(os.getpid()); os.execv(sys.argv[2], sys.argv[2:])")
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-c", wrapper, str(fd), MCAGENT, "serve", "--data-dir",
                                    str(data_dir), "--workers", str(workers)], pass_fds=(fd,), cwd=REPO,
                                   stdout=log, stderr=subprocess.STDOUT, env=env)
    listener.close()  # the daemon holds it now
    try:
        assert "READY=1" in "".join(_receive(notify, "READY=1"))
        if workers > 1:  # READY=1 only once every worker serves, and only from the supervisor
            assert "with 2 workers" in log_path.read_text()
        wait_until_serving(process, str(public), log_path)
        result = subprocess.run([MCAGENT, "--socket", str(public), "whoami"], capture_output=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "local administrator" in result.stdout.decode()
        assert not (data_dir / "mcagent.sock").exists(), "bound a socket of its own despite socket activation"
        assert "socket activation" in log_path.read_text()
        process.send_signal(signal.SIGTERM)
        _receive(notify, "STOPPING=1")
        assert process.wait(timeout=30) == 0, log_path.read_text()
        notify.settimeout(0.5)
        with pytest.raises(TimeoutError):  # one STOPPING=1: the workers do not speak to systemd
            _receive(notify, "STOPPING=1")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        notify.close()
    assert public.exists(), "removed a socket it did not create (systemd owns it)"


def test_abstract_notify_socket_and_no_activation_for_another_pid(monkeypatch):
    from mcagent.agent.server import systemd

    name = f"mcagent-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind("\0" + name)
        receiver.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("READY=1")
        assert receiver.recv(64) == b"READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert not systemd.notify("READY=1")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    monkeypatch.setenv("LISTEN_FDS", "1")
    assert systemd.listen_fds() == []
    assert "LISTEN_FDS" not in os.environ and "LISTEN_PID" not in os.environ


@pytest.mark.parametrize(("runtime", "data_dir", "expected"), [
    ("/run/user/1000", None, "/run/user/1000/mcagent/mcagent.sock"),
    ("/run/user/1000", "/srv/agent", "/srv/agent/mcagent.sock"),
    ("", "/srv/agent", "/srv/agent/mcagent.sock"),
])
def test_default_socket_is_in_the_runtime_directory_when_there_is_one(monkeypatch, runtime, data_dir, expected):
    from mcagent.agent.api.defaults import default_socket_path

    monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
    assert default_socket_path(data_dir) == expected
