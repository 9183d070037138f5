"""Prometheus metrics (`mcagent serve --metrics-listen HOST:PORT`), opt-in.

`Metrics` is the `Observer` (agent/domain/ports.py) that the composition root hands to the
service and the audit appender: they report signs, sign durations and audit commits, and it
counts them in its own `CollectorRegistry` (never the process-global one). State that already
lives elsewhere is read at scrape time by `_StateCollector`: the token's pool (up, recoveries,
sessions) and the Unix-socket connections. `MetricsHttpListener` serves `GET /metrics` only,
on the bounded server of the CRL listener (16 requests at once, 10 s each, 404 elsewhere).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from mcagent.agent.server.crl_http import HttpListener, _CrlHttpServer, _Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
# A sign in SoftHSM2 takes ~1 ms (RSA-2048) and a network HSM tens of ms; an audit commit
# (fsync) a few ms. Buckets from 0.5 ms to 5 s cover both.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _StateCollector(Collector):
    """Reads the token's and the socket front's state when scraped (nothing kept here)."""

    def __init__(self) -> None:
        self.token_stats: Callable[[], Any] | None = None
        self.connections: Callable[[], int] | None = None
        self.worker: tuple[int, int] | None = None

    def collect(self) -> Iterator[Any]:
        if self.worker is not None:
            info = GaugeMetricFamily("mcagent_worker", "which worker of the daemon (serve --workers) these "
                                     "metrics are from: 1 labelled with its index and pid", labels=["index", "pid"])
            info.add_metric([str(n) for n in self.worker], 1)
            yield info
        stats = self.token_stats() if self.token_stats is not None else None
        if stats is not None:
            yield GaugeMetricFamily("mcagent_token_up", "1 while the PKCS#11 token answers, 0 while it is being "
                                    "recovered", value=1 if stats.healthy else 0)
            yield CounterMetricFamily("mcagent_token_recoveries", "times the token's sessions were re-established "
                                      "after a failure", value=stats.recoveries)
            yield GaugeMetricFamily("mcagent_token_sessions_open", "worker sessions open on the token",
                                    value=stats.sessions_open)
        if self.connections is not None:
            yield GaugeMetricFamily("mcagent_unix_connections", "connections relayed on the Unix socket now",
                                    value=self.connections())


class Metrics:
    """The agent's metrics: an `Observer` for the service and the appender, plus state read at scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._signs = Counter("mcagent_signs", "sign requests and batch items, by key type, algorithm and outcome "
                              "(allowed, refused, withheld: revoked while signing)",
                              ["key_type", "algorithm", "outcome"], registry=self.registry)
        self._sign_seconds = Histogram("mcagent_sign_duration_seconds", "time the key's backend took to make one "
                                       "signature", ["key_type"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self._audit_seconds = Histogram("mcagent_audit_commit_duration_seconds", "time of one group commit of "
                                        "audit entries (signs, refusals)", buckets=LATENCY_BUCKETS,
                                        registry=self.registry)
        self._audit_entries = Counter("mcagent_audit_entries_committed", "audit entries written by group commits",
                                      registry=self.registry)
        self._audit_queue = Gauge("mcagent_audit_queue_depth", "callers waiting for their audit entries to be "
                                  "durable", registry=self.registry)
        self._expiring = Gauge("mcagent_credentials_expiring", "live credentials whose certificate expires within "
                               "the days given (30 or 90; Australia/Sydney dates)", ["within_days"],
                               registry=self.registry)
        self._state = _StateCollector()
        self.registry.register(self._state)

    def watch(self, *, token_stats: Callable[[], Any] | None = None,
              connections: Callable[[], int] | None = None, worker: tuple[int, int] | None = None) -> None:
        """Read these at scrape time: the token pool's stats (None: no token), the Unix-socket connections;
        `worker` (index, pid) labels a worker's metrics."""
        if worker is not None:
            self._state.worker = worker
        if token_stats is not None:
            self._state.token_stats = token_stats
        if connections is not None:
            self._state.connections = connections

    # -- Observer ---------------------------------------------------------------------------------

    def signs_finished(self, key_type: str, algorithm: str, outcome: str, count: int = 1) -> None:
        """See `Observer.signs_finished`."""
        self._signs.labels(key_type, algorithm, outcome).inc(count)

    def sign_duration(self, key_type: str, seconds: float) -> None:
        """See `Observer.sign_duration`."""
        self._sign_seconds.labels(key_type).observe(seconds)

    def audit_committed(self, entries: int, seconds: float) -> None:
        """See `Observer.audit_committed`."""
        self._audit_seconds.observe(seconds)
        self._audit_entries.inc(entries)

    def audit_queue_depth(self, waiting: int) -> None:
        """See `Observer.audit_queue_depth`."""
        self._audit_queue.set(waiting)

    def credentials_expiring(self, within_days: int, count: int) -> None:
        """See `Observer.credentials_expiring`."""
        self._expiring.labels(str(within_days)).set(count)

    def exposition(self) -> bytes:
        """Everything, in Prometheus' text format."""
        return generate_latest(self.registry)


class _MetricsHandler(_Handler):
    """GET/HEAD /metrics → the exposition; any other path or method → 404."""

    server: _MetricsHttpServer
    server_version = "mcagent-metrics"

    def _answer(self, *, body: bool) -> None:
        if self.path.partition("?")[0] != METRICS_PATH:
            self._plain(404, b"not found: this server publishes only /metrics\n", body=body)
            return
        try:
            text = self.server.metrics.exposition()
        except Exception:
            log.exception("cannot collect the metrics for %s", self.client_address[0])
            self._plain(503, b"the metrics are unavailable; try again later\n", body=body)
            return
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(text)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if body:
            self.wfile.write(text)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        log.debug("metrics http %s: " + format, self.client_address[0], *args)


class _MetricsHttpServer(_CrlHttpServer):
    handler = _MetricsHandler

    def __init__(self, address: tuple[str, int], metrics: Metrics) -> None:
        self.metrics = metrics
        super().__init__(address, cache=None)  # type: ignore[arg-type]  (no CRL here)


class MetricsHttpListener(HttpListener):
    """The opt-in HTTP listener for GET /metrics."""

    def __init__(self, host: str, port: int, metrics: Metrics) -> None:
        """Bind HOST:PORT now (so a port in use stops start-up).

        Raises:
            OSError: the address cannot be bound.
        """
        super().__init__(_MetricsHttpServer((host, port), metrics), "metrics-http")
