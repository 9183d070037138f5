"""Shared fixtures: a real SoftHSM2 token per test session, tool checks, test secrets.

Under CI (CI=true) a missing tool fails the test; elsewhere it skips with the command
that installs it (`make test` installs them when run as root).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import subprocess
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
