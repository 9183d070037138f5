"""Issue #11's rows: worker processes, PostgreSQL, and two daemons on one PostgreSQL.

Every row is unary Sign at 8 clients, both key types, audit on and durable, in the same run as
the raw token rows and the one-process SQLite rows it is compared with:

- `--workers 2` on the main SQLite data, over the Unix socket and mutual TLS (against the
  main rows "agent Sign, unix|mtls, 8 clients", which are `--workers 1`);
- one daemon on PostgreSQL (a throwaway cluster started as tests/pg.py does, with fsync and
  full-page writes on, so its commits are as durable as SQLite's synchronous=FULL);
- two daemons (data folders and sockets of their own) on that database, 4 clients on each.

Server CPU sums every process of the daemon(s): the supervisor, its workers and both daemons.
The PostgreSQL daemons sign with a token of their own in the same SoftHSM2 token directory (a
token that holds another database's audit key reads, to a new database, as removed entries);
its keys are of the same types, so the raw rows (token "bench") are the token's limit for them.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from bench.workers import ClientPool, Job

if TYPE_CHECKING:
    from bench.sign_bench import Bench

PG_TOKEN = "bench-pg"
CLIENTS = 8


def workers(bench: Bench, pool: ClientPool) -> None:
    """`--workers 2` on the main data: unary Sign over the Unix socket and mutual TLS."""
    bench.stop_daemon()
    bench.start_daemon(["--workers", "2"])
    pids = [bench.daemon.pid]
    for key in ("rsa-2048", "ec-p256"):
        for transport in ("unix", "mtls"):
            bench.measure(pool, f"agent Sign, {transport}, {CLIENTS} clients, workers 2", key,
                          bench._job("grpc", key, transport), CLIENTS, pids, "scale")
    bench.stop_daemon()
    bench.start_daemon()


def postgres(bench: Bench, pool: ClientPool, seconds: float, pin: str, so_pin: str) -> None:
    """One daemon on PostgreSQL, then two on the same database with the clients split between them."""
    from tests.pg import Cluster, server_bin

    bin_dir = server_bin()
    if bin_dir is None:
        raise SystemExit("the PostgreSQL server is missing: run `make bench` as root, or apt-get install postgresql")
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", PG_TOKEN, "--pin", pin, "--so-pin", so_pin],
                   check=True, capture_output=True)
    cluster = Cluster(bin_dir, durable=True)
    daemons = []
    try:
        database = ["--database", cluster.database()]
        first, _ = bench.launch(database, data="pg-a", token=PG_TOKEN, address=bench.free_address())
        daemons.append(first)
        pa, credentials = bench.set_up_records("pg-a")

        def job(key: str, data: str) -> Job:
            return Job(kind="grpc", seconds=seconds, credential_ids=(credentials[key]["id"],),
                       target=f"unix:{bench.work / data / 'mcagent.sock'}", token=pa)

        for key in ("rsa-2048", "ec-p256"):
            bench.measure(pool, f"agent Sign, unix, {CLIENTS} clients, PostgreSQL", key, job(key, "pg-a"), CLIENTS,
                          [first.pid], "scale")
        second, _ = bench.launch(database, data="pg-b", token=PG_TOKEN, address=bench.free_address())
        daemons.append(second)
        half = CLIENTS // 2
        for key in ("rsa-2048", "ec-p256"):
            bench.measure(pool, f"agent Sign, unix, {CLIENTS} clients, two daemons on one PostgreSQL ({half} each)",
                          key, [job(key, "pg-a")] * half + [job(key, "pg-b")] * half, CLIENTS,
                          [first.pid, second.pid], "scale")
    finally:
        for daemon in daemons:
            daemon.terminate()
        for daemon in daemons:
            daemon.wait(timeout=60)
        cluster.stop()
