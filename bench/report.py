"""bench/RESULTS.md from one run's rows: every figure and every verdict computed here, from them.

A verdict is "met" when the median meets the target; when the runs' range crosses the target
the verdict says so (the margin is inside the spread). Ratios carry the range from the two
rows' lowest and highest runs.
"""

from __future__ import annotations

import datetime as dt
import os
import pathlib
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import grpc

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclass
class Row:
    """One measured configuration: the median of its runs, and their range."""

    name: str
    key: str
    group: str
    rate: float
    rate_lo: float
    rate_hi: float
    p50_ms: float
    p99_ms: float
    cpu_us: float | None  # server (or raw process) CPU per sign, from the start barrier
    cpu_lo: float | None
    cpu_hi: float | None
    cores: float | None  # server CPU seconds per wall second (above 1: on both cores)

    @property
    def spread(self) -> float:
        return (self.rate_hi - self.rate_lo) / self.rate if self.rate else 0.0


@dataclass
class Measured:
    """A target's measured value with the range its runs allow."""

    value: float
    lo: float
    hi: float


def _ratio(a: Row, b: Row) -> Measured:
    return Measured(a.rate / b.rate, a.rate_lo / b.rate_hi, a.rate_hi / b.rate_lo)


def _cpu_over(a: Row, b: Row) -> Measured:
    return Measured(a.cpu_us - b.cpu_us, a.cpu_lo - b.cpu_hi, a.cpu_hi - b.cpu_lo)


def _cpu_times(a: Row, b: Row) -> Measured:
    return Measured(a.cpu_us / b.cpu_us, a.cpu_lo / b.cpu_hi, a.cpu_hi / b.cpu_lo)


def verdict(m: Measured, goal: float, *, at_most: bool = False, unit: str = "×") -> str:
    """"met" or "missed by X", and whether the runs' range crosses the goal."""
    met = m.value <= goal if at_most else m.value >= goal
    crosses = m.lo <= goal <= m.hi
    if met:
        return "met" + (" (the runs' range crosses the target)" if crosses else "")
    short = abs(m.value - goal)
    amount = f"{short:,.0f} µs" if unit == "µs" else f"{short:.2f}×"
    return f"missed by {amount}" + (" (the runs' range reaches the target)" if crosses else "")


def _fmt(m: Measured, unit: str) -> str:
    if unit == "µs":
        return f"{m.value:,.0f} µs ({m.lo:,.0f}–{m.hi:,.0f})"
    return f"{m.value:.2f}× ({m.lo:.2f}–{m.hi:.2f})"


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())

    def version(*command: str) -> str:
        try:
            result = subprocess.run(command, capture_output=True, text=True)
            return (result.stdout or result.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "unknown"

    import cryptography

    load = os.getloadavg()
    return "\n".join([
        f"- CPU: {cpu}, {os.cpu_count()} cores; {platform.system()} {platform.release()} ({platform.machine()})",
        f"- load average at the end of the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        "(other work on the machine shows up here and in the spread)",
        f"- Python {platform.python_version()}, grpcio {grpc.__version__}, cryptography {cryptography.__version__}",
        f"- SoftHSM2: {version('softhsm2-util', '--version')}; OpenSSH: {version('ssh', '-V')}; "
        f"p11-kit: {version('dpkg-query', '-W', '-f=${Version}', 'p11-kit')}",
    ])


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip() + (" (with uncommitted changes)" if subprocess.run(
                                  ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                  capture_output=True, text=True).stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def report(rows: list[Row], notes: dict[str, float], profiles: list[str], settings: dict) -> str:
    def find(name: str, key: str) -> Row:
        return next(r for r in rows if r.name == name and r.key == key)

    def best(group: str, key: str) -> Row | None:
        return max((r for r in rows if r.group == group and r.key == key), key=lambda r: r.rate, default=None)

    keys = sorted({r.key for r in rows if r.key != "-"}, reverse=True)  # rsa-2048, then ec-p256
    raw1 = {k: find("raw python-pkcs11, 1 thread", k) for k in keys}
    raw2 = {k: find("raw python-pkcs11, 2 threads", k) for k in keys}
    ssh = {k: best("ssh-agent", k) for k in keys}
    smoke = " **A smoke run: seconds-long runs that prove the harness, not figures to quote.**" if settings["smoke"] \
        else ""
    lines = [
        "# Signing benchmark",
        "",
        f"Written by `make bench` at commit {_commit()} on {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} "
        f"(the run took {settings['took']:.0f} s).{smoke} Each row is the median of {settings['repeats']} runs of "
        f"{settings['seconds']:g} s, with the lowest and highest run; clients are separate processes that "
        "connect and warm up before a common start; each client's rate is its signs over its own measured "
        "window (first request started to last answer received), and a row's rate is the sum over its clients. "
        "Server CPU is sampled at the common start and after the last client finished, so connecting, TLS "
        "handshakes and warm-up are not charged. The agent's audit log is on (every sign a durable entry).",
        "",
        "\"× raw\" compares with python-pkcs11 on two threads and the same key type, \"× ssh-agent\" with "
        "ssh-agent's best row for that key type; \"cores\" is the server's CPU seconds per second of the run "
        "(above 1: it ran on both cores).",
        "",
        "## Machine",
        "",
        _machine(),
        "",
        "## Throughput, latency and server CPU",
        "",
        "| scenario | key | signs/s | runs' range | p50 ms | p99 ms | server CPU µs/sign | cores | × raw "
        "| × ssh-agent |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.group == "scale":  # issue #11's rows: a table of their own below
            continue
        cpu = "-" if r.cpu_us is None else f"{r.cpu_us:,.0f}"
        cores = "-" if r.cores is None else f"{r.cores:.2f}"
        ratios = ("-", "-") if r.key == "-" else (f"{r.rate / raw2[r.key].rate:.2f}",
                                                  f"{r.rate / ssh[r.key].rate:.2f}" if ssh[r.key] else "-")
        lines.append(f"| {r.name} | {r.key} | {r.rate:,.0f} | {r.rate_lo:,.0f}–{r.rate_hi:,.0f} | {r.p50_ms:.2f} | "
                     f"{r.p99_ms:.2f} | {cpu} | {cores} | {ratios[0]} | {ratios[1]} |")

    try:
        lines += _targets(find, keys, raw1, raw2, ssh)
    except StopIteration:  # a partial run (MCAGENT_BENCH_ONLY)
        lines += ["", "## Targets of issue #12", "",
                  f"Not judged: this run measured only {', '.join(settings['only'])} (MCAGENT_BENCH_ONLY)."]
    if any(r.group == "scale" for r in rows):
        lines += _scale(rows, raw1, raw2)
    if "few_p50" in notes:
        lines += _growth(rows, notes, settings)
    lines += ["", "## Where the time goes", "",
              "Shares of the daemon's busy samples (py-spy, 250 Hz; threads waiting on a lock, a queue, "
              "the network or the completion queue are left out, but a wait inside a C call such as SQLite's "
              "fsync counts as busy), each sample charged to the first part of "
              "the sign path found walking out from its innermost frame. Proportions, not times: they hold on a "
              "loaded machine where absolute figures do not. `python -m bench.profile_sign` takes one on its own.",
              ""]
    before = ROOT / "bench" / "profile_before.md"
    if before.exists():
        lines += ["Before the changes of issue #12 (commit 7dd8bb9, taken on its own with `bench.profile_sign`):", "",
                  before.read_text().strip(), ""]
    for table in profiles:
        lines += [table, ""]
    return "\n".join(lines) + "\n"


def _targets(find: Callable[[str, str], Row], keys: list[str], raw1: dict[str, Row], raw2: dict[str, Row],
             ssh: dict[str, Row | None]) -> list[str]:
    """The table of issue #12's targets; StopIteration when a row it needs was not measured."""
    if None in ssh.values():
        raise StopIteration
    lines: list[str] = []
    bare_unary = find("bare grpcio empty unary call, 8 clients", "-")
    targets: list[tuple[str, Measured, float, bool, str]] = []
    for k in keys:
        unary8 = find("agent Sign, unix, 8 clients", k)
        targets.append((f"server CPU per unary sign minus the raw sign's ≤ 300 µs ({k}, Unix, 8 clients)",
                        _cpu_over(unary8, raw1[k]), 300, True, "µs"))
        targets.append((f"... that CPU ≤ 2× the bare grpcio unary call's server CPU ({k}, 8 clients)",
                        _cpu_times(_minus_raw(unary8, raw1[k]), bare_unary), 2.0, True, "×"))
    for k in keys:
        targets.append((f"server CPU per SignStream message minus the raw sign's ≤ 120 µs ({k}, 4 clients)",
                        _cpu_over(find("agent SignStream, unix, 4 clients pipelined", k), raw1[k]), 120, True, "µs"))
    for k in keys:
        targets.append((f"{k} unary, 8 clients, Unix ≥ 1.5× ssh-agent",
                        _ratio(find("agent Sign, unix, 8 clients", k), ssh[k]), 1.5, False, "×"))
    if "ec-p256" in keys:
        targets.append(("ec-p256 SignStream, 4 clients ≥ 0.6× raw one-thread",
                        _ratio(find("agent SignStream, unix, 4 clients pipelined", "ec-p256"), raw1["ec-p256"]), 0.6,
                        False, "×"))
    if "rsa-2048" in keys:
        targets.append(("rsa-2048 SignStream, 4 clients ≥ 0.85× raw two-thread",
                        _ratio(find("agent SignStream, unix, 4 clients pipelined", "rsa-2048"), raw2["rsa-2048"]),
                        0.85, False, "×"))
    lines += ["", "## Targets of issue #12", "", "| target | measured (runs' range) | verdict |", "|---|---:|---|"]
    for text, m, goal, at_most, unit in targets:
        lines.append(f"| {text} | {_fmt(m, unit)} | {verdict(m, goal, at_most=at_most, unit=unit)} |")
    for k in keys:
        m = _ratio(find("agent Sign, mtls, 8 clients", k), find("agent Sign, unix, 8 clients", k))
        within = abs(m.value - 1) <= 0.15
        text = "met" if within else f"missed by {abs(m.value - 1) - 0.15:.2f}×"
        lines.append(f"| mTLS unary within 15% of Unix unary ({k}, 8 clients) | {_fmt(m, '×')} | {text} |")
    for k in keys:
        m = _ratio(find("agent SignStream, unix, 1 client pipelined", k),
                   find("p11-kit server + p11-kit-client.so, 1 client", k))
        lines.append(f"| SignStream, 1 client pipelined ≥ 1.0× p11-kit remoting's single client ({k}) | "
                     f"{_fmt(m, '×')} | {verdict(m, 1.0)} |")
    lines += ["", "The agent's own cost is a ratio within this run: "
              f"the bare grpcio server's empty unary call costs {bare_unary.cpu_us:,.0f} µs of server CPU "
              f"(8 clients), its streamed message "
              f"{find('bare grpcio bidi stream, pipelined, 4 clients', '-').cpu_us:,.0f} µs (4 clients); "
              f"the agent's empty RPC {find('agent empty RPC (GetMachineTerms), unix, 8 clients', '-').cpu_us:,.0f} µs "
              "(8 clients, through its Unix-socket relay)."]
    return lines


def _minus_raw(row: Row, raw: Row) -> Row:
    """`row` with the raw sign's CPU taken off (what the agent adds around the token's sign)."""
    return Row(row.name, row.key, row.group, row.rate, row.rate_lo, row.rate_hi, row.p50_ms, row.p99_ms,
               row.cpu_us - raw.cpu_us, row.cpu_lo - raw.cpu_hi, row.cpu_hi - raw.cpu_lo, row.cores)


def _scale(rows: list[Row], raw1: dict[str, Row], raw2: dict[str, Row]) -> list[str]:
    """Issue #11: workers 2 against 1, PostgreSQL against SQLite, two daemons against one; beside the
    raw rows of this run. Each comparison's words come from the runs' ranges."""
    def cell(value: float | None, lo: float | None, hi: float | None) -> str:
        return "-" if value is None else f"{value:,.0f} ({lo:,.0f}–{hi:,.0f})"

    lines = ["", "## Workers and PostgreSQL (issue #11)", "",
             "Unary Sign, 8 clients, audit on and durable (PostgreSQL with fsync on). Server CPU sums every "
             "process of the daemon(s): the supervisor and its workers, or both daemons. The PostgreSQL "
             "daemons sign with a second token (same SoftHSM2, same key types) whose database is their own.", "",
             "| scenario | key | signs/s (runs' range) | server CPU µs/sign (range) | cores | × raw 2 threads |",
             "|---|---|---:|---:|---:|---:|"]
    comparisons = []
    for key in raw1:
        agent = {r.name: r for r in rows if r.group == "agent" and r.key == key}
        one_unix, one_mtls = agent.get("agent Sign, unix, 8 clients"), agent.get("agent Sign, mtls, 8 clients")
        listed = [r for r in (raw1[key], raw2[key], one_unix, one_mtls) if r is not None]
        named = {r.name: r for r in rows if r.group == "scale" and r.key == key}
        postgres = "agent Sign, unix, 8 clients, PostgreSQL"
        pairs = [("agent Sign, unix, 8 clients, workers 2", one_unix),
                 ("agent Sign, mtls, 8 clients, workers 2", one_mtls), (postgres, one_unix)]
        pairs += [(n, named.get(postgres)) for n in named if n.startswith("agent Sign, unix, 8 clients, two daemons")]
        for name, base in pairs:
            if name in named and base is not None:
                listed.append(named[name])
                comparisons.append((named[name], base))
        for r in listed:
            cores = "-" if r.cores is None else f"{r.cores:.2f}"
            lines.append(f"| {r.name} | {key} | {cell(r.rate, r.rate_lo, r.rate_hi)} | "
                         f"{cell(r.cpu_us, r.cpu_lo, r.cpu_hi)} | {cores} | {r.rate / raw2[key].rate:.2f} |")
    lines += ["", "Computed from the rows above (a ratio's range pairs the lowest run of one row with the highest "
              "of the other):", ""]
    for a, b in comparisons:
        m = _ratio(a, b)
        if m.lo > 1:
            word = "more, beyond the runs' spread"
        elif m.hi < 1:
            word = "fewer, beyond the runs' spread"
        else:
            word = "no difference beyond the runs' spread"
        cpu = ""
        if a.cpu_us is not None and b.cpu_us is not None:
            cpu = f"; server CPU per sign {a.cpu_us:,.0f} against {b.cpu_us:,.0f} µs ({a.cpu_us - b.cpu_us:+,.0f} µs)"
        lines.append(f"- {a.key}: \"{a.name}\" gives {_fmt(m, '×')} the signs/s of \"{b.name}\" ({word}){cpu}; "
                     f"{a.rate / raw2[a.key].rate:.2f}× the raw two-thread rate.")
    return lines


def _failures(failed: list[str]) -> str:
    """How many creations the token failed (each retried), by answer."""
    if not failed:
        return "no creation failed"
    kinds = sorted({f: failed.count(f) for f in failed}.items(), key=lambda kv: -kv[1])
    return (f"{len(failed):,} creations failed in the token and were retried: "
            + "; ".join(f"{count:,}× {kind}" for kind, count in kinds))


def _steps(steps: list[tuple[int, float, float]]) -> str:
    """The cost per creation as the token fills (first and last thousand)."""
    if len(steps) < 2:
        return "created in one step"
    (n1, s1, c1), (n2, s2, c2) = steps[0], steps[-1]
    return (f"the first {n1:,} took {s1:.0f} s ({c1:.1f} ms of the agent's CPU each), the last {n2 - steps[-2][0]:,} "
            f"{s2:.0f} s ({c2:.1f} ms each): {c2 / c1:.1f}× the CPU per creation")


def _growth(rows: list[Row], n: dict[str, float], settings: dict) -> list[str]:
    count, spread = settings["credentials"], settings["spread"]
    change = (n["many_p50"] / n["few_p50"] - 1) * 100
    # The cost of each added entry in the first and the second half of the added entries: the fixed
    # cost of a run (the CLI's start, the connection) drops out.
    first_half = ((n["audit_verify_s_middle"] - n["audit_verify_s_before"])
                  / (n["audit_entries_middle"] - n["audit_entries_before"]) * 1e6)
    second_half = ((n["audit_verify_s_after"] - n["audit_verify_s_middle"])
                   / (n["audit_entries_after"] - n["audit_entries_middle"]) * 1e6)
    growth = second_half / first_half if first_half > 0 else float("inf")
    linear = ("linear in the length" if 0.67 <= growth <= 1.5
              else f"not linear: an added entry costs {growth:.1f}× as much in the second half")
    return [
        "",
        "## How cost grows",
        "",
        "| target | measured | verdict |",
        "|---|---:|---|",
        f"| sign p50 across {spread:,} of {count:,} credentials within 10% of one credential | "
        f"{n['few_p50']:.2f} → {n['many_p50']:.2f} ms ({change:+.0f}%) | {'met' if abs(change) <= 10 else 'missed'} |",
        f"| first page of `credential list` with {count:,} credentials < 200 ms | "
        f"{n['list_first_page_ms_many']:.0f} ms (one credential: {n['list_first_page_ms_few']:.0f} ms) | "
        f"{'met' if n['list_first_page_ms_many'] < 200 else 'missed'} |",
        f"| start-up with {count:,} credentials < 3 s | {n['startup_s_many']:.2f} s | "
        f"{'met' if n['startup_s_many'] < 3 else 'missed'} |",
        "",
        f"- {count:,} ECDSA credentials were created through the agent's CreateCredential (key generated in the "
        f"token, certificate issued by the agent's CA, records and audit entries), 8 at a time, in "
        f"{n['bulk_create_s']:.0f} s ({n['bulk_create_cpu_ms']:.1f} ms of the agent's CPU each; "
        f"{_failures(settings['failed_creations'])}); {_steps(settings['creation_steps'])}; the signing row "
        f"signs across {spread:,} of them, spread evenly, each used once before the runs (its first use is "
        f"recorded then: {n['spread_first_use_s']:.1f} s for {spread:,}, one after another), then in turn by the "
        "runs' client.",
        f"- `audit verify`: {n['audit_entries_before']:,.0f} entries in {n['audit_verify_s_before']:.2f} s, "
        f"{n['audit_entries_middle']:,.0f} in {n['audit_verify_s_middle']:.2f} s, {n['audit_entries_after']:,.0f} in "
        f"{n['audit_verify_s_after']:.2f} s: each added entry {first_half:.1f} µs in the first half, "
        f"{second_half:.1f} µs in the second: {linear}.",
    ]
