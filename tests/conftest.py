"""Shared fixtures: a real SoftHSM2 token per test session, tool checks, test secrets.

Under CI (CI=true) a missing tool fails the test; elsewhere it skips with the command
that installs it (`make test` installs them when run as root).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import pathlib
import shutil
import subprocess
import time
from dataclasses import dataclass

import pytest

SOFTHSM_MODULE = os.environ.get("MCAGENT_TEST_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
TOKEN_LABEL = "mcagent-test"
USER_PIN = "38162947"
SO_PIN = "92045713"  # different from the user PIN on purpose
KEYSTORE_PASSWORD = "Test-Keystore-Pw1!"
REPO = pathlib.Path(__file__).resolve().parents[1]


def require_tool(name: str, package: str) -> str:
    """Path of an executable, or skip (fail under CI) with the install command."""
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found; install it: sudo apt-get install -y {package} (or run make test as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass(frozen=True)
class SoftHSM:
    """A SoftHSM2 token made for this test session."""

    conf: str
    module: str
    token: str
    pin: str

    @property
    def store_uri(self) -> str:
        return f"pkcs11:token={self.token}?module-path={self.module}"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHSM:
    """Create a token in a temporary directory and point SOFTHSM2_CONF at it for everyone."""
    util = require_tool("softhsm2-util", "softhsm2")
    if not os.path.exists(SOFTHSM_MODULE):
        require_tool("libsofthsm2.so (at " + SOFTHSM_MODULE + ")", "softhsm2")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)  # inherited by the daemon and pkcs11-tool too
    subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", USER_PIN, "--so-pin", SO_PIN],
        check=True,
        capture_output=True,
    )
    return SoftHSM(conf=str(conf), module=SOFTHSM_MODULE, token=TOKEN_LABEL, pin=USER_PIN)


@dataclass(frozen=True)
class P11KitToken:
    """A SoftHSM2 token served by `p11-kit server`, reached through p11-kit's client module
    (a stand-in for a network HSM: any conforming PKCS#11 module, not libsofthsm2 itself)."""

    module: str  # p11-kit-client.so
    token: str
    pin: str
    address: str  # P11_KIT_SERVER_ADDRESS

    @property
    def store_uri(self) -> str:
        return f"pkcs11:token={self.token}?module-path={self.module}"


@pytest.fixture(scope="session")
def p11kit(tmp_path_factory: pytest.TempPathFactory):
    """Serve a token of its own with `p11-kit server`; P11_KIT_SERVER_ADDRESS is set for everyone."""
    p11kit = require_tool("p11-kit", "p11-kit p11-kit-modules")
    util = require_tool("softhsm2-util", "softhsm2")
    clients = sorted(glob.glob("/usr/lib/*/pkcs11/p11-kit-client.so"))
    if not clients:
        require_tool("p11-kit-client.so", "p11-kit-modules")
    root = tmp_path_factory.mktemp("p11kit")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    label = "mcagent-remote"
    subprocess.run([util, "--init-token", "--free", "--label", label, "--pin", USER_PIN, "--so-pin", SO_PIN],
                   check=True, capture_output=True, env=env)
    socket = root / "p11-kit.sock"
    server = subprocess.Popen([p11kit, "server", "--foreground", "--provider", SOFTHSM_MODULE, "--name", str(socket),
                               f"pkcs11:token={label}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not socket.exists():
        assert server.poll() is None, f"p11-kit server exited: {server.stderr.read().decode()}"
        assert time.monotonic() < deadline, "p11-kit server did not create its socket"
        time.sleep(0.05)
    address = f"unix:path={socket}"
    os.environ["P11_KIT_SERVER_ADDRESS"] = address  # read by p11-kit-client.so, here and in daemons
    yield P11KitToken(module=clients[0], token=label, pin=USER_PIN, address=address)
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="session")
def p11kit_store(p11kit: P11KitToken):
    """A key store on the p11-kit-served token, through p11-kit-client.so."""
    from mcagent.hsm import open_keystore

    store = open_keystore(p11kit.store_uri, p11kit.pin)
    yield store
    store.close()


@pytest.fixture
def fresh_token(softhsm: SoftHSM) -> SoftHSM:
    """A token of its own in the session's token directory (the session's token holds other
    tests' CA and audit keys; the agent creates its own on an empty database)."""
    import uuid

    label = f"t-{uuid.uuid4().hex[:12]}"
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", softhsm.pin,
                    "--so-pin", SO_PIN], check=True, capture_output=True)
    return dataclasses.replace(softhsm, token=label)


@pytest.fixture(scope="session")
def pkcs11_store(softhsm: SoftHSM):
    """One PKCS#11 key store for the test process (one login per token, as in the agent)."""
    from mcagent.hsm import open_keystore

    store = open_keystore(softhsm.store_uri, softhsm.pin)
    yield store
    store.close()


@pytest.fixture
def file_store(tmp_path: pathlib.Path):
    """A fresh encrypted key store file."""
    from mcagent.hsm import open_keystore

    store = open_keystore(f"file://{tmp_path / 'keys.mcks'}", KEYSTORE_PASSWORD)
    yield store
    store.close()


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL cluster for the test session (tests/pg.py); skips, or fails under CI, without one."""
    from tests.pg import Cluster, server_bin

    bin_dir = server_bin()
    if bin_dir is None:
        require_tool("initdb (PostgreSQL server)", "postgresql")
    cluster = Cluster(bin_dir)
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """The URL of a fresh, empty database on the session's cluster."""
    return postgres_cluster.database()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path: pathlib.Path) -> str:
    """A new database on each engine in turn: a SQLite file's path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "mcagent.db")
    return request.getfixturevalue("postgres_url")
