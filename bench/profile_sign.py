"""Where the daemon's CPU goes on the sign path: py-spy on a real daemon under load.

    .venv/bin/python -m bench.profile_sign [--seconds 8] [--clients 8] [--key ec-p256] [--kind grpc|stream]

Starts a daemon the way `make bench` does, runs `clients` client processes of unary Sign (or
SignStream) against it over the Unix socket, and samples the daemon with `py-spy record
--format raw` (on-CPU threads only). Each sample is charged to the first part of the sign
path found walking from the innermost frame outwards, and the report gives each part's
share of the samples: proportions, which hold on a loaded machine where absolute times do not.
"Busy" means not recognised as waiting (a lock, a queue, the poller): a thread inside a C call
that waits (SQLite's fsync, SoftHSM's own lock) still counts as busy.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import shutil
import subprocess
import sys
import tempfile

# The parts of one sign, by the file (or function) a frame is in; the first match walking
# outwards from the innermost frame wins, so "the token's sign" is the PKCS#11 call itself.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("the token's sign (python-pkcs11 → SoftHSM2)", ("pkcs11/_pkcs11", "sign (pkcs11", "_pkcs11.pyx")),
    ("session pool (borrow, locks, gate)", ("hsm/pkcs11/pool.py",)),
    ("PKCS#11 backend (mechanism, DER encoding)", ("hsm/pkcs11/backend.py",)),
    ("audit commit (SQLite BEGIN/COMMIT, its fsync wait included)",
     ("Storage.transaction (", "Storage._end (", "Storage._begin (")),
    ("audit: entries, hash chain, appender thread", ("agent/storage/", "domain/audit.py")),
    ("caches and records read on the sign path", ("domain/cache.py",)),
    ("signing rules (authorise, record)", ("domain/signing.py", "domain/guard.py", "hsm/base.py",
                                            "domain/credential.py", "domain/permissions.py", "agent/keys.py")),
    ("authentication (caller resolution)", ("server/auth.py", "domain/access.py")),
    ("servicer and interceptors (conversion, error mapping)", ("server/servicer.py", "server/interceptors.py",
                                                              "server/sign_stream.py", "server/metrics.py")),
    ("Unix-socket relay (SO_PEERCRED)", ("server/unix_front.py",)),
    ("protobuf", ("google/protobuf",)),
    ("grpcio server machinery", ("grpc/_server.py", "grpc/_common.py", "grpc/_utilities.py", "grpc/__init__",
                                 "grpc/_cython", "grpc/_interceptor.py", "cygrpc")),
    ("thread hand-offs (queues, events, futures)", ("threading.py", "queue.py", "concurrent/futures")),
]
OTHER = "other"
# Innermost frames where a thread waits rather than runs: py-spy's idle detection misses
# waits inside C code that released the GIL (grpc's completion queue poll, lock waits).
ROOT = pathlib.Path(__file__).resolve().parents[1]


def _blocking_line(file: pathlib.Path, shown: str, function: str, call: str) -> str:
    """The py-spy frame of `function` at the line where it makes the blocking C call `call`
    (a SimpleQueue get or grpc's completion queue poll has no Python frame of its own)."""
    for number, line in enumerate(file.read_text().splitlines(), 1):
        if call in line:
            return f"{function} ({shown}:{number})"
    # The code moved: fail rather than count its waits as work.
    raise SystemExit(f"bench.profile_sign: {call!r} is no longer in {shown}; update WAITS")


def _module_file(name: str) -> pathlib.Path:
    import importlib.util

    return pathlib.Path(importlib.util.find_spec(name).origin)


WAITS = ("Condition.wait", "Event.wait", "select (selectors", ".select (", "get (queue.py",
         _blocking_line(_module_file("grpc._server"), "grpc/_server.py", "_serve", "completion_queue.poll("),
         _blocking_line(_module_file("concurrent.futures.thread"), "concurrent/futures/thread.py", "_worker",
                        "work_queue.get(block=True)"),
         _blocking_line(ROOT / "agent/storage/appender.py", "agent/storage/appender.py", "append_many",
                        "waiter.acquire()  # until"),
         _blocking_line(ROOT / "agent/server/sign_stream.py", "agent/server/sign_stream.py", "responses",
                        "self._answers.get()"))
WAITING = "waiting (excluded)"


def classify(stack: str) -> str:
    frames = stack.split(";")
    if any(w in frames[-1] for w in WAITS):
        return WAITING
    for frame in reversed(frames):
        for part, needles in PARTS:
            if any(n in frame for n in needles):
                return part
    return OTHER


def summarise(raw: str) -> list[tuple[str, float]]:
    """Shares of the samples by part, largest first, from py-spy's raw (collapsed) output."""
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[classify(stack)] += int(count)
    counts.pop(WAITING, None)
    total = sum(counts.values()) or 1
    return [(part, n / total) for part, n in counts.most_common()]


class Shares(list):
    """(part, share) pairs, largest first."""

    def table(self, title: str) -> str:
        lines = [f"| {title} | share of the daemon's busy samples |", "|---|---:|"]
        lines += [f"| {part} | {share * 100:.1f}% |" for part, share in self]
        return "\n".join(lines)


def table(shares: list[tuple[str, float]], title: str) -> str:
    return Shares(shares).table(title)


def py_spy() -> str | None:
    """The py-spy command, or None when it is not installed."""
    beside = pathlib.Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


def profile_daemon(pool, job, clients: int, pid: int, raw_out: str = "") -> Shares:
    """Run `job` on `clients` of `pool` and sample process `pid` with py-spy from the start barrier on."""
    raw_path = pathlib.Path(tempfile.mkdtemp(prefix="mcagent-profile-")) / "profile.txt"
    spy: list[subprocess.Popen] = []

    def start_sampling() -> None:
        spy.append(subprocess.Popen(
            [py_spy(), "record", "--pid", str(pid), "--duration", str(max(1, int(job.seconds) - 1)),
             "--rate", "250", "--format", "raw", "--output", str(raw_path), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))

    pool.run(job, clients, at_start=start_sampling)
    _, errors = spy[0].communicate(timeout=60)
    if not raw_path.exists():
        raise RuntimeError(f"py-spy wrote nothing: {errors}")
    raw = raw_path.read_text()
    shutil.rmtree(raw_path.parent, ignore_errors=True)
    if raw_out:
        pathlib.Path(raw_out).write_text(raw)
    return Shares(summarise(raw))


def main() -> None:
    from bench.sign_bench import Bench
    from bench.workers import ClientPool, Job

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--key", default="ec-p256")
    parser.add_argument("--kind", default="grpc", choices=("grpc", "stream"))
    parser.add_argument("--out", default="", help="also write the raw py-spy output here")
    args = parser.parse_args()
    if py_spy() is None:
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    bench = Bench()
    pool = ClientPool(args.clients)
    try:
        bench.token()
        bench.set_up_agent()
        job = Job(kind=args.kind, seconds=args.seconds, credential_ids=(bench.credentials[args.key]["id"],),
                  target=bench.unix, token=bench.pa)
        shares = profile_daemon(pool, job, args.clients, bench.daemon.pid, args.out)
        print(shares.table(f"{args.kind}, {args.key}, {args.clients} clients"))
    finally:
        pool.close()
        if bench.daemon is not None and bench.daemon.poll() is None:
            bench.stop_daemon()
        shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    main()
