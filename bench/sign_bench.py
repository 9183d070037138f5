"""`make bench`: how fast the agent signs, against the token's own limit and other signers.

One run, one SoftHSM2 token, the same keys for everyone:
1. the limit: python-pkcs11 signing in-process (1 and 2 threads);
2. the floor: a bare grpcio server (generic handler, empty unary call and a stream) on a Unix socket;
3. the agent (audit on, durable): its empty RPC; unary Sign over its Unix socket and mutual TLS;
   SignBatch; SignStream pipelined;
4. other signers on the same token: OpenSSH's ssh-agent (PKCS#11 provider), and PKCS#11 remoted
   over a Unix socket by `p11-kit server` (no authorisation, no audit);
5. issue #11 (bench/scale.py): `--workers 2` against one process (Unix and mTLS), PostgreSQL
   against SQLite, two daemons on one PostgreSQL; unary Sign, 8 clients, both key types;
6. how cost grows: 2,000 credentials (10,000 on request) created through the agent (keys and certificates) and signed
   across, the first page of the list, start-up; `audit verify` against the log's length.
Results go to bench/RESULTS.md (or MCAGENT_BENCH_OUT) with the machine, the spread of the runs,
and the verdicts of issue #12's targets, each computed from this run's measurements.

    make bench                                  # the full run (about 20-25 minutes on 2 cores)
    MCAGENT_BENCH_SMOKE=1 MCAGENT_BENCH_OUT=/tmp/smoke.md .venv/bin/python -m bench.sign_bench
                                                # seconds-long runs: proves the harness, measures nothing
    MCAGENT_BENCH_ONLY=workers,postgres make bench   # some sections only (see ONLY below)
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import multiprocessing as mp
import os
import pathlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from mcagent.agent.api.v1 import agent_pb2 as pb
from mcagent.agent.api.v1 import agent_pb2_grpc as pb_grpc
from mcagent.hsm.uri import Pkcs11URI

from bench import scale
from bench.report import Row, report
from bench.workers import ClientPool, Job, Outcome, raw_sign
from tests.e2e.certs import TestCA

ROOT = pathlib.Path(__file__).resolve().parents[1]
MCAGENT = str(pathlib.Path(sys.executable).parent / "mcagent")
MODULE = os.environ.get("MCAGENT_BENCH_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
P11KIT_CLIENT = os.environ.get("MCAGENT_BENCH_P11KIT_CLIENT", "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so")
PIN, SO_PIN, TOKEN = "4815162342", "1123581321", "bench"
ABN = "51824753556"
SMOKE = os.environ.get("MCAGENT_BENCH_SMOKE") == "1"
SECONDS = float(os.environ.get("MCAGENT_BENCH_SECONDS", "0.5" if SMOKE else "3"))
REPEATS = int(os.environ.get("MCAGENT_BENCH_REPEATS", "2" if SMOKE else "3"))
# 2,000, not 10,000: through the agent, each creation costs SoftHSM2 a search of every object in the
# token (docs/decisions.md, "The bench's length"); MCAGENT_BENCH_CREDENTIALS=10000 for the full scenario.
BULK_CREDENTIALS = int(os.environ.get("MCAGENT_BENCH_CREDENTIALS", "60" if SMOKE else "2000"))
SPREAD = min(BULK_CREDENTIALS, int(os.environ.get("MCAGENT_BENCH_SPREAD", "1000")))  # signed across
EXTRA_AUDIT_ENTRIES = int(os.environ.get("MCAGENT_BENCH_AUDIT_ENTRIES", "2000" if SMOKE else "200000"))
# Sections to run (comma-separated; empty: all): raw, bare, agent, profile, ssh-agent, p11-kit, workers,
# postgres, growth. The raw rows always run (every ratio needs them); workers or postgres without agent
# also measure the agent's 8-client rows they are compared with. A partial run's report leaves out the
# verdicts whose rows it did not measure.
ONLY = {name.strip() for name in os.environ.get("MCAGENT_BENCH_ONLY", "").split(",") if name.strip()}
OUT = pathlib.Path(os.environ.get("MCAGENT_BENCH_OUT", ROOT / "bench" / "RESULTS.md"))
CLIENT_COUNTS = (1, 8, 32)
BATCH, BATCH_CLIENTS = 64, 2
KEYS = ("rsa-2048", "ec-p256")


def _proc_cpu(pid: int) -> float:
    """CPU seconds of `pid`, its threads and its reaped children (utime, stime, cutime, cstime)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    found = []
    for task in pathlib.Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *_descendants(child)]
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds used so far by `pids` and every process below them."""
    total = 0.0
    for pid in {p for root in pids for p in (root, *_descendants(root))}:
        try:
            total += _proc_cpu(pid)
        except OSError:  # ended meanwhile: its time is in its parent's cutime once reaped
            pass
    return total


def _row(name: str, key: str, runs: list[tuple[list[Outcome], float | None, float]], group: str) -> Row:
    """runs: (client outcomes, CPU seconds from the start barrier to the end or None, wall seconds)."""
    rates, cpus, cores, latencies = [], [], [], []
    for outcomes, cpu, wall in runs:
        errors = [o.first_error for o in outcomes if o.errors]
        if errors:
            raise RuntimeError(f"{name} {key}: {sum(o.errors for o in outcomes)} errors, first: {errors[0]}")
        signs = sum(o.signs for o in outcomes)
        if not signs:
            raise RuntimeError(f"{name} {key}: no sign finished")
        rates.append(sum(o.signs / (o.ended - o.began) for o in outcomes))  # each client over its own window
        if cpu is not None:
            cpus.append(cpu / signs * 1e6)
            cores.append(cpu / wall)
        latencies.append(sorted(x for o in outcomes for x in o.latencies))
    middle = sorted(range(len(rates)), key=lambda i: rates[i])[len(rates) // 2]
    lat = latencies[middle]
    return Row(name=name, key=key, group=group, rate=statistics.median(rates), rate_lo=min(rates), rate_hi=max(rates),
               p50_ms=lat[len(lat) // 2] * 1e3, p99_ms=lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
               cpu_us=statistics.median(cpus) if cpus else None, cpu_lo=min(cpus) if cpus else None,
               cpu_hi=max(cpus) if cpus else None, cores=statistics.median(cores) if cores else None)


class Bench:
    def __init__(self) -> None:
        self.work = pathlib.Path(tempfile.mkdtemp(prefix="mcagent-bench-"))
        self.rows: list[Row] = []
        self.notes: dict[str, float] = {}
        self.daemon: subprocess.Popen | None = None
        self.profiles: list[str] = []
        self.failed_creations: list[str] = []  # the token's failures during the bulk creation (retried)
        self.creation_steps: list[tuple[int, float, float]] = []  # (created so far, seconds, agent CPU ms each)

    # -- set-up ------------------------------------------------------------------------------

    def token(self) -> None:
        (self.work / "tokens").mkdir()
        conf = self.work / "softhsm2.conf"
        conf.write_text(f"directories.tokendir = {self.work / 'tokens'}\nobjectstore.backend = file\n"
                        "log.level = ERROR\n")
        os.environ["SOFTHSM2_CONF"] = str(conf)
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", SO_PIN],
                       check=True, capture_output=True)

    @property
    def unix(self) -> str:
        return f"unix:{self.work / 'data' / 'mcagent.sock'}"

    def launch(self, extra: list[str] = (), data: str = "data", token: str = TOKEN,
               address: str | None = None) -> tuple[subprocess.Popen, float]:
        """Start an agent on `data` (folder under the work directory, socket inside it, log beside it)
        with `extra` serve arguments; returns it and the seconds until it answered."""
        ca = self.pki["ca"]
        socket_path = self.work / data / "mcagent.sock"
        log = self.work / f"{data}.log"
        began = time.perf_counter()
        daemon = subprocess.Popen(
            [MCAGENT, "serve", "--data-dir", str(self.work / data), "--socket", str(socket_path),
             "--keystore-backend", "pkcs11", "--pkcs11-module", MODULE, "--pkcs11-token", token,
             "--listen", address or self.address, "--tls-cert", str(self.pki["server"].cert),
             "--tls-key", str(self.pki["server"].key), "--client-ca", str(ca.ca.cert), "--log-level", "warning",
             *extra],
            env={**os.environ, "MCAGENT_PKCS11_PIN": PIN}, stdout=subprocess.DEVNULL, stderr=open(log, "ab"),
        )
        while True:
            if daemon.poll() is not None:
                raise RuntimeError(f"the agent exited: {log.read_text()[-2000:]}")
            if socket_path.exists():
                try:
                    with grpc.insecure_channel(f"unix:{socket_path}") as channel:
                        pb_grpc.CredentialServiceStub(channel).GetMachineTerms(pb.GetMachineTermsRequest(), timeout=1)
                    return daemon, time.perf_counter() - began
                except grpc.RpcError:
                    pass
            time.sleep(0.02)

    def start_daemon(self, extra: list[str] = ()) -> float:
        """Start the agent (with `extra` serve arguments) on the main data; seconds until it answers."""
        self.daemon, took = self.launch(extra)
        return took

    def stop_daemon(self) -> None:
        assert self.daemon is not None
        self.daemon.terminate()
        self.daemon.wait(timeout=60)

    def cli(self, *args: str, token: str | None = None, data: str = "data") -> str:
        env = {**os.environ, "MCAGENT_SOCKET": str(self.work / data / "mcagent.sock")}
        env.pop("MCAGENT_TOKEN", None)
        if token:
            env["MCAGENT_TOKEN"] = token
        return subprocess.run([MCAGENT, *args], check=True, capture_output=True, env=env, text=True).stdout

    @staticmethod
    def free_address() -> str:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return f"127.0.0.1:{probe.getsockname()[1]}"

    def set_up_agent(self) -> None:
        self.address = self.free_address()
        (self.work / "pki").mkdir()
        ca = TestCA(self.work / "pki", "bench-ca")
        self.pki = {"ca": ca, "server": ca.issue("server", "localhost", server=True), "dsp": ca.issue("dsp", "dsp-1")}
        self.start_daemon()
        self.pa, self.credentials = self.set_up_records("data")

    def set_up_records(self, data: str) -> tuple[str, dict[str, dict]]:
        """On the agent serving `data`: a principal authority, its business, the DSP's principal with
        the software role, and one credential of each key type; returns the PA's token and them."""
        pa = self.cli("principal", "create", "alice", data=data).strip()
        self.cli("business", "register", "--abn", ABN, "--name", "Bench Pty Ltd", "--principal-authority", "alice",
                 data=data)
        self.cli("principal", "create", "dsp", "--certificate-subject", self.pki["dsp"].subject, data=data)
        self.cli("role", "grant", "--abn", ABN, "--principal", "dsp", "--role", "software", token=pa, data=data)
        credentials: dict[str, dict] = {}
        for key in KEYS:
            created = json.loads(self.cli("credential", "create", "--abn", ABN, "--name", f"bench-{key}",
                                          "--key-type", key, "--accept-terms", "--json", token=pa, data=data))
            public = self.cli("credential", "public-key", created["id"], token=pa, data=data)
            created["public_key"] = load_pem_public_key(public.encode())
            credentials[key] = created
        return pa, credentials

    # -- measuring -----------------------------------------------------------------------------

    def measure(self, pool: ClientPool, name: str, key: str, job: Job | list[Job], clients: int, pids: list[int],
                group: str, warm_up: float = 0.0) -> Row:
        """REPEATS runs of `job` on `clients` processes; CPU of `pids` from the start barrier to the end."""
        runs = []
        for _ in range(REPEATS):
            outcomes, (cpu_start, wall_start) = pool.run(job, clients, warm_up=warm_up,
                                                         at_start=lambda: (cpu_seconds(pids), time.time()))
            cpu_end, wall_end = cpu_seconds(pids), time.time()
            runs.append((outcomes, cpu_end - cpu_start, wall_end - wall_start))
        row = _row(name, key, runs, group)
        self.rows.append(row)
        print(f"  {name} {key}: {row.rate:,.0f}/s", flush=True)
        return row

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
                    outcomes = result["outcomes"]
                    wall = max(o.ended for o in outcomes) - min(o.began for o in outcomes)
                    runs.append((outcomes, result["cpu"], wall))
                self.rows.append(_row(f"raw python-pkcs11, {threads} thread{'s' * (threads > 1)}", key, runs, "raw"))

    def bare(self, pool: ClientPool) -> None:
        path = self.work / "bare.sock"
        process = subprocess.Popen([sys.executable, "-m", "bench.bare_server", str(path)], cwd=ROOT)
        try:
            while not path.exists():
                if process.poll() is not None:
                    raise RuntimeError("the bare grpcio server exited")
                time.sleep(0.02)
            for kind, counts in (("bare-unary", (1, 8)), ("bare-stream", (1, 4))):
                for clients in counts:
                    what = "empty unary call" if kind == "bare-unary" else "bidi stream, pipelined"
                    self.measure(pool, f"bare grpcio {what}, {clients} client{'s' * (clients > 1)}", "-",
                                 Job(kind=kind, seconds=SECONDS, target=f"unix:{path}"), clients, [process.pid],
                                 "bare")
        finally:
            process.terminate()
            process.wait()

    def _job(self, kind: str, key: str, transport: str = "unix", ids: tuple[str, ...] = ()) -> Job:
        tls = tuple(p.read_bytes() for p in (self.pki["ca"].ca.cert, self.pki["dsp"].cert, self.pki["dsp"].key))
        return Job(kind=kind, seconds=SECONDS, credential_ids=ids or (self.credentials[key]["id"],),
                   target=self.unix if transport == "unix" else self.address,
                   token=self.pa if transport == "unix" else "", tls=tls if transport == "mtls" else None,
                   batch=BATCH)

    def agent(self, pool: ClientPool, baseline_only: bool = False) -> None:
        pid = [self.daemon.pid]
        if baseline_only:  # one process on SQLite, unary Sign at 8 clients: what issue #11's rows compare with
            for key in KEYS:
                for transport in ("unix", "mtls"):
                    self.measure(pool, f"agent Sign, {transport}, 8 clients", key, self._job("grpc", key, transport),
                                 8, pid, "agent")
            return
        for clients in (1, 8):
            self.measure(pool, f"agent empty RPC (GetMachineTerms), unix, {clients} clients", "-",
                         self._job("empty", "ec-p256"), clients, pid, "agent")
        for key in KEYS:
            for transport, counts in (("unix", CLIENT_COUNTS), ("mtls", (1, 8))):
                for clients in counts:
                    self.measure(pool, f"agent Sign, {transport}, {clients} client{'s' * (clients > 1)}", key,
                                 self._job("grpc", key, transport), clients, pid, "agent")
            self.measure(pool, f"agent SignBatch of {BATCH}, unix, {BATCH_CLIENTS} clients", key,
                         self._job("batch", key), BATCH_CLIENTS, pid, "agent")
            for clients in (1, 4):
                self.measure(pool, f"agent SignStream, unix, {clients} client{'s' * (clients > 1)} pipelined", key,
                             self._job("stream", key), clients, pid, "agent")

    def profile(self, pool: ClientPool) -> None:
        """py-spy on the daemon under unary Sign and SignStream (ECDSA): where its CPU goes, in shares."""
        from bench.profile_sign import profile_daemon, py_spy

        if py_spy() is None:
            self.profiles.append("(py-spy is not installed: `.venv/bin/pip install py-spy` to profile in the run)")
            return
        for kind, clients, what in (("grpc", 8, "unary Sign, 8 clients"), ("stream", 4, "SignStream, 4 clients")):
            job = self._job(kind, "ec-p256")
            job.seconds = max(SECONDS, 3.0)
            shares = profile_daemon(pool, job, clients, self.daemon.pid)
            self.profiles.append(shares.table(f"this run: {what}, ec-p256, Unix"))

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
            for key in KEYS:
                public = self.credentials[key]["public_key"]
                blob = base64.b64decode(public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).split()[1])
                for clients in (1, 8):
                    job = Job(kind="ssh-agent", seconds=SECONDS, target=agent_socket, key_blob=blob,
                              rsa=key.startswith("rsa"))
                    self.measure(pool, f"OpenSSH ssh-agent + PKCS#11, {clients} client{'s' * (clients > 1)}", key,
                                 job, clients, [process.pid], "ssh-agent")
        finally:
            process.terminate()
            process.wait()

    def p11kit(self, pool: ClientPool) -> None:
        """`p11-kit server` remoting the token over a Unix socket; python-pkcs11 on p11-kit-client.so."""
        path = self.work / "p11kit.sock"
        process = subprocess.Popen(["p11-kit", "server", "-f", "-n", str(path), "--provider", MODULE,
                                    f"pkcs11:token={TOKEN}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not path.exists():
                if process.poll() is not None:
                    raise RuntimeError("p11-kit server exited")
                time.sleep(0.02)
            for key in KEYS:
                key_id = Pkcs11URI.parse(self.credentials[key]["key_uri"]).key_id
                job = Job(kind="p11kit", seconds=SECONDS, target=f"unix:path={path}", rsa=key.startswith("rsa"),
                          p11=(P11KIT_CLIENT, TOKEN, PIN, key_id))
                self.measure(pool, "p11-kit server + p11-kit-client.so, 1 client", key, job, 1, [process.pid],
                             "p11-kit")
        finally:
            process.terminate()
            process.wait()

    # -- how cost grows ---------------------------------------------------------------------------

    def growth(self, pool: ClientPool) -> None:
        """Many credentials created through the agent; signs across SPREAD of them; list, start-up, verify."""
        pid = [self.daemon.pid]
        few = self.measure(pool, "agent Sign, unix, 1 client, one credential", "ec-p256",
                           self._job("grpc", "ec-p256"), 1, pid, "growth")
        self.notes["list_first_page_ms_few"] = self._time_list()
        self.notes["audit_entries_before"], self.notes["audit_verify_s_before"] = self._time_verify()
        began, cpu = time.perf_counter(), cpu_seconds(pid)
        ids = self._create_credentials(BULK_CREDENTIALS)
        self.notes["bulk_create_s"] = time.perf_counter() - began
        self.notes["bulk_create_cpu_ms"] = (cpu_seconds(pid) - cpu) / BULK_CREDENTIALS * 1e3
        print(f"  {BULK_CREDENTIALS:,} credentials created in {self.notes['bulk_create_s']:.0f} s "
              f"({self.notes['bulk_create_cpu_ms']:.1f} ms of the agent's CPU each)", flush=True)
        self.stop_daemon()
        self.notes["startup_s_many"] = self.start_daemon()
        pid = [self.daemon.pid]
        self.notes["list_first_page_ms_many"] = self._time_list()
        spread = tuple(ids[i * len(ids) // SPREAD] for i in range(SPREAD))
        # The first use of each credential of the spread (recorded) is made here, once, so the runs'
        # clients need not warm up with all of them: they take them in turn from the common start.
        first = self.notes["spread_first_use_s"] = self._sign_each(spread)
        print(f"  first use of {SPREAD:,} credentials, one after another: {first:.1f} s", flush=True)
        job = self._job("grpc", "ec-p256", ids=spread)
        job.warm_each = False
        many = self.measure(pool, f"agent Sign, unix, 1 client, across {SPREAD:,} of {BULK_CREDENTIALS:,} credentials",
                            "ec-p256", job, 1, pid, "growth")
        self.notes["few_p50"], self.notes["many_p50"] = few.p50_ms, many.p50_ms
        # `audit verify` at two more lengths (entries written straight into the log, agent stopped):
        # linear when each added entry costs the same in both halves.
        for half in ("middle", "after"):
            self.stop_daemon()
            began = time.perf_counter()
            self._bulk_audit(EXTRA_AUDIT_ENTRIES // 2)
            print(f"  {EXTRA_AUDIT_ENTRIES // 2:,} audit entries written in {time.perf_counter() - began:.0f} s",
                  flush=True)
            self.start_daemon()
            self.notes[f"audit_entries_{half}"], self.notes[f"audit_verify_s_{half}"] = self._time_verify()

    def _create_credentials(self, count: int) -> list[str]:
        """`count` ECDSA credentials through the agent's CreateCredential (key in the token, certificate
        issued by the agent's CA, records and audit), 8 at a time."""
        with grpc.insecure_channel(self.unix) as channel:
            stub = pb_grpc.CredentialServiceStub(channel)
            metadata = (("authorization", f"Bearer {self.pa}"),)
            terms = stub.GetMachineTerms(pb.GetMachineTermsRequest(), timeout=30).version

            def create(n: int) -> str:
                # Under 8 concurrent creations SoftHSM2 has failed a key generation now and then
                # (GeneralError: UNAVAILABLE while the agent recovers the token; TemplateInconsistent:
                # INTERNAL). Such a creation is retried, a few times, and counted in the report.
                for attempt in range(5):
                    try:
                        reply = stub.CreateCredential(pb.CreateCredentialRequest(
                            abn=ABN, name=f"bulk-{n}", key_type=pb.KEY_TYPE_EC_P256, accepted_terms_version=terms),
                            metadata=metadata, timeout=120)
                        return reply.credential.id
                    except grpc.RpcError as exc:
                        token_failed = exc.code() == grpc.StatusCode.UNAVAILABLE or (
                            exc.code() == grpc.StatusCode.INTERNAL and "PKCS#11 error" in (exc.details() or ""))
                        if not token_failed or attempt == 4:
                            raise
                        retries.append(f"{exc.code().name}: {(exc.details() or '').split(': ', 1)[-1]}")
                        time.sleep(0.5 * (attempt + 1))
                raise AssertionError("unreachable")

            retries: list[str] = []

            ids: list[str] = []
            with ThreadPoolExecutor(8) as executor:
                for first in range(0, count, 1000):  # by thousands: the cost per creation as the token fills
                    began, cpu = time.perf_counter(), cpu_seconds([self.daemon.pid])
                    ids += executor.map(create, range(first, min(count, first + 1000)))
                    took, cpu = time.perf_counter() - began, cpu_seconds([self.daemon.pid]) - cpu
                    self.creation_steps.append((len(ids), took, cpu / (len(ids) - first) * 1e3))
                    print(f"    {len(ids):,} created: the last {len(ids) - first:,} in {took:.0f} s, "
                          f"{self.creation_steps[-1][2]:.1f} ms of the agent's CPU each", flush=True)
            self.notes["bulk_create_retries"] = len(retries)
            self.failed_creations = retries
            return ids

    def _sign_each(self, ids: tuple[str, ...]) -> float:
        """Sign once with each credential in turn, as one client; the seconds it took."""
        with grpc.insecure_channel(self.unix) as channel:
            stub = pb_grpc.CredentialServiceStub(channel)
            metadata = (("authorization", f"Bearer {self.pa}"),)
            digest = bytes(32)
            began = time.perf_counter()
            for credential_id in ids:
                stub.Sign(pb.SignRequest(credential_id=credential_id, digest=digest), metadata=metadata, timeout=60)
            return time.perf_counter() - began

    def _time_list(self) -> float:
        with grpc.insecure_channel(self.unix) as channel:
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

    def _bulk_audit(self, count: int) -> None:
        """Audit entries written straight into the log (agent stopped), only to time `audit verify`."""
        from mcagent.agent.storage import Storage

        storage = Storage(str(self.work / "data" / "mcagent.db"))
        now = dt.datetime.now(dt.UTC)
        with storage.transaction(changes_state=False):
            for n in range(count):
                storage.append_audit(at=now, actor="bench", action="credential.sign", outcome="allowed", abn=ABN,
                                     target="bulk", detail={"n": n})
        storage.close()


def main() -> None:
    started = time.time()
    for tool in ("softhsm2-util", "ssh-agent", "ssh-add", "p11-kit"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: run `make bench` as root, or apt-get install softhsm2 "
                             "openssh-client p11-kit p11-kit-modules")
    if not os.path.exists(P11KIT_CLIENT):
        raise SystemExit(f"{P11KIT_CLIENT} is missing: apt-get install p11-kit-modules")
    bench = Bench()
    pool = ClientPool(max(CLIENT_COUNTS))
    try:
        bench.token()
        bench.set_up_agent()
        steps = [("raw", "the raw limit", bench.raw), ("bare", "a bare grpcio server", lambda: bench.bare(pool)),
                 ("agent", "the agent", lambda: bench.agent(pool)),
                 ("profile", "the agent's profile", lambda: bench.profile(pool)),
                 ("ssh-agent", "ssh-agent", lambda: bench.ssh_agent(pool)),
                 ("p11-kit", "p11-kit remoting", lambda: bench.p11kit(pool)),
                 ("workers", "workers 2 (issue #11)", lambda: scale.workers(bench, pool)),
                 ("postgres", "PostgreSQL, one and two daemons (issue #11)",
                  lambda: scale.postgres(bench, pool, SECONDS, PIN, SO_PIN)),
                 ("growth", f"growth ({BULK_CREDENTIALS:,} credentials)", lambda: bench.growth(pool))]
        unknown = ONLY - {name for name, _, _ in steps}
        if unknown:
            raise SystemExit(f"MCAGENT_BENCH_ONLY: unknown section(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(name for name, _, _ in steps)}")
        run = ONLY | {"raw"}
        if ONLY and "agent" not in ONLY and ONLY & {"workers", "postgres"}:  # what issue #11's rows compare with
            steps.insert(3, ("agent-8", "the agent at 8 clients (what issue #11's rows are compared with)",
                             lambda: bench.agent(pool, baseline_only=True)))
            run.add("agent-8")
        for name, what, step in steps:
            if ONLY and name not in run:
                continue
            print(f"measuring {what} ...", flush=True)
            began = time.perf_counter()
            step()
            print(f"  ({what}: {time.perf_counter() - began:.0f} s)", flush=True)
    finally:
        pool.close()
        if bench.daemon is not None and bench.daemon.poll() is None:
            bench.stop_daemon()
    settings = {"seconds": SECONDS, "repeats": REPEATS, "credentials": BULK_CREDENTIALS, "spread": SPREAD,
                "smoke": SMOKE, "took": time.time() - started, "only": sorted(ONLY),
                "failed_creations": bench.failed_creations, "creation_steps": bench.creation_steps}
    text = report(bench.rows, bench.notes, bench.profiles, settings)
    OUT.write_text(text)
    print(text)
    shutil.rmtree(bench.work, ignore_errors=True)


if __name__ == "__main__":
    main()
