"""`make bench`: how fast the agent signs, against the token's own limit and OpenSSH's ssh-agent.

One run, one SoftHSM2 token, the same keys for everyone:
1. the limit: python-pkcs11 signing in-process (1 and 2 threads);
2. the agent's Sign RPC (audit on) over its Unix socket and over mutual TLS, 1, 8 and 32 client
   processes, unary and batches of 64;
3. OpenSSH ssh-agent holding the same token through its PKCS#11 provider.
Then how cost grows: 10,000 credentials (sign latency, first page of the list, start-up) and
`audit verify` against the log's length. Results go to bench/RESULTS.md with the machine.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import os
import pathlib
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass

import grpc
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc
from mcagent.hsm.uri import Pkcs11URI

from bench.workers import ClientPool, Job, Outcome, raw_sign
from tests.e2e.certs import TestCA

ROOT = pathlib.Path(__file__).resolve().parents[1]
MCAGENT = str(pathlib.Path(sys.executable).parent / "mcagent")
MODULE = os.environ.get("MCAGENT_BENCH_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
PIN, SO_PIN, TOKEN = "4815162342", "1123581321", "bench"
ABN = "51824753556"
SECONDS = float(os.environ.get("MCAGENT_BENCH_SECONDS", "2"))
REPEATS = 3
CLIENT_COUNTS = (1, 8, 32)
BATCH = 64
BATCH_CLIENTS = 2
BULK_CREDENTIALS = int(os.environ.get("MCAGENT_BENCH_CREDENTIALS", "10000"))
EXTRA_AUDIT_ENTRIES = 200_000
KEYS = ("rsa-2048", "ec-p256")


@dataclass
class Row:
    """One measured configuration (the median of REPEATS runs)."""

    name: str
    key: str
    signs_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us: float | None  # server (or raw process) CPU per sign


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _median_row(name: str, key: str, runs: list[tuple[list[Outcome], float, float | None]]) -> Row:
    """runs: (client outcomes, elapsed seconds, cpu seconds or None)."""
    measured = []
    for outcomes, elapsed, cpu in runs:
        errors = [o.first_error for o in outcomes if o.errors]
        if errors:
            raise RuntimeError(f"{name} {key}: {sum(o.errors for o in outcomes)} errors, first: {errors[0]}")
        signs = sum(o.signs for o in outcomes)
        latencies = [x for o in outcomes for x in o.latencies]
        measured.append((signs / elapsed, latencies, None if cpu is None else cpu / signs))
    measured.sort(key=lambda m: m[0])
    rate, latencies, cpu = measured[len(measured) // 2]
    return Row(name, key, rate, _percentile(latencies, 0.5) * 1e3, _percentile(latencies, 0.99) * 1e3,
               None if cpu is None else cpu * 1e6)


class Bench:
    def __init__(self) -> None:
        self.work = pathlib.Path(tempfile.mkdtemp(prefix="mcagent-bench-"))
        self.rows: list[Row] = []
        self.notes: dict[str, float] = {}
        self.daemon: subprocess.Popen | None = None

    # -- set-up ------------------------------------------------------------------------------

    def token(self) -> None:
        (self.work / "tokens").mkdir()
        conf = self.work / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {self.work / 'tokens'}\nobjectstore.backend = file\n"
                        "log.level = ERROR\n")
        os.environ["SOFTHSM2_CONF"] = str(conf)
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN],
                       check=True, capture_output=True)

    def start_daemon(self) -> float:
        """Start the agent; returns seconds until it answers its health check."""
        ca = self.pki["ca"]
        began = time.perf_counter()
        self.daemon = subprocess.Popen(
            [MCAGENT, "serve", "--data-dir", str(self.work / "data"), "--keystore-backend", "pkcs11",
             "--pkcs11-module", MODULE, "--pkcs11-token", TOKEN, "--listen", self.address,
             "--tls-cert", str(self.pki["server"].cert), "--tls-key", str(self.pki["server"].key),
             "--client-ca", str(ca.ca.cert), "--log-level", "warning"],
            env={**os.environ, "MCAGENT_PKCS11_PIN": PIN}, stdout=subprocess.DEVNULL,
            stderr=open(self.work / "daemon.log", "ab"),
        )
        socket_path = self.work / "data" / "mcagent.sock"
        while True:
            if self.daemon.poll() is not None:
                raise RuntimeError(f"the agent exited: {(self.work / 'daemon.log').read_text()[-2000:]}")
            if socket_path.exists():
                try:
                    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
                        pb_grpc.CredentialServiceStub(channel).GetMachineTerms(pb.GetMachineTermsRequest(), timeout=1)
                    return time.perf_counter() - began
                except grpc.RpcError:
                    pass
            time.sleep(0.02)

    def stop_daemon(self) -> None:
        assert self.daemon is not None
        self.daemon.terminate()
        self.daemon.wait(timeout=60)

    def cli(self, *args: str, token: str | None = None) -> str:
        env = {**os.environ, "MCAGENT_SOCKET": str(self.work / "data" / "mcagent.sock")}
        env.pop("MCAGENT_TOKEN", None)
        if token:
            env["MCAGENT_TOKEN"] = token
        return subprocess.run([MCAGENT, *args], check=True, capture_output=True, env=env, text=True).stdout

    def set_up_agent(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.address = f"127.0.0.1:{probe.getsockname()[1]}"
        (self.work / "pki").mkdir()
        ca = TestCA(self.work / "pki", "bench-ca")
        self.pki = {"ca": ca, "server": ca.issue("server", "localhost", server=True), "dsp": ca.issue("dsp", "dsp-1")}
        self.start_daemon()
        self.pa = self.cli("principal", "create", "alice").strip()
        self.cli("business", "register", "--abn", ABN, "--name", "Bench Pty Ltd", "--principal-authority", "alice")
        self.software = self.cli("principal", "create", "dsp", "--certificate-subject", self.pki["dsp"].subject).strip()
        self.cli("role", "grant", "--abn", ABN, "--principal", "dsp", "--role", "software", token=self.pa)
        self.credentials: dict[str, dict] = {}
        for key in KEYS:
            created = json.loads(self.cli("credential", "create", "--abn", ABN, "--name", f"bench-{key}",
                                          "--key-type", key, "--accept-terms", "--json", token=self.pa))
            public = load_pem_public_key(self.cli("credential", "public-key", created["id"], token=self.pa).encode())
            created["public_key"] = public
            self.credentials[key] = created

    # -- measurements --------------------------------------------------------------------------

    def raw(self) -> None:
        context = mp.get_context("spawn")
        for key in KEYS:
            key_id = Pkcs11URI.parse(self.credentials[key]["key_uri"]).key_id
            for threads in (1, 2):
                runs = []
                for _ in range(REPEATS):
                    parent, child = context.Pipe()
                    process = context.Process(target=raw_sign, args=(MODULE, TOKEN, PIN, key_id, key.startswith("rsa"),
                                                                     threads, SECONDS, child))
                    process.start()
                    result = parent.recv()
                    process.join()
                    runs.append(([Outcome(signs=result["signs"], latencies=result["latencies"])], result["seconds"],
                                 result["cpu"]))
                self.rows.append(_median_row(f"raw python-pkcs11, {threads} thread{'s' * (threads > 1)}", key, runs))

    def _agent_runs(self, pool: ClientPool, job: Job, clients: int) -> list[tuple[list[Outcome], float, float]]:
        runs = []
        for _ in range(REPEATS):
            cpu_before = _cpu_seconds([self.daemon.pid])
            outcomes = pool.run(job, clients)
            runs.append((outcomes, job.seconds, _cpu_seconds([self.daemon.pid]) - cpu_before))
        return runs

    def agent(self, pool: ClientPool) -> None:
        unix = f"unix:{self.work / 'data' / 'mcagent.sock'}"
        tls = tuple(p.read_bytes() for p in (self.pki["ca"].ca.cert, self.pki["dsp"].cert, self.pki["dsp"].key))
        empty = Job(kind="empty", seconds=SECONDS, target=unix, token=self.pa)
        for clients in (1, 8):
            self.rows.append(_median_row(f"agent empty RPC (GetMachineTerms), unix, {clients} clients", "-",
                                         self._agent_runs(pool, empty, clients)))
        for key in KEYS:
            credential = self.credentials[key]["id"]
            for transport in ("unix", "mtls"):
                for clients in CLIENT_COUNTS:
                    job = Job(kind="grpc", seconds=SECONDS, credential_id=credential,
                              target=unix if transport == "unix" else self.address,
                              token=self.pa if transport == "unix" else "",
                              tls=tls if transport == "mtls" else None)
                    self.rows.append(_median_row(f"agent Sign, {transport}, {clients} client{'s' * (clients > 1)}",
                                                 key, self._agent_runs(pool, job, clients)))
            job = Job(kind="batch", seconds=SECONDS, credential_id=credential, target=unix, token=self.pa, batch=BATCH)
            self.rows.append(_median_row(f"agent SignBatch of {BATCH}, unix, {BATCH_CLIENTS} clients", key,
                                         self._agent_runs(pool, job, BATCH_CLIENTS)))

    def ssh_agent(self, pool: ClientPool) -> None:
        agent_socket = str(self.work / "ssh-agent.sock")
        askpass = self.work / "askpass"
        askpass.write_text(f"#!/bin/sh\necho {PIN}\n")
        askpass.chmod(0o700)
        process = subprocess.Popen(["ssh-agent", "-D", "-a", agent_socket], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            while not os.path.exists(agent_socket):
                time.sleep(0.02)
            env = {**os.environ, "SSH_AUTH_SOCK": agent_socket, "SSH_ASKPASS": str(askpass),
                   "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
            subprocess.run(["ssh-add", "-s", MODULE], env=env, check=True, capture_output=True,
                           stdin=subprocess.DEVNULL)
            helpers = [int(p) for p in pathlib.Path(f"/proc/{process.pid}/task/{process.pid}/children")
                       .read_text().split()]
            for key in KEYS:
                blob = self._ssh_blob(self.credentials[key]["public_key"])
                for clients in (1, 8):
                    job = Job(kind="ssh-agent", seconds=SECONDS, target=agent_socket, key_blob=blob,
                              rsa=key.startswith("rsa"))
                    runs = []
                    for _ in range(REPEATS):
                        cpu_before = _cpu_seconds([process.pid, *helpers])
                        outcomes = pool.run(job, clients)
                        runs.append((outcomes, SECONDS, _cpu_seconds([process.pid, *helpers]) - cpu_before))
                    self.rows.append(_median_row(f"OpenSSH ssh-agent + PKCS#11, {clients} client"
                                                 f"{'s' * (clients > 1)}", key, runs))
        finally:
            process.terminate()
            process.wait()

    @staticmethod
    def _ssh_blob(public_key) -> bytes:
        import base64

        return base64.b64decode(public_key.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).split()[1])

    def growth(self, pool: ClientPool) -> None:
        """10,000 credentials: sign latency, first page of the list, start-up; audit verify by length."""
        unix = f"unix:{self.work / 'data' / 'mcagent.sock'}"
        job = Job(kind="grpc", seconds=SECONDS, credential_id=self.credentials["ec-p256"]["id"], target=unix,
                  token=self.pa)
        self.rows.append(_median_row("agent Sign, unix, 1 client, few credentials", "ec-p256",
                                     self._agent_runs(pool, job, 1)))
        self.notes["list_first_page_ms_few"] = self._time_list()
        self.notes["audit_entries_before"], self.notes["audit_verify_s_before"] = self._time_verify()
        self.stop_daemon()
        began = time.perf_counter()
        last_id = self._bulk_credentials(BULK_CREDENTIALS)
        self.notes["bulk_create_s"] = time.perf_counter() - began
        self.notes["startup_s_many"] = self.start_daemon()
        self.notes["list_first_page_ms_many"] = self._time_list()
        job = Job(kind="grpc", seconds=SECONDS, credential_id=last_id, target=unix, token=self.pa)
        self.rows.append(_median_row(f"agent Sign, unix, 1 client, {BULK_CREDENTIALS:,} credentials", "ec-p256",
                                     self._agent_runs(pool, job, 1)))
        self.stop_daemon()
        self._bulk_audit(EXTRA_AUDIT_ENTRIES)
        self.start_daemon()
        self.notes["audit_entries_after"], self.notes["audit_verify_s_after"] = self._time_verify()

    def _time_list(self) -> float:
        unix = f"unix:{self.work / 'data' / 'mcagent.sock'}"
        with grpc.insecure_channel(unix) as channel:
            stub = pb_grpc.CredentialServiceStub(channel)
            metadata = (("authorization", f"Bearer {self.pa}"),)
            stub.ListCredentials(pb.ListCredentialsRequest(abn=ABN), metadata=metadata)  # connect
            times = []
            for _ in range(5):
                began = time.perf_counter()
                stub.ListCredentials(pb.ListCredentialsRequest(abn=ABN), metadata=metadata)
                times.append(time.perf_counter() - began)
        return statistics.median(times) * 1e3

    def _time_verify(self) -> tuple[int, float]:
        began = time.perf_counter()
        output = self.cli("audit", "verify")
        elapsed = time.perf_counter() - began
        return int(output.split(":")[1].split()[0]), elapsed

    def _bulk_credentials(self, count: int) -> str:
        """Add `count` EC credentials: keys imported into the token, records written (agent stopped)."""
        import pkcs11
        from asn1crypto.core import OctetString
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec
        from mcagent.agent.domain.credential import CredentialStatus
        from mcagent.agent.domain.model import Backend, Credential
        from mcagent.agent.domain.terms import CURRENT_TERMS
        from mcagent.agent.storage import Storage
        from mcagent.hsm.base import KeyType as OurKeyType
        from mcagent.hsm.pkcs11.templates import PRIVATE_KEY_TEMPLATE, PUBLIC_KEY_TEMPLATE
        from pkcs11 import Attribute, KeyType, ObjectClass
        from pkcs11.util.ec import encode_named_curve_parameters

        storage = Storage(str(self.work / "data" / "mcagent.db"))
        holder = storage.principal_where("name", "alice")
        params = encode_named_curve_parameters("1.2.840.10045.3.1.7")
        lib = pkcs11.lib(MODULE)
        session = lib.get_token(token_label=TOKEN).open(rw=True, user_pin=PIN)
        now = dt.datetime.now(dt.UTC)
        records = []
        for n in range(count):
            key = ec.generate_private_key(ec.SECP256R1())
            key_id = x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
            label = str(uuid.uuid4())
            common = {Attribute.ID: key_id, Attribute.LABEL: label, Attribute.KEY_TYPE: KeyType.EC,
                      Attribute.EC_PARAMS: params}
            session.create_object({Attribute.CLASS: ObjectClass.PRIVATE_KEY, **common, **PRIVATE_KEY_TEMPLATE,
                                   Attribute.VALUE: key.private_numbers().private_value.to_bytes(32, "big")})
            point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
            session.create_object({Attribute.CLASS: ObjectClass.PUBLIC_KEY, **common, **PUBLIC_KEY_TEMPLATE,
                                   Attribute.EC_POINT: OctetString(point).dump()})
            records.append(Credential(
                id=label, abn=ABN, name=f"bulk-{n}", status=CredentialStatus.ACTIVE, key_type=OurKeyType.EC_P256,
                backend=Backend.PKCS11, key_uri=str(Pkcs11URI(TOKEN, key_id, label)),
                created_at=now + dt.timedelta(microseconds=n), created_by="bench", terms_version=CURRENT_TERMS.version,
                holder_id=holder.id))
        session.close()
        with storage.transaction():
            for record in records:
                storage.insert_credential(record)
        storage.close()
        return records[-1].id

    def _bulk_audit(self, count: int) -> None:
        from mcagent.agent.storage import Storage

        storage = Storage(str(self.work / "data" / "mcagent.db"))
        now = dt.datetime.now(dt.UTC)
        with storage.transaction(changes_state=False):
            for n in range(count):
                storage.append_audit(at=now, actor="bench", action="credential.sign", outcome="allowed", abn=ABN,
                                     target="bulk", detail={"n": n})
        storage.close()


# -- the report ----------------------------------------------------------------------------------


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
    import pkcs11

    return "\n".join([
        f"- CPU: {cpu}, {os.cpu_count()} cores; {platform.system()} {platform.release()} ({platform.machine()})",
        f"- Python {platform.python_version()}, grpcio {grpc.__version__}, python-pkcs11 "
        f"{getattr(pkcs11, '__version__', 'installed')}, cryptography {cryptography.__version__}",
        f"- SoftHSM2: {version('softhsm2-util', '--version')}; OpenSSH: {version('ssh', '-V')}",
    ])


def report(bench: Bench, started: float) -> str:
    rows = bench.rows

    def find(name: str, key: str) -> Row:
        return next(r for r in rows if r.name == name and r.key == key)

    def raw2(key: str) -> Row:
        return find("raw python-pkcs11, 2 threads", key)

    def raw1(key: str) -> Row:
        return find("raw python-pkcs11, 1 thread", key)

    def ssh_best(key: str) -> Row:
        return max((r for r in rows if r.key == key and r.name.startswith("OpenSSH")), key=lambda r: r.signs_per_s)

    lines = [
        "# Signing benchmark",
        "",
        f"Written by `make bench` on {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')} "
        f"(run took {time.time() - started:.0f} s). Each row is the median of {REPEATS} runs of {SECONDS:g} s;"
        " clients are separate processes; the audit log is on (every sign is a durable entry).",
        "Ratios compare within this run: \"× raw\" is against python-pkcs11 with two threads on the same key type,"
        " \"× ssh-agent\" against ssh-agent's best figure for that key type. CPU is the server's (or the raw"
        " process's) CPU time per sign.",
        "",
        "## Machine",
        "",
        _machine(),
        "",
        "## Throughput and latency",
        "",
        "| scenario | key | signs/s | p50 ms | p99 ms | CPU µs/sign | × raw | × ssh-agent |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.key == "-":
            ratio_raw = ratio_ssh = "-"
        else:
            ratio_raw = f"{r.signs_per_s / raw2(r.key).signs_per_s:.2f}"
            ratio_ssh = f"{r.signs_per_s / ssh_best(r.key).signs_per_s:.2f}"
        cpu = "-" if r.cpu_us is None else f"{r.cpu_us:,.0f}"
        lines.append(f"| {r.name} | {r.key} | {r.signs_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {cpu} | "
                     f"{ratio_raw} | {ratio_ssh} |")

    n = bench.notes
    few = find("agent Sign, unix, 1 client, few credentials", "ec-p256")
    many = find(f"agent Sign, unix, 1 client, {BULK_CREDENTIALS:,} credentials", "ec-p256")
    unary8 = {k: find("agent Sign, unix, 8 clients", k) for k in KEYS}
    batch = {k: find(f"agent SignBatch of {BATCH}, unix, {BATCH_CLIENTS} clients", k) for k in KEYS}
    targets = [
        ("RSA-2048 unary Sign, 8 clients, Unix socket ≥ 2× ssh-agent",
         unary8["rsa-2048"].signs_per_s / ssh_best("rsa-2048").signs_per_s, 2.0),
        ("RSA-2048 unary Sign, 8 clients, Unix socket ≥ 0.7× raw two-thread",
         unary8["rsa-2048"].signs_per_s / raw2("rsa-2048").signs_per_s, 0.7),
        ("ECDSA P-256 unary Sign, 8 clients ≥ 1.5× ssh-agent",
         unary8["ec-p256"].signs_per_s / ssh_best("ec-p256").signs_per_s, 1.5),
        (f"ECDSA batch of {BATCH} ≥ 0.6× raw one-thread", batch["ec-p256"].signs_per_s / raw1("ec-p256").signs_per_s,
         0.6),
        (f"RSA batch of {BATCH} ≥ 0.85× raw two-thread", batch["rsa-2048"].signs_per_s / raw2("rsa-2048").signs_per_s,
         0.85),
    ]
    overhead = {k: find("agent Sign, unix, 1 client", k).cpu_us - raw1(k).cpu_us for k in KEYS}
    lines += ["", "## Targets", "", "| target | measured | met |", "|---|---:|---|"]
    for text, value, goal in targets:
        verdict = "yes" if value >= goal else f"no, {(1 - value / goal) * 100:.0f}% short"
        lines.append(f"| {text} | {value:.2f}× | {verdict} |")
    for key, value in overhead.items():
        lines.append(f"| server CPU per unary sign minus the raw sign's, {key} ≤ 300 µs | {value:,.0f} µs | "
                     f"{'yes' if value <= 300 else f'no, {value - 300:,.0f} µs over'} |")
    change = (many.p50_ms / few.p50_ms - 1) * 100
    lines += [
        f"| sign p50 with {BULK_CREDENTIALS:,} credentials within 10% of few | {few.p50_ms:.2f} → "
        f"{many.p50_ms:.2f} ms ({change:+.0f}%) | {'yes' if abs(change) <= 10 else 'no'} |",
        f"| first page of `credential list` with {BULK_CREDENTIALS:,} credentials < 200 ms | "
        f"{n['list_first_page_ms_many']:.0f} ms (few: {n['list_first_page_ms_few']:.0f} ms) | "
        f"{'yes' if n['list_first_page_ms_many'] < 200 else 'no'} |",
        f"| start-up with {BULK_CREDENTIALS:,} credentials < 3 s | {n['startup_s_many']:.2f} s | "
        f"{'yes' if n['startup_s_many'] < 3 else 'no'} |",
        "",
        "## How cost grows",
        "",
        f"- {BULK_CREDENTIALS:,} credentials (keys in the token, records in SQLite) took "
        f"{n['bulk_create_s']:.0f} s to add, outside the agent.",
        f"- `audit verify`: {n['audit_entries_before']:,.0f} entries in {n['audit_verify_s_before']:.2f} s; "
        f"{n['audit_entries_after']:,.0f} entries in {n['audit_verify_s_after']:.2f} s "
        f"({n['audit_verify_s_after'] / n['audit_entries_after'] * 1e6:.1f} µs per entry): linear in the length.",
        "",
    ]
    analysis = ROOT / "bench" / "ANALYSIS.md"
    if analysis.exists():
        lines += [analysis.read_text().strip(), ""]
    return "\n".join(lines)


def main() -> None:
    started = time.time()
    for tool in ("softhsm2-util", "ssh-agent", "ssh-add"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run `make bench` as root, or apt-get install softhsm2 openssh-client")
    bench = Bench()
    pool = ClientPool(max(CLIENT_COUNTS))
    try:
        bench.token()
        bench.set_up_agent()
        print("measuring the raw limit ...", flush=True)
        bench.raw()
        print("measuring the agent ...", flush=True)
        bench.agent(pool)
        print("measuring ssh-agent ...", flush=True)
        bench.ssh_agent(pool)
        print(f"measuring growth ({BULK_CREDENTIALS:,} credentials) ...", flush=True)
        bench.growth(pool)
    finally:
        pool.close()
        if bench.daemon is not None and bench.daemon.poll() is None:
            bench.stop_daemon()
    text = report(bench, started)
    (ROOT / "bench" / "RESULTS.md").write_text(text)
    print(text)
    shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    main()
