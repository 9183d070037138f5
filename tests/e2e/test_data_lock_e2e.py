"""One daemon per SQLite data folder: a second `mcagent serve` there is refused at once."""

from __future__ import annotations

import os
import stat
import subprocess
import time

import pytest

from tests.conftest import KEYSTORE_PASSWORD, REPO
from tests.e2e.conftest import MCAGENT

ABN = "51824753556"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_second_daemon_on_the_same_data_folder_exits_at_once_naming_the_lock(file_daemon, tmp_path, workers):
    lock = file_daemon.data_dir / "mcagent.lock"
    assert lock.read_text().strip() == str(file_daemon.process.pid)
    assert stat.S_IMODE(os.lstat(lock).st_mode) == 0o600
    env = {**os.environ, "MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}
    # Another socket, so that only the lock can stop it (the socket probe would otherwise).
    second = subprocess.Popen([MCAGENT, "serve", "--data-dir", str(file_daemon.data_dir),
                               "--socket", str(tmp_path / "second.sock"), "--workers", workers],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    began = time.monotonic()
    try:
        output, _ = second.communicate(timeout=10)
    finally:
        second.kill()
    elapsed = time.monotonic() - began
    message = output.decode()
    assert second.returncode != 0, message
    # The 2 s include starting Python and importing grpc (about 0.5 s on an idle machine).
    assert elapsed < 2.0, f"took {elapsed:.1f}s: {message}"
    assert str(lock) in message and f"pid {file_daemon.process.pid}" in message, message
    assert not os.path.exists(tmp_path / "second.sock")
    # The first keeps serving, its lock intact.
    pa = file_daemon.new_business(ABN, "pa")
    assert pa.ok("whoami").strip()
    assert lock.read_text().strip() == str(file_daemon.process.pid)


def test_the_lock_goes_with_the_daemon_and_the_next_one_takes_it(start_daemon):
    env = {"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}
    first = start_daemon(env=env)
    assert first.stop() == 0
    second = start_daemon(env=env, data_dir=first.data_dir)
    assert (first.data_dir / "mcagent.lock").read_text().strip() == str(second.process.pid)


def test_a_lock_file_that_is_a_link_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (data / "mcagent.lock").symlink_to(victim)
    result = subprocess.run([MCAGENT, "serve", "--data-dir", str(data)], cwd=REPO, capture_output=True, text=True,
                            timeout=30, env={**os.environ, "MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD})
    assert result.returncode != 0
    assert "mcagent.lock" in result.stderr and "symbolic link" in result.stderr, result.stderr
    assert victim.read_text() == "keep me\n"


def test_two_daemons_on_one_postgresql_database_may_share_a_data_folder(start_daemon, postgres_url, tmp_path):
    env = {"MCAGENT_KEYSTORE_PASSWORD": KEYSTORE_PASSWORD}
    data = tmp_path / "shared"
    first = start_daemon("--database", postgres_url, "--socket", str(tmp_path / "a.sock"), env=env, data_dir=data)
    second = start_daemon("--database", postgres_url, "--socket", str(tmp_path / "b.sock"), env=env, data_dir=data)
    assert not (data / "mcagent.lock").exists()  # no lock: the records are in PostgreSQL
    pa = first.new_business(ABN, "pa")
    assert second.as_principal(pa.token).ok("whoami").strip()
