"""Start-up steps shared by the daemon and its supervisor (`serve --workers N`).

Nothing here imports grpc or loads a PKCS#11 module: the supervisor runs these before it
forks its workers, and neither survives a fork.

The data folder lock: a daemon holds an exclusive flock on ``<data-dir>/mcagent.lock`` for
its whole life (its workers inherit it), with its pid written inside, so a second daemon
started on the same SQLite data folder stops at once and says which one is running. Two
daemons over one SQLite file would both append to the audit chain and break it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import resource
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass

from mcagent.agent.config import Config, ConfigError
from mcagent.agent.server import systemd

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4  # <linux/prctl.h>
LOCK_NAME = "mcagent.lock"
LISTEN_BACKLOG = 128


def forbid_core_dumps() -> None:
    """Make the process non-dumpable: no core file, and no ptrace or /proc/PID/mem by other
    processes of the same user, could show the PIN or a decrypted key (Linux prctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise ConfigError(f"cannot make the daemon non-dumpable: {os.strerror(ctypes.get_errno())}")


def prepare_data_dir(config: Config) -> None:
    """Private file mode from here on; the data directory exists and is the daemon's own."""
    os.umask(0o077)  # every file and the socket are for the daemon's user only
    os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
    check_private_dir(config.data_dir)


def check_private_dir(path: str) -> None:
    """The data directory must be the daemon's own: nobody else may plant files in it."""
    st = os.stat(path)
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"data directory {path} must be owned by this user and writable by nobody else "
                          f"(owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o}); run: chmod go-w {path}")


def check_database_path(path: str) -> None:
    """The database is opened by SQLite, which follows links: refuse anything but a regular file."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
        raise ConfigError(f"{path} is not a regular file owned by this user (a link or another kind of file); "
                          "refusing to open it as the agent's database")


def raise_open_file_limit(max_connections: int) -> None:
    """Raise the soft open-file limit to the hard one: each Unix-socket connection takes three fds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):  # e.g. an unlimited hard limit above the kernel's nr_open
            pass
    if soft != resource.RLIM_INFINITY and soft < 3 * max_connections + 256:
        log.warning("the open-file limit (%d) is low for --max-connections %d (3 files each); "
                    "raise it (ulimit -n) or lower --max-connections", soft, max_connections)


def prepare_socket_path(path: str) -> None:
    """Make the socket's directory; remove a stale socket left by a crash; refuse if another
    agent answers on it."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"{path} exists and is not a socket; choose another --socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listening: a leftover
        return
    finally:
        probe.close()
    raise ConfigError(f"another agent is already serving on {path}")


def socket_activated_listener() -> socket.socket | None:
    """The Unix socket systemd passed (socket activation), or None when it passed none."""
    try:
        return systemd.unix_listener(systemd.listen_fds())
    except (ValueError, OSError) as exc:
        raise ConfigError(f"socket activation: {exc}") from None


def bind_unix_listener(path: str, mode: int) -> socket.socket:
    """A listening Unix stream socket at `path` (prepared by `prepare_socket_path`) with `mode`."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        os.chmod(path, mode)
        listener.listen(LISTEN_BACKLOG)
    except OSError:
        listener.close()
        raise
    return listener


def needs_data_folder_lock(config: Config) -> bool:
    """Whether this daemon must be the only one on its data folder: always with SQLite (the
    embedded default); daemons sharing a PostgreSQL database may run side by side."""
    return config.database is None  # --database postgresql://… shares the records


class DataFolderLock:
    """An exclusive flock on ``<data-dir>/mcagent.lock``, held until `release` or exit."""

    def __init__(self, data_dir: str) -> None:
        """Take the lock and write this process's pid into the file.

        Raises:
            ConfigError: another daemon holds it (the message names it), or the lock file is
                not a regular file of this user.
        """
        self.path = os.path.join(data_dir, LOCK_NAME)
        try:
            # O_NOFOLLOW: a planted link cannot make us truncate some other file.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            why = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
            raise ConfigError(f"cannot open the data folder lock {self.path}: {why}") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                raise ConfigError(f"the data folder lock {self.path} is not a regular file owned by this user")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConfigError(f"data folder {data_dir} is in use by another mcagent daemon "
                                  f"({self._holder(fd)}, holding the lock file {self.path}); stop it first, "
                                  "or give this daemon another --data-dir") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd

    @staticmethod
    def _holder(fd: int) -> str:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return f"pid {text}" if text.isdigit() else "pid unknown"

    def release(self) -> None:
        """Let another daemon start here (the file stays: removing it would race a new holder)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def lock_data_folder(config: Config) -> DataFolderLock | None:
    """The data folder lock when this daemon needs one (SQLite), else None."""
    return DataFolderLock(config.data_dir) if needs_data_folder_lock(config) else None


@dataclass(frozen=True)
class WorkerRole:
    """What one worker of a supervised daemon (`serve --workers N`) is told by its supervisor.

    Attributes:
        index: 1..N; worker 1 runs the start-up tasks, the periodic upkeep and the CRL listener.
        first_start: False when this worker replaces one that died while the others serve.
        listener: the Unix socket, bound once by the supervisor and accepted on by every worker.
        ready: called once the worker serves (tells the supervisor).
    """

    index: int
    first_start: bool
    listener: socket.socket
    ready: Callable[[], None]

    @property
    def primary(self) -> bool:
        return self.index == 1
