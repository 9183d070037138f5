"""`mcagent serve --workers N`: a small supervisor process and N forked workers.

Python serves one core at a time (the GIL); N worker processes, each a whole daemon with its
own PKCS#11 login, database connections and gRPC server, use N. The supervisor itself loads
neither grpc's core nor a PKCS#11 module (neither survives a fork): it only

- takes the data folder lock (SQLite) and binds the Unix socket once, with the usual checks
  and mode; every worker accepts on that inherited socket (TCP listeners are bound by each
  worker on the same port, SO_REUSEPORT);
- forks worker 1, which runs the start-up tasks (audit anchor, CA and audit key, clean-up)
  and reports ready over a pipe; then forks the others, so first-start creations never race;
- tells systemd READY=1 once every worker serves, STOPPING=1 when a stop begins;
- on SIGTERM or SIGINT sends SIGTERM to every worker (each drains as a lone daemon does) and
  exits 0 once they have; a worker still running after its grace period plus a margin is killed;
- logs a worker that dies and forks a new one after a backoff (1 s, doubling up to 30 s);
  when one worker fails to start `MAX_START_FAILURES` times in a row, it stops the others
  and exits 1. A worker that fails during the first start stops the daemon at once.

Secrets: the supervisor builds the Config (reading the PIN and key store password) before
forking, as a lone daemon does, and the workers get it by the fork itself: never through
argv, the environment or a file; a worker restarted later needs no secret file. The
supervisor is non-dumpable like every worker (`forbid_core_dumps` runs before any secret is read).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mcagent.agent.config import Config, ConfigError
from mcagent.agent.server import startup, systemd
from mcagent.agent.server.startup import WorkerRole

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
MAX_START_FAILURES = 5
BACKOFF_MAX_SECONDS = 30.0
STEADY_SECONDS = 30.0  # a worker that served this long before dying starts its failure count afresh
STOP_MARGIN_SECONDS = 15.0  # beyond the grace period, for a worker to close everything

_HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)  # the supervisor's own handlers

ServeWorker = Callable[[Config, WorkerRole], int]


def serve_worker(config: Config, role: WorkerRole) -> int:
    """A worker's life, run in the forked child: serve until signalled; the exit status."""
    from mcagent.agent.server.server import AgentServer  # after the fork: grpc and PKCS#11 start here

    tag_log_records(f"worker {role.index}: ")
    try:
        AgentServer(config, role).run_until_signalled()
    except ConfigError as exc:
        log.error("worker %d cannot start: %s", role.index, exc)
        return 2
    return 0


def tag_log_records(prefix: str) -> None:
    """Start every log message of this process with `prefix` (which worker wrote the line)."""
    make_record = logging.getLogRecordFactory()

    def tagged(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        record.msg = prefix + str(record.msg)  # the prefix holds no %: formatting is unchanged
        return record

    logging.setLogRecordFactory(tagged)


@dataclass
class _Slot:
    """One worker place: the process in it now, and how its recent starts went."""

    index: int
    pid: int = 0
    ready_fd: int = -1  # read end of the pipe the worker writes to once it serves; -1 once read
    serving_since: float = 0.0
    failures: int = 0  # starts in a row that ended before serving (or soon after)
    restart_at: float = 0.0  # when to fork again; 0: not waiting


class Supervisor:
    """Forks, watches and stops the workers of one daemon."""

    def __init__(self, config: Config, workers: int, worker: ServeWorker = serve_worker, *,
                 backoff: float = 1.0) -> None:
        self._config = config
        self._slots = [_Slot(index) for index in range(1, workers + 1)]
        self._worker = worker
        self._backoff = backoff
        self._selector = selectors.DefaultSelector()
        self._stop_signal = 0
        self._listener: socket.socket | None = None
        self._wake_r = self._wake_w = -1
        self._all_started = False  # every worker has served once: from here a dead one is replaced

    def run(self) -> int:
        """Supervise until a stop signal (0) or a worker that cannot start (1).

        Raises:
            ConfigError: the data folder or the Unix socket cannot be used.
        """
        config = self._config
        startup.prepare_data_dir(config)
        lock = startup.lock_data_folder(config)
        owns_path = False
        try:
            self._listener = startup.socket_activated_listener()
            if self._listener is None:
                startup.prepare_socket_path(config.socket_path)
                self._listener = startup.bind_unix_listener(config.socket_path, config.socket_mode)
                owns_path = True
            self._listener.set_inheritable(False)  # shared by fork only, never by an exec'd program
            self._install_signals()
            return self._supervise()
        finally:
            self._stop_workers()
            signal.set_wakeup_fd(-1)
            if self._listener is not None:
                self._listener.close()
            if owns_path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(config.socket_path)
            if lock is not None:
                lock.release()

    # -- signals ------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w)  # every signal below wakes the loop
        self._selector.register(self._wake_r, selectors.EVENT_READ)

        def stop(signum: int, _frame: object) -> None:
            self._stop_signal = self._stop_signal or signum

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so that the wake-up fd hears it

    # -- the loop -----------------------------------------------------------------------------

    def _supervise(self) -> int:
        first, others = self._slots[0], self._slots[1:]
        self._fork(first, first_start=True)
        if not self._wait_serving([first]):
            return 0 if self._stop_signal else 1
        for slot in others:
            self._fork(slot, first_start=True)
        if not self._wait_serving(others):
            return 0 if self._stop_signal else 1
        self._all_started = True
        log.info("mcagent serving on unix:%s with %d workers (pids %s)", self._listener_name(), len(self._slots),
                 ", ".join(str(s.pid) for s in self._slots))
        systemd.notify("READY=1")
        while not self._stop_signal:
            self._step(self._next_timeout())
            for slot in self._slots:
                if slot.failures >= MAX_START_FAILURES:
                    log.error("worker %d failed to start %d times in a row; stopping the daemon",
                              slot.index, slot.failures)
                    return 1
                if slot.restart_at and time.monotonic() >= slot.restart_at and not self._stop_signal:
                    self._fork(slot, first_start=False)
        log.info("stop requested (%s); draining %d workers", signal.Signals(self._stop_signal).name,
                 sum(1 for s in self._slots if s.pid))
        return 0

    def _listener_name(self) -> str:
        assert self._listener is not None
        return self._listener.getsockname() or "(inherited, unnamed)"

    def _wait_serving(self, slots: list[_Slot]) -> bool:
        """Wait until every slot's worker serves (True), or one dies or a stop signal comes (False)."""
        while not self._stop_signal:
            if all(s.serving_since for s in slots):
                return True
            self._step(None)
            if any(s.failures for s in slots):
                log.error("a worker failed to start; stopping the daemon")
                return False
        return False

    def _next_timeout(self) -> float:
        waits = [s.restart_at - time.monotonic() for s in self._slots if s.restart_at]
        return max(0.0, min(waits, default=1.0))

    def _step(self, timeout: float | None) -> None:
        """Wait for a signal or a readiness report (up to `timeout`), then take stock."""
        for key, _ in self._selector.select(timeout):
            if key.fileobj == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 512)
            else:
                self._read_ready(key.data)
        self._reap()

    def _read_ready(self, slot: _Slot) -> None:
        try:
            ready = os.read(slot.ready_fd, 1) == b"R"
        except BlockingIOError:
            return
        self._close_ready(slot)
        if ready:
            slot.serving_since = time.monotonic()
            if slot.failures:
                log.info("worker %d (pid %d) serves again", slot.index, slot.pid)

    def _close_ready(self, slot: _Slot) -> None:
        if slot.ready_fd >= 0:
            self._selector.unregister(slot.ready_fd)
            os.close(slot.ready_fd)
            slot.ready_fd = -1

    def _reap(self) -> None:
        """Collect every worker that exited; schedule its replacement unless stopping."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if not pid:
                return
            slot = next((s for s in self._slots if s.pid == pid), None)
            if slot is None:
                continue
            if slot.ready_fd >= 0:
                self._read_ready(slot)  # it may have reported ready just before it died
            self._close_ready(slot)
            served = time.monotonic() - slot.serving_since if slot.serving_since else 0.0
            slot.pid, slot.serving_since = 0, 0.0
            if self._stop_signal:
                if status:
                    log.warning("worker %d (pid %d) %s while stopping", slot.index, pid, _describe(status))
                continue
            slot.failures = 1 if served >= STEADY_SECONDS else slot.failures + 1
            if not self._all_started:  # during the first start: the daemon stops (see _wait_serving)
                log.error("worker %d (pid %d) %s %s", slot.index, pid, _describe(status),
                          f"after serving {served:.0f} s" if served else "before it served")
                continue
            delay = min(self._backoff * 2 ** (slot.failures - 1), BACKOFF_MAX_SECONDS)
            slot.restart_at = time.monotonic() + delay
            log.error("worker %d (pid %d) %s after serving %.0f s; a new one starts in %.0f s",
                      slot.index, pid, _describe(status), served, delay)

    # -- workers ------------------------------------------------------------------------------

    def _fork(self, slot: _Slot, *, first_start: bool) -> None:
        assert self._listener is not None
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        supervisor = os.getpid()
        # Signals wait until the child has dropped the supervisor's handlers: a SIGTERM sent to
        # a worker just forked must not be taken by the supervisor's handler copy and lost.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED)
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the supervisor's stack
            status = 1
            try:
                os.close(ready_r)
                self._become_worker(supervisor)
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a pending SIGTERM ends it here

                def ready() -> None:
                    os.write(ready_w, b"R")
                    os.close(ready_w)

                status = self._worker(self._config, WorkerRole(slot.index, first_start, self._listener, ready))
            except BaseException:
                log.exception("worker %d failed", slot.index)
            finally:
                logging.shutdown()
                os._exit(status)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.close(ready_w)
        os.set_blocking(ready_r, False)
        slot.pid, slot.ready_fd, slot.restart_at = pid, ready_r, 0.0
        self._selector.register(ready_r, selectors.EVENT_READ, slot)
        log.info("worker %d starting (pid %d)", slot.index, pid)

    def _become_worker(self, supervisor: int) -> None:
        """In the child: drop what is the supervisor's (signal handling, readiness pipes, the
        service manager's notify socket) before the worker sets up its own. A worker whose
        supervisor dies (even by SIGKILL) gets SIGTERM and drains: none outlives it."""
        signal.set_wakeup_fd(-1)
        for signum in _HANDLED:
            signal.signal(signum, signal.SIG_DFL)
        if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0 \
                or os.getppid() != supervisor:  # or it died before the prctl
            os._exit(1)
        self._selector.close()
        for fd in (self._wake_r, self._wake_w, *(s.ready_fd for s in self._slots)):
            if fd >= 0:
                os.close(fd)
        os.environ.pop(systemd.NOTIFY_SOCKET_ENV, None)  # only the supervisor speaks to systemd

    def _stop_workers(self) -> None:
        """SIGTERM every worker, wait for them to drain, kill what is left after the grace period."""
        live = [s for s in self._slots if s.pid]
        if not live:
            return
        systemd.notify("STOPPING=1")
        self._stop_signal = self._stop_signal or signal.SIGTERM
        for slot in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._config.grace_period + STOP_MARGIN_SECONDS
        while any(s.pid for s in self._slots) and time.monotonic() < deadline:
            self._step(min(1.0, max(0.0, deadline - time.monotonic())))
        for slot in self._slots:
            if slot.pid:
                log.error("worker %d (pid %d) still running after the grace period; killing it", slot.index,
                          slot.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGKILL)
                os.waitpid(slot.pid, 0)
                slot.pid = 0
        log.info("mcagent stopped (all workers)")


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
