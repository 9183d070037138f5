"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl in a temporary directory,
listening only on a Unix socket there, stopped (and removed) after.

initdb and postgres refuse to run as root, and CI runs as root: then the cluster runs as
the Debian package's ``postgres`` user (runuser), in a directory it owns. Under CI=true a
missing server fails the tests (tests/conftest.py); `make system-deps` installs it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import uuid

SUPERUSER = "mcagent_test"


def server_bin() -> str | None:
    """The directory of initdb/pg_ctl (Debian keeps them off PATH), or None when not installed."""
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(os.path.realpath(found))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(versions[-1]) if versions else None


class Cluster:
    """One running cluster; `database()` makes a fresh, empty database on it and returns its URL."""

    def __init__(self, bin_dir: str, durable: bool = False) -> None:
        """durable: fsync and full-page writes on (the bench compares it with SQLite's synchronous=FULL);
        the tests leave them off, for speed."""
        if not stat.S_ISCHR(os.stat("/dev/null").st_mode):  # initdb and postgres write to it
            raise RuntimeError("/dev/null is not the null device (something replaced it with a file); "
                               "as root: rm /dev/null && mknod -m 666 /dev/null c 1 3")
        self._bin = bin_dir
        self.dir = tempfile.mkdtemp(prefix="mcagent-pg-")
        self._as: list[str] = []
        if os.geteuid() == 0:  # run the server as the unprivileged postgres user
            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.data, self.socket_dir = os.path.join(self.dir, "data"), self.dir
        self._run("initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust", "--locale=C", "-E", "UTF8",
                  "--no-sync")
        options = (f"-k {self.socket_dir} -c listen_addresses='' -c max_connections=300 -c shared_buffers=32MB"
                   + ("" if durable else " -c fsync=off -c full_page_writes=off"))
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"), "-o", options,
                  "-w", "-t", "60", "start")

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run([*self._as, os.path.join(self._bin, tool), *args], capture_output=True, text=True,
                                cwd=self.dir)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed: {result.stdout}{result.stderr}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={self.socket_dir}"

    def database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
