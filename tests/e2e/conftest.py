"""A real `mcagent serve` process and the real `mcagent` command against it."""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import pathlib
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import KEYSTORE_PASSWORD, REPO, require_tool

MCAGENT = str(pathlib.Path(sys.executable).parent / "mcagent")
START_TIMEOUT = 30.0


@dataclass
class Daemon:
    """A running daemon; `cli` runs the command line against its socket."""

    process: subprocess.Popen
    socket: str
    data_dir: pathlib.Path
    log_path: pathlib.Path
    secrets: list[str] = field(default_factory=list)

    token: str | None = None

    def cli(self, *args: str, input: bytes | None = None, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        environment = {k: v for k, v in os.environ.items() if k != "MCAGENT_TOKEN"}
        environment["MCAGENT_SOCKET"] = self.socket
        if self.token:
            environment["MCAGENT_TOKEN"] = self.token
        return subprocess.run([MCAGENT, *args], input=input, capture_output=True, timeout=60,
                              env={**environment, **(env or {})})

    def ok(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.returncode == 0, f"mcagent {' '.join(args)} failed: {result.stderr.decode()}"
        return result.stdout.decode()

    def as_principal(self, token: str) -> Daemon:
        """The same daemon, with the command line acting as the principal holding `token`."""
        return dataclasses.replace(self, token=token)

    def new_principal(self, name: str, *extra: str) -> Daemon:
        """Create a principal (as the local administrator) and act as it."""
        token = self.as_principal(None).ok("principal", "create", name, *extra).strip()
        self.secrets.append(token)
        return self.as_principal(token)

    def new_business(self, abn: str, pa_name: str, name: str = "Example Pty Ltd") -> Daemon:
        """Register a business with a new principal as its PA; returns the daemon acting as that PA."""
        pa = self.new_principal(pa_name)
        self.as_principal(None).ok("business", "register", "--abn", abn, "--name", name,
                                   "--principal-authority", pa_name)
        return pa

    def log(self) -> str:
        return self.log_path.read_text()

    def audit(self) -> list[dict]:
        """Every audit entry, oldest first, read page by page as the local administrator."""
        entries, after = [], 0
        while True:
            page = json.loads(self.as_principal(None).ok("audit", "list", "--limit", "1000", "--after", str(after),
                                                         "--json"))
            entries += page["entries"]
            after = page["next_after"]
            assert type(after) is int  # int64 as a JSON number
            if not after:
                return entries

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def wait_until_serving(process: subprocess.Popen, socket: str, log_path: pathlib.Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"daemon exited with {process.returncode}: {log_path.read_text()}")
        if os.path.exists(socket):
            with grpc.insecure_channel(f"unix:{socket}") as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
        time.sleep(0.1)
    raise AssertionError(f"daemon did not serve within {START_TIMEOUT}s: {log_path.read_text()}")


@pytest.fixture
def start_daemon(tmp_path):
    """Start daemons with given arguments and environment; stop each with SIGTERM at the end."""
    started: list[Daemon] = []

    def start(*args: str, env: dict[str, str] | None = None, secrets: list[str] = (),
              data_dir: pathlib.Path | None = None, prefix: list[str] = (), wait: bool = True) -> Daemon:
        """Start `mcagent serve ARGS` (under `prefix`, e.g. faketime); `data_dir` reuses a stopped one's data;
        `wait=False` returns at once (then `wait_until_serving(daemon.process, daemon.socket, daemon.log_path)`)."""
        data_dir = data_dir or tmp_path / f"data{len(started)}"
        socket = args[args.index("--socket") + 1] if "--socket" in args else str(data_dir / "mcagent.sock")
        log_path = tmp_path / f"daemon{len(started)}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [*prefix, MCAGENT, "serve", "--data-dir", str(data_dir), *args],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            )
        daemon = Daemon(process, socket, data_dir, log_path, list(secrets))
        started.append(daemon)
        if not wait:
            return daemon
        wait_until_serving(process, socket, log_path)
        expected_mode = int(args[args.index("--socket-mode") + 1], 8) if "--socket-mode" in args else 0o600
        assert stat.S_IMODE(os.stat(socket).st_mode) == expected_mode
        return daemon

    yield start
    for daemon in started:
        if daemon.process.poll() is None:
            assert daemon.stop() == 0, daemon.log()
    for daemon in started:
        assert not os.path.exists(daemon.socket), "socket left behind after SIGTERM"
        for secret in daemon.secrets:
            assert secret not in daemon.log(), "a secret appeared in the daemon's log"


@pytest.fixture
def file_daemon(start_daemon):
    return start_daemon(env={"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}, secrets=[KEYSTORE_PASSWORD])


@pytest.fixture
def pkcs11_daemon(start_daemon, fresh_token):
    """A daemon on a token of its own (a test that looks into it asks for `fresh_token` too): a
    token that already holds another daemon's audit key is, to a new database, a log with
    entries removed, and the daemon rightly records tampering."""
    return start_daemon(
        "--keystore-backend", "pkcs11", "--pkcs11-module", fresh_token.module, "--pkcs11-token", fresh_token.token,
        env={"MCAGENT_PKCS11_PIN": fresh_token.pin}, secrets=[fresh_token.pin],
    )


@pytest.fixture
def faketime() -> str:
    """Debian's libfaketime (multi-threaded build), preloaded into the daemon itself."""
    require_tool("faketime", "faketime")
    libraries = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    assert libraries, "faketime is installed but libfaketimeMT.so.1 was not found"
    return libraries[0]


def restart(daemon: Daemon, start_daemon, offset: str, faketime: str) -> Daemon:
    """Stop the daemon and start it again on the same data, its clock moved by `offset` days."""
    assert daemon.stop() == 0
    env = {"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD, "LD_PRELOAD": faketime, "FAKETIME": offset,
           "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    return start_daemon(data_dir=daemon.data_dir, env=env)
