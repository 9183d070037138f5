"""The database's part of the health check."""

from __future__ import annotations

import os
import sqlite3

import pytest
from mcagent.agent.domain.errors import Unavailable
from mcagent.agent.storage import Storage


def test_healthy_then_file_removed_is_a_problem(tmp_path):
    path = tmp_path / "mcagent.db"
    storage = Storage(str(path))
    try:
        assert storage.health_problem() is None
        os.rename(path, tmp_path / "elsewhere.db")
        assert "is gone" in storage.health_problem()
        os.rename(tmp_path / "elsewhere.db", path)
        assert storage.health_problem() is None
    finally:
        storage.close()


def test_a_failed_write_is_a_problem_until_a_write_works_again(tmp_path):
    path = tmp_path / "mcagent.db"
    storage = Storage(str(path))
    blocker = sqlite3.connect(str(path), isolation_level=None)
    try:
        storage._conn.execute("PRAGMA busy_timeout=50")
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
        with pytest.raises(Unavailable), storage.transaction():
            pass
        assert "cannot be written" in storage.health_problem()
        blocker.execute("ROLLBACK")
        assert storage.health_problem() is None  # the probe's write worked: serving again
    finally:
        blocker.close()
        storage.close()
