"""The supervisor of `serve --workers N`, with stand-in workers in real forked processes."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

from tests.conftest import REPO


def _run(tmp_path, mode: str) -> subprocess.Popen:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    return subprocess.Popen([sys.executable, "-m", "tests.agent.supervised", str(data), mode], cwd=REPO,
                            stderr=subprocess.PIPE, text=True)


def _events(tmp_path) -> list[tuple[int, str, float, int]]:
    path = tmp_path / "data" / "events"
    if not path.exists():
        return []
    return [(int(i), e, float(t), int(p)) for i, e, t, p in (line.split() for line in path.read_text().splitlines())]


def _wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_worker_1_serves_before_the_others_start_and_sigterm_stops_all(tmp_path):
    supervisor = _run(tmp_path, "serves")
    _wait_for(lambda: sum(e == "ready" for _, e, _, _ in _events(tmp_path)) == 3)
    socket_path = tmp_path / "data" / "s.sock"
    assert stat.S_ISSOCK(os.lstat(socket_path).st_mode) and stat.S_IMODE(os.lstat(socket_path).st_mode) == 0o600
    events = _events(tmp_path)
    ready_1 = next(t for i, e, t, _ in events if i == 1 and e == "ready")
    assert all(t > ready_1 for i, e, t, _ in events if i > 1 and e == "start")  # first-start work does not race
    assert (tmp_path / "data" / "mcagent.lock").read_text().strip() == str(supervisor.pid)
    supervisor.send_signal(signal.SIGTERM)
    _, err = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 0, err
    assert sorted(i for i, e, _, _ in _events(tmp_path) if e == "stopped") == [1, 2, 3]
    assert not socket_path.exists()
    assert "with 3 workers" in err


def test_a_worker_that_cannot_start_stops_the_daemon_at_once(tmp_path):
    supervisor = _run(tmp_path, "fails-at-start")
    _, err = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 1, err
    assert "worker 1" in err and "exited with status 2 before it served" in err
    assert [e for _, e, _, _ in _events(tmp_path)] == ["start"]  # the others were never started
    assert not (tmp_path / "data" / "s.sock").exists()


def test_a_dead_worker_is_restarted_with_backoff_until_its_starts_fail_too_often(tmp_path):
    supervisor = _run(tmp_path, "dies-then-fails")
    _, err = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 1, err
    assert "worker 2" in err and "exited with status 3" in err
    restarts = [t for i, e, t, _ in _events(tmp_path) if i == 2 and e == "restart"]
    assert len(restarts) == 4  # the death counts as the first of the 5 failures
    gaps = [b - a for a, b in zip(restarts, restarts[1:], strict=False)]
    assert gaps == sorted(gaps) and gaps[-1] >= 0.3  # 0.05 s doubling: 0.1, 0.2, 0.4
    assert "worker 2 failed to start 5 times in a row" in err
    assert sorted(i for i, e, _, _ in _events(tmp_path) if e == "stopped") == [1, 3]  # the others drained
