"""Health that tells the truth: the standard gRPC health service, kept up to date.

A background thread asks each check once a second (the token through key custody, the
database and whether its writes work) and sets every service's status, the server's ("")
included: SERVING while every check passes, NOT_SERVING while one fails, with the reason in
the log when it changes. Once the daemon starts to stop, everything is NOT_SERVING for good
(load balancers and `grpc_health_probe` stop sending before the listeners close).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable

from grpc_health.v1 import health, health_pb2

log = logging.getLogger(__name__)

CHECK_INTERVAL_SECONDS = 1.0
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

#: A check returns why the agent cannot serve now, or None when all is well.
Check = Callable[[], "str | None"]


class HealthMonitor:
    """Runs the checks and sets the health servicer's statuses."""

    def __init__(self, servicer: health.HealthServicer, names: Iterable[str], checks: dict[str, Check],
                 interval: float = CHECK_INTERVAL_SECONDS) -> None:
        """Args:
        servicer: the gRPC health servicer whose statuses are set.
        names: the service names to set ("" is always set too).
        checks: what to check, by what it checks (for the log).
        interval: seconds between rounds.
        """
        self._servicer = servicer
        self._names = ["", *[name for name in names if name]]
        self._checks = checks
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one round at a time; none after shutdown
        self._problems: list[str] | None = None  # None: not checked yet
        self._thread: threading.Thread | None = None

    @property
    def problems(self) -> list[str]:
        """What failed in the last round (empty: serving)."""
        return list(self._problems or [])

    def check_now(self) -> bool:
        """One round now; True when serving."""
        with self._lock:
            if self._stop.is_set():
                return False
            problems = []
            for what, check in self._checks.items():
                try:
                    problem = check()
                except Exception as exc:  # a check that breaks is a failing check
                    log.exception("health check of the %s failed", what)
                    problem = f"checking it failed: {type(exc).__name__}"
                if problem:
                    problems.append(f"{what}: {problem}")
            if problems != self._problems:
                if problems:
                    log.error("NOT_SERVING: %s", "; ".join(problems))
                elif self._problems is not None:
                    log.info("SERVING again: every health check passes")
                self._problems = problems
                status = NOT_SERVING if problems else SERVING
                for name in self._names:
                    self._servicer.set(name, status)
            return not problems

    def start(self) -> None:
        """Check once now (so the first status is true), then once every interval."""
        self.check_now()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.check_now()

    def shutdown(self) -> None:
        """NOT_SERVING for every service from now on, and no more checks (the daemon is stopping)."""
        self._stop.set()
        self._servicer.enter_graceful_shutdown()  # at once, even while a round waits on the token
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
