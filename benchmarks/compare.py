#!/usr/bin/env python3
"""Compare durable objects with Redis and PostgreSQL, in one run, on this machine.

What it measures: three workloads, each at several numbers of concurrent callers (closed loop: every caller
waits for its answer before sending the next request), for a fixed time, against three servers that all
make every write durable before answering:

    workload    durable (gateway + 1 node)          redis-server                 PostgreSQL
    increment   durable-load --workload increment   INCR over 1,000 keys         UPDATE counters ... RETURNING v
                (Counter increment, 1,000 objects)  (redis-benchmark -r 1000)    (pgbench, random id in 1..1000)
    hot         durable-load --workload hot         INCR on one key              the same UPDATE on id 1
    noop        durable-load --workload noop        GET (one missing key)        SELECT 1

    durability  RocksDB synced writes               appendonly yes,              fsync on,
                                                    appendfsync always           synchronous_commit on

Tracing's cost: `durable-traced` is the durable run again with tracing on, at 1% sampling
(`--otel-endpoint` to a trivial OTLP/HTTP sink on loopback, started here, that accepts and discards every POST,
and `--trace-sampling 0.01`, on the gateway and the node), and a second table gives both throughputs and their
ratio. `--systems durable,durable-traced` runs just these two. `--baseline-build-dir DIR` adds `durable-baseline`:
the durable of another release build (the commit before tracing), untraced, so that the table also shows what
tracing off costs against no tracing at all.

Rounds: the durable systems (durable-baseline, durable, durable-traced) run side by side, each its own gateway and
node on its own ports, from its own folder, with its own keys (an idle one costs next to nothing). For each
workload and number of callers, --rounds rounds (default 1) each measure every one of them once, back to back, the
order flipping after every round (A B, B A, ...) so that the machine's drift favours none. On a small shared
machine throughput swings by ±15 % from one minute to the next, so one pair cannot show a 5 % difference: use
several rounds, e.g.

    python3 benchmarks/compare.py --systems durable,durable-traced --callers 64 --seconds 10 --rounds 5

Each durable figure in the tables is then the median over the rounds; each ratio in the tracing table
(traced/untraced, untraced/baseline) the median of the per-round ratios (each round's pair measured seconds
apart), with their range (lowest–highest) beside it to show the noise. The JSON keeps every round's measurement
(its `round` field) and the per-round ratios. Redis and PostgreSQL run once each, one after the other.

For each run it reports throughput (operations per second) and the p50 and p99 latency in milliseconds, as
each tool measures them on the client side: durable-load's histogram, redis-benchmark's CSV, and for pgbench
the per-transaction log (pgbench itself only prints the mean). It prints one Markdown table (headed by the
date, the CPU, the kernel and the server versions) with our throughput ratios against both and our p50 against
Redis's, writes it to --output, and the raw figures as JSON beside it.

How each figure is obtained:
- durable: `durable-load --rpc <gateway> --json FILE`: its throughput and latency percentiles, as written
  (after its default warm-up of 1 s, not recorded).
- Redis: redis-benchmark runs a number of requests, not a time. Before each run a calibration run (grown
  until it lasts at least half a second; it doubles as a warm-up) gives the rate, and `-n` is that rate times
  --seconds, so the measured run lasts about --seconds. Throughput and percentiles come from its --csv line.
- PostgreSQL: pgbench with `-M prepared` (statements parsed and planned once per connection, as a client
  with prepared statements does) and `-j min(callers, 2)` threads; each transaction is one statement in
  autocommit, so one commit (one WAL flush, shared by concurrent commits) per operation. Throughput is its
  "tps ... (without initial connection time)"; p50 and p99 are computed from its per-transaction log
  (`--log`). Each run follows 1 s of the same load, unrecorded. `-T` takes whole seconds, so --seconds is
  rounded for it.
- Every client runs on the same machine as its server and competes with it for the same cores. The durable
  gateway, node and durable-load run one event loop (thread) each by default (--event-loops, passed as
  DURABLE_EVENT_LOOPS), as Redis serves from one thread: three processes share the cores.

Each server runs on 127.0.0.1 only, from a fresh temporary folder, and is stopped at the end, also on Ctrl-C or an
error. The durable systems run together (see Rounds), then Redis alone, then PostgreSQL alone. Missing Debian packages
(redis-server, redis-tools, postgresql) are installed first, with sudo when not root.

Run it from the repository (the durable binaries come from the release build):

    make bench-compare                                    # builds, then runs everything (about 4 minutes)
    make bench-compare ARGS="--callers 1,64 --seconds 3"
    make bench-compare ARGS="--systems durable,durable-traced --callers 64 --seconds 10 --rounds 5"
    python3 benchmarks/compare.py --systems redis,postgres --workloads increment,noop

Standard library only (Python 3.9 or later).
"""

import argparse
import contextlib
import http.server
import csv
import datetime
import glob
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

REPOSITORY = Path(__file__).resolve().parent.parent
SYSTEMS = ("durable-baseline", "durable", "durable-traced", "durable-tls", "redis", "postgres")
# These run side by side (each its own gateway and node) and are measured --rounds times, in alternating order.
DURABLE_SYSTEMS = ("durable-baseline", "durable", "durable-traced", "durable-tls")
# Tracing's cost: the same durable run again with --otel-endpoint (an OTLP sink on loopback that accepts and
# discards) and --trace-sampling at this ratio (unless --trace-sampling says otherwise), reported as a ratio to the
# untraced run.
TRACE_SAMPLING = 0.01
WORKLOADS = ("increment", "hot", "noop")
KEYS = 1000
WORKLOAD_TITLES = {
    "increment": "increment, 1,000 keys",
    "hot": "increment, 1 hot key",
    "noop": "no-op call",
}
SERVER_START_TIMEOUT = 60.0
# A benchmark client is given this much more than its nominal run time before it is killed (redis-benchmark,
# for one, waits forever for a server that went away).
CLIENT_GRACE = 120.0


# MARK: output


def progress(message: str) -> None:
    """One line of progress on stderr."""
    print(f"[compare {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class SetupError(Exception):
    """A server or tool could not be set up; the message says what and shows the relevant log."""


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:]) or "    (empty log)"


# MARK: processes


def run_command(argv, *, timeout: float, cwd=None, user: Optional[str] = None,
                env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Runs a program to its end and returns its result (stdout and stderr as text); `env`, when given, is its whole
    environment (else it inherits ours)."""
    return subprocess.run(
        [str(part) for part in argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        **user_arguments(user),
    )


def user_arguments(user: Optional[str]) -> dict:
    """Popen arguments that run the child as `user` (only meaningful when we are root)."""
    if user is None:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


def failure_text(tool: str, result: subprocess.CompletedProcess) -> str:
    """What a client that failed said: its last line first (for the progress line), then the end of its output."""
    output = (result.stderr + result.stdout).strip()
    last = output.splitlines()[-1] if output else "no output"
    return f"{tool} exited with status {result.returncode}: {last}\n{output[-2000:]}"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (for servers that cannot pick their own and print it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A server process in its own process group, its stdout and stderr copied to a log file.

    `wait_ready` returns once a line matches `ready_pattern` (and fails, with the log's tail, if the process
    exits first); `stop` sends `stop_signal`, waits, then kills whatever is left of the process group. `env`, when
    given, is the process's whole environment (else it inherits ours).
    """

    def __init__(self, name, argv, log_path: Path, ready_pattern: str, *, cwd=None, user=None,
                 stop_signal=signal.SIGTERM, env: Optional[dict] = None):
        self.name = name
        self.argv = [str(part) for part in argv]
        self.log_path = log_path
        self.ready_pattern = re.compile(ready_pattern)
        self.cwd = cwd
        self.env = env
        self.user = user
        self.stop_signal = stop_signal
        self.process: Optional[subprocess.Popen] = None
        self.match: Optional[re.Match] = None
        self._ready = threading.Event()
        self._reader: Optional[threading.Thread] = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C goes to us, not to the servers: we stop them in order.
            **user_arguments(self.user),
        )
        self._reader = threading.Thread(
            target=self._copy_output, args=(self.process.stdout,), name=f"{self.name} output", daemon=True)
        self._reader.start()

    def _copy_output(self, output) -> None:
        with open(self.log_path, "ab") as log:
            for raw in output:
                log.write(raw)
                log.flush()
                if not self._ready.is_set():
                    match = self.ready_pattern.search(raw.decode(errors="replace"))
                    if match:
                        self.match = match
                        self._ready.set()

    def wait_ready(self, timeout: float = SERVER_START_TIMEOUT) -> re.Match:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.1):
            if self.process.poll() is not None:
                self._reader.join(2)
                raise SetupError(
                    f"{self.name} exited with status {self.process.returncode} before it was ready.\n"
                    f"  command: {' '.join(self.argv)}\n  last lines of {self.log_path}:\n{tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise SetupError(
                    f"{self.name} did not print /{self.ready_pattern.pattern}/ within {timeout:.0f} s.\n"
                    f"  command: {' '.join(self.argv)}\n  last lines of {self.log_path}:\n{tail(self.log_path)}")
        return self.match

    def stop(self, timeout: float = 30.0) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, self.stop_signal)
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                progress(f"{self.name} did not stop within {timeout:.0f} s: killing it")
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # Anything left in its group (children, helpers).
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        if self._reader:
            self._reader.join(2)
        self.process = None


# MARK: figures


@dataclass
class Measurement:
    """One run: a system, a workload, a number of callers, in one round (1 to --rounds; redis and postgres run one)."""
    system: str
    workload: str
    callers: int
    round: int = 1
    throughput: Optional[float] = None  # operations per second
    p50_ms: Optional[float] = None
    note: Optional[str] = None
    p99_ms: Optional[float] = None
    error: Optional[str] = None
    details: dict = field(default_factory=dict)
    # The share of the machine's CPU time the hypervisor gave to other guests during the run (steal, /proc/stat):
    # on a shared virtual machine, the main cause of runs of the same thing differing by more than a few percent.
    steal_percent: Optional[float] = None

    def summary(self) -> str:
        if self.error:
            return f"FAILED: {self.error.splitlines()[0]}"
        steal = f", steal {self.steal_percent:.1f}%" if self.steal_percent is not None else ""
        return f"{self.throughput:,.0f} ops/s, p50 {self.p50_ms:.3f} ms, p99 {self.p99_ms:.3f} ms{steal}"


def stolen_seconds() -> Optional[float]:
    """CPU seconds the hypervisor has given to other guests since boot, summed over the cores (None off Linux)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def measure_with_steal(runner, workload: str, callers: int) -> "Measurement":
    """runner.measure(workload, callers), with the steal the machine saw meanwhile as a share of its CPU time."""
    before, started = stolen_seconds(), time.monotonic()
    measurement = runner.measure(workload, callers)
    after, elapsed = stolen_seconds(), time.monotonic() - started
    if before is not None and after is not None and elapsed > 0:
        measurement.steal_percent = 100.0 * (after - before) / (elapsed * (os.cpu_count() or 1))
    return measurement


def percentile(sorted_values, percent: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(percent / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


# MARK: durable


class Durable:
    """A `durable gateway` and one `durable node` from the release build; load from `durable-load` over RPC."""

    name = "durable"

    def __init__(self, options):
        self.options = options
        build = Path(options.build_dir)
        self.durable = build / "durable"
        self.load = build / "durable-load"
        self.folder: Optional[Path] = None
        self.servers = []
        self.rpc_address = ""
        # The environment of this gateway, its node and the durable-load runs against them (set by start): its own
        # keys, since several durable systems may run side by side.
        self.environment: Optional[dict] = None

    def server_arguments(self) -> list:
        """Arguments added to the gateway's and the node's command lines."""
        return []

    def load_arguments(self) -> list:
        """Arguments added to every durable-load command line."""
        return []

    def check(self) -> None:
        missing = [str(path) for path in (self.durable, self.load) if not os.access(path, os.X_OK)]
        if missing:
            raise SetupError(
                f"missing {', '.join(missing)}: build them first with\n"
                f"    swift build -c release --product durable --product durable-load\n"
                f"  (make bench-compare does), or leave durable out with --systems redis,postgres")

    def version(self) -> str:
        commit = run_command(["git", "-C", REPOSITORY, "rev-parse", "--short", "HEAD"], timeout=10).stdout.strip()
        dirty = run_command(["git", "-C", REPOSITORY, "status", "--porcelain", "--untracked-files=no"], timeout=10)
        return f"{commit or 'unknown commit'}{' (with local changes)' if dirty.stdout.strip() else ''}"

    def start(self) -> None:
        self.check()
        self.folder = Path(tempfile.mkdtemp(prefix="compare-durable-", dir=self.options.tmp_dir))
        # Fresh keys for this run, in the environment that this gateway, its node and its durable-load runs get
        # (a copy of ours, not ours: each durable system running side by side has its own): the cluster secret
        # between gateway and node, the admin token the gateway requires, the API token the load generator proves.
        environment = dict(os.environ)
        for variable in ("DURABLE_CLUSTER_SECRET", "DURABLE_ADMIN_TOKEN", "DURABLE_API_TOKEN"):
            environment[variable] = secrets.token_hex(32)
        # Event loops (threads) per process: the gateway, the node and durable-load share the machine's cores, and
        # with one loop each a call crosses no thread inside a process (--event-loops; 0 keeps one per core).
        if self.options.event_loops > 0:
            environment["DURABLE_EVENT_LOOPS"] = str(self.options.event_loops)
        else:
            environment.pop("DURABLE_EVENT_LOOPS", None)
        self.environment = environment
        # The folder is the working directory too, so no stray ./durable.toml is picked up: the example app's
        # built-in configuration is served.
        gateway = Server(
            "durable gateway",
            [self.durable, "gateway", "--host", "127.0.0.1", "--port", "0", "--rpc-port", "0",
             "--data", self.folder / "gateway", "--log-level", "warning", *self.server_arguments()],
            self.folder / "gateway.log",
            r"durable gateway listening on ([0-9.]+):(\d+) \(RPC\), worker on (\S+)",
            cwd=self.folder, env=self.environment)
        self.servers.append(gateway)
        gateway.start()
        match = gateway.wait_ready()
        self.rpc_address = f"127.0.0.1:{match.group(2)}"
        progress(f"{self.name} gateway ready: RPC on {self.rpc_address}, worker on {match.group(3)}")

        # The node prints its line once it has joined the gateway (or given up: then it logs an error first).
        node = Server(
            "durable node",
            [self.durable, "node", "--host", "127.0.0.1", "--port", "0", "--data", self.folder / "node",
             "--gateway", self.rpc_address, "--log-level", "warning", *self.server_arguments()],
            self.folder / "node.log",
            r"durable node \S+ listening on ([0-9.]+:\d+)",
            cwd=self.folder, env=self.environment)
        self.servers.append(node)
        node.start()
        match = node.wait_ready()
        if "could not join the gateway" in node.log_path.read_text(errors="replace"):
            raise SetupError(f"the durable node could not join the gateway:\n{tail(node.log_path)}")
        progress(f"{self.name} node ready on {match.group(1)}")
        self.wait_until_served()

    def wait_until_served(self, attempts: int = 10) -> None:
        """Retries a one-second increment through the gateway until it succeeds without errors: the node is
        registered and its objects are placed."""
        for attempt in range(1, attempts + 1):
            figures, failure = self.run_load("increment", callers=1, seconds=1, objects=1, name="probe", warmup=0)
            if failure is None and figures.get("completed", 0) > 0 and not sum(figures.get("errors", {}).values()):
                return
            reason = failure or f"{figures.get('completed', 0)} completed, errors {figures.get('errors')}"
            progress(f"{self.name} not serving yet (attempt {attempt}/{attempts}): {reason.splitlines()[0]}")
            time.sleep(0.5)
        raise SetupError(
            f"durable-load could not complete a call through the gateway at {self.rpc_address}: {reason}\n"
            f"  gateway log:\n{tail(self.servers[0].log_path)}\n  node log:\n{tail(self.servers[1].log_path)}")

    def run_load(self, workload: str, *, callers: int, seconds: float, objects: Optional[int], name: str,
                 warmup: Optional[float] = None):
        """Runs durable-load once (after its own warm-up, 1 s unless `warmup` says otherwise); returns (its JSON
        figures, None) or ({}, what went wrong)."""
        report = self.folder / f"{name}.json"
        argv = [self.load, "--rpc", self.rpc_address, "--workload", workload,
                *(["--objects", objects] if objects is not None else []),
                "--callers", callers, "--seconds", f"{seconds:g}", "--json", report,
                *(["--warmup", f"{warmup:g}"] if warmup is not None else []), *self.load_arguments()]
        try:
            result = run_command(argv, timeout=seconds + (warmup or 1) + CLIENT_GRACE, env=self.environment)
        except subprocess.TimeoutExpired:
            return {}, f"durable-load did not finish within {seconds + CLIENT_GRACE:.0f} s"
        if result.returncode != 0:
            return {}, failure_text("durable-load", result)
        try:
            return json.loads(report.read_text()), None
        except (OSError, ValueError) as error:
            return {}, f"durable-load wrote no readable {report}: {error}"

    def measure(self, workload: str, callers: int) -> Measurement:
        figures, failure = self.run_load(
            workload, callers=callers, seconds=self.options.seconds,
            objects=KEYS if workload == "increment" else None, name=f"{workload}-{callers}")
        measurement = Measurement(self.name, workload, callers)
        if failure:
            measurement.error = failure
            return measurement
        latency = figures.get("latency_ms", {})
        measurement.throughput = figures.get("throughput")
        measurement.p50_ms = latency.get("p50")
        measurement.p99_ms = latency.get("p99")
        measurement.details = figures
        errors = sum((figures.get("errors") or {}).values())
        if errors:
            progress(f"  {self.name} {workload}/{callers}: {errors} calls failed: {figures.get('errors')}")
        return measurement

    def stop(self, keep_folder: bool = False) -> None:
        for server in reversed(self.servers):  # The node first, then the gateway.
            server.stop()
        self.servers = []
        remove_folder(self.folder, self.options, keep_folder)


class OTLPSink:
    """A trivial OTLP/HTTP collector on 127.0.0.1: accepts every POST (e.g. /v1/traces), answers 200 with an empty
    protobuf message, discards the body; counts the exports and their bytes."""

    def __init__(self):
        sink = self
        self.exports = 0
        self.bytes = 0
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with sink.lock:
                    sink.exports += 1
                    sink.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *arguments):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="otlp sink", daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class DurableBaseline(Durable):
    """The untraced run on another build (--baseline-build-dir: e.g. the commit before tracing), to show that tracing
    off costs nothing; the load generator is this build's."""

    name = "durable-baseline"

    def __init__(self, options):
        super().__init__(options)
        self.durable = Path(options.baseline_build_dir) / "durable"

    def version(self) -> str:
        return str(self.durable)


class DurableTraced(Durable):
    """The same gateway and node with tracing on: spans exported over OTLP/HTTP to an `OTLPSink`, --trace-sampling
    of the traces recorded (parent-based: the node follows the gateway's decision)."""

    name = "durable-traced"

    def __init__(self, options):
        super().__init__(options)
        self.sink: Optional[OTLPSink] = None

    def server_arguments(self) -> list:
        return ["--otel-endpoint", self.sink.endpoint, "--trace-sampling", f"{self.options.trace_sampling:g}"]

    def start(self) -> None:
        self.sink = OTLPSink()
        progress(f"OTLP sink on {self.sink.endpoint}; sampling {self.options.trace_sampling:g}")
        super().start()

    def measure(self, workload: str, callers: int) -> Measurement:
        measurement = super().measure(workload, callers)
        with self.sink.lock:
            measurement.details["otlp_exports_so_far"] = self.sink.exports
            measurement.details["otlp_bytes_so_far"] = self.sink.bytes
        return measurement

    def stop(self, keep_folder: bool = False) -> None:
        super().stop(keep_folder)  # The servers flush their last spans to the sink as they stop.
        if self.sink:
            progress(f"OTLP sink received {self.sink.exports} exports, {self.sink.bytes:,} bytes")
            self.sink.close()
            self.sink = None


class DurableTLS(Durable):
    """The same gateway and node with TLS on every RPC port: a CA and one certificate for 127.0.0.1 made here with
    openssl, presented by the gateway and the node to each other (mutual TLS) and verified by durable-load."""

    name = "durable-tls"

    def __init__(self, options):
        super().__init__(options)
        self.certificates: Optional[Path] = None

    def start(self) -> None:
        self.certificates = Path(tempfile.mkdtemp(prefix="compare-tls-", dir=self.options.tmp_dir))
        make_certificates(self.certificates)
        progress(f"TLS: a CA and a certificate for 127.0.0.1 in {self.certificates}")
        super().start()

    def server_arguments(self) -> list:
        folder = self.certificates
        return ["--tls-cert", folder / "cert.pem", "--tls-key", folder / "key.pem", "--tls-ca", folder / "ca.pem"]

    def load_arguments(self) -> list:
        return ["--tls-ca", self.certificates / "ca.pem"]

    def stop(self, keep_folder: bool = False) -> None:
        super().stop(keep_folder)
        remove_folder(self.certificates, self.options, keep_folder)
        self.certificates = None


def make_certificates(folder: Path) -> None:
    """A throwaway CA (ca.pem) and a P-256 certificate for IP 127.0.0.1 signed by it (cert.pem, key.pem), valid
    for two days, usable by servers and clients alike."""
    extensions = folder / "extensions.cnf"
    extensions.write_text("subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth, clientAuth\n"
                          "basicConstraints = critical, CA:FALSE\n")
    steps = [
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", folder / "ca.key", "-out", folder / "ca.pem", "-days", "2", "-subj", "/CN=compare.py CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", folder / "key.pem", "-out", folder / "cert.csr", "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", folder / "cert.csr", "-CA", folder / "ca.pem", "-CAkey", folder / "ca.key",
         "-CAcreateserial", "-out", folder / "cert.pem", "-days", "2", "-extfile", extensions],
    ]
    for argv in steps:
        try:
            result = run_command(argv, timeout=30)
        except FileNotFoundError:
            raise SetupError("durable-tls needs openssl (apt-get install openssl; compare.py installs it)")
        if result.returncode != 0:
            raise SetupError(failure_text("openssl", result))


# MARK: redis


class Redis:
    """redis-server with every write in the append-only file, fsynced before the reply; redis-benchmark as load."""

    name = "redis"
    TESTS = {"increment": ("incr", ["-r", str(KEYS)]), "hot": ("incr", []), "noop": ("get", [])}

    def __init__(self, options):
        self.options = options
        self.folder: Optional[Path] = None
        self.server: Optional[Server] = None
        self.port = 0

    def version(self) -> str:
        output = run_command(["redis-server", "--version"], timeout=10).stdout
        match = re.search(r"v=(\S+)", output)
        return match.group(1) if match else output.strip()

    def start(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="compare-redis-", dir=self.options.tmp_dir))
        self.port = free_port()
        self.server = Server(
            "redis-server",
            ["redis-server", "--port", self.port, "--bind", "127.0.0.1", "--dir", self.folder,
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
             "--logfile", ""],
            self.folder / "redis.log",
            r"Ready to accept connections",
            cwd=self.folder)
        self.server.start()
        self.server.wait_ready()
        progress(f"redis-server ready on 127.0.0.1:{self.port}")

    def benchmark(self, workload: str, callers: int, requests: int) -> dict:
        """Runs redis-benchmark once and returns its CSV row (rps and latencies in ms)."""
        test, extra = self.TESTS[workload]
        argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", self.port, "-c", callers, "-n", requests,
                "-t", test, *extra, "--csv"]
        result = run_command(argv, timeout=self.options.seconds + CLIENT_GRACE)
        rows = [row for row in csv.DictReader(line for line in result.stdout.splitlines() if line.startswith('"'))]
        if result.returncode != 0 or not rows:
            raise RuntimeError(failure_text("redis-benchmark", result))
        return rows[0]

    def requests_for(self, workload: str, callers: int) -> int:
        """redis-benchmark runs a number of requests, not a time: a short calibration run (also a warm-up),
        grown until it lasts half a second, gives the rate, and the rate times --seconds the request count."""
        requests = max(1000, 100 * callers)
        while True:
            row = self.benchmark(workload, callers, requests)
            rate = float(row["rps"])
            if requests / rate >= 0.5 or requests >= 100_000_000:
                return max(requests, int(rate * self.options.seconds))
            requests = min(requests * 20, max(requests * 2, int(rate * 0.6)))

    def measure(self, workload: str, callers: int) -> Measurement:
        measurement = Measurement(self.name, workload, callers)
        try:
            requests = self.requests_for(workload, callers)
            row = self.benchmark(workload, callers, requests)
        except (RuntimeError, subprocess.TimeoutExpired) as error:
            measurement.error = str(error)
            return measurement
        measurement.throughput = float(row["rps"])
        measurement.p50_ms = float(row["p50_latency_ms"])
        measurement.p99_ms = float(row["p99_latency_ms"])
        measurement.details = {"requests": requests, "seconds": requests / measurement.throughput, "csv": row}
        return measurement

    def stop(self, keep_folder: bool = False) -> None:
        if self.server:
            self.server.stop()
            self.server = None
        remove_folder(self.folder, self.options, keep_folder)


# MARK: postgres


def postgres_bin_dir() -> Optional[Path]:
    """The newest /usr/lib/postgresql/N/bin with the server and pgbench (Debian), else pg_config's bindir."""
    needed = ("initdb", "postgres", "pgbench", "psql")
    candidates = sorted(
        (Path(path) for path in glob.glob("/usr/lib/postgresql/*/bin")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = run_command([pg_config, "--bindir"], timeout=10).stdout.strip()
        if bindir:
            candidates.append(Path(bindir))
    for candidate in candidates:
        if all(os.access(candidate / tool, os.X_OK) for tool in needed):
            return candidate
    return None


class Postgres:
    """A throwaway PostgreSQL cluster (fsync on, synchronous_commit on); pgbench as load, with per-transaction
    logs for the percentiles."""

    name = "postgres"
    SCRIPTS = {
        "increment": f"\\set id random(1, {KEYS})\nUPDATE counters SET v = v + 1 WHERE id = :id RETURNING v;\n",
        "hot": "UPDATE counters SET v = v + 1 WHERE id = 1 RETURNING v;\n",
        "noop": "SELECT 1;\n",
    }

    def __init__(self, options):
        self.options = options
        self.bin = postgres_bin_dir()
        # The server refuses to run as root: then initdb and postgres run as the `postgres` user.
        self.user = "postgres" if os.geteuid() == 0 else None
        self.folder: Optional[Path] = None
        self.server: Optional[Server] = None
        self.port = 0

    def version(self) -> str:
        output = run_command([self.bin / "postgres", "--version"], timeout=10).stdout.strip()
        return output.replace("postgres (PostgreSQL) ", "")

    def start(self) -> None:
        if self.bin is None:
            raise SetupError("PostgreSQL's initdb/postgres/pgbench/psql not found (apt-get install postgresql)")
        self.folder = Path(tempfile.mkdtemp(prefix="compare-postgres-", dir=self.options.tmp_dir))
        if self.user:
            shutil.chown(self.folder, self.user, self.user)
        data = self.folder / "data"
        result = run_command(
            [self.bin / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--encoding=UTF8",
             "--locale=C", "--no-sync", "--no-instructions"],
            timeout=120, cwd=self.folder, user=self.user)
        if result.returncode != 0:
            raise SetupError(f"initdb failed ({result.returncode}):\n{result.stdout}{result.stderr}")
        self.port = free_port()
        self.server = Server(
            "postgres",
            [self.bin / "postgres", "-D", data,
             "-c", "listen_addresses=127.0.0.1", "-c", f"port={self.port}",
             "-c", f"unix_socket_directories={self.folder}", "-c", "fsync=on", "-c", "synchronous_commit=on",
             "-c", "max_connections=200", "-c", "logging_collector=off"],
            self.folder / "postgres.log",
            r"database system is ready to accept connections",
            cwd=self.folder, user=self.user, stop_signal=signal.SIGINT)  # SIGINT: fast shutdown.
        self.server.start()
        self.server.wait_ready()
        self.create_table()
        progress(f"postgres ready on 127.0.0.1:{self.port}, table counters with {KEYS:,} rows")

    def create_table(self) -> None:
        statements = [
            "CREATE TABLE counters (id int PRIMARY KEY, v bigint NOT NULL)",
            f"INSERT INTO counters SELECT id, 0 FROM generate_series(1, {KEYS}) AS id",
            "VACUUM ANALYZE counters",
        ]
        argv = [self.bin / "psql", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "-d", "postgres",
                "-v", "ON_ERROR_STOP=1", "-q"]
        for statement in statements:  # One -c each: VACUUM cannot run inside the implicit transaction.
            argv += ["-c", statement]
        result = run_command(argv, timeout=60)
        if result.returncode != 0:
            raise SetupError(f"creating the counters table failed:\n{result.stdout}{result.stderr}")

    def measure(self, workload: str, callers: int) -> Measurement:
        measurement = Measurement(self.name, workload, callers)
        run_folder = self.folder / "runs" / f"{workload}-{callers}"
        run_folder.mkdir(parents=True)
        script = run_folder / "script.sql"
        script.write_text(self.SCRIPTS[workload])
        seconds = max(1, round(self.options.seconds))  # pgbench's -T takes whole seconds.
        argv = [self.bin / "pgbench", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "-n",
                "-M", "prepared", "-c", callers, "-j", min(callers, 2), "-f", script]
        try:
            # A second of the same load first, unrecorded, as durable-load and redis-benchmark's calibration do.
            run_command(argv + ["-T", 1, "postgres"], timeout=1 + CLIENT_GRACE, cwd=run_folder)
            result = run_command(argv + ["-T", seconds, "--log", "--log-prefix=transactions", "postgres"],
                                 timeout=seconds + CLIENT_GRACE, cwd=run_folder)
        except subprocess.TimeoutExpired:
            measurement.error = f"pgbench did not finish within {seconds + CLIENT_GRACE:.0f} s"
            return measurement
        tps = re.search(r"tps = ([0-9.]+) \((?:without initial connection time|excluding connections)", result.stdout)
        if result.returncode != 0 or not tps:
            measurement.error = failure_text("pgbench", result)
            return measurement
        latencies, failed = self.transaction_latencies(run_folder)
        measurement.throughput = float(tps.group(1))
        measurement.p50_ms = percentile(latencies, 50)
        measurement.p99_ms = percentile(latencies, 99)
        # pgbench stamps a transaction's end lazily: when one wakeup finishes several transactions, the later
        # ones can show 0 µs. When that happens often, its percentiles say little; the table marks them.
        zeros = sum(1 for value in latencies if value == 0)
        if latencies and zeros > len(latencies) // 100:
            measurement.note = (f"{zeros:,} of {len(latencies):,} transactions logged 0 µs (pgbench's lazy "
                                "timestamps): its percentiles are not reliable here")
        measurement.details = {"transactions_logged": len(latencies), "failed_or_skipped": failed,
                               "seconds": seconds, "pgbench_output": result.stdout}
        return measurement

    @staticmethod
    def transaction_latencies(run_folder: Path):
        """Per-transaction times from pgbench's logs (one file per thread), in ms, ascending; and how many
        transactions failed or were skipped. A line: client_id transaction_no time_us script_no epoch us ..."""
        latencies, failed = [], 0
        for path in run_folder.glob("transactions.*"):
            with open(path) as log:
                for line in log:
                    fields = line.split()
                    if len(fields) < 3:
                        continue
                    if fields[2].isdigit():
                        latencies.append(int(fields[2]) / 1000.0)
                    else:
                        failed += 1
        latencies.sort()
        return latencies, failed

    def stop(self, keep_folder: bool = False) -> None:
        if self.server:
            self.server.stop()
            self.server = None
        remove_folder(self.folder, self.options, keep_folder)


RUNNERS = {
    "durable-baseline": DurableBaseline, "durable": Durable, "durable-traced": DurableTraced,
    "durable-tls": DurableTLS, "redis": Redis,
    "postgres": Postgres,
}


def remove_folder(folder: Optional[Path], options, keep: bool = False) -> None:
    if folder is None:
        return
    if keep or options.keep_temp:
        progress(f"kept {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


# MARK: packages


def missing_packages(systems) -> dict:
    """Debian packages to install, each with the commands it would provide that are missing now."""
    wanted = {}
    if "redis" in systems:
        for command, package in (("redis-server", "redis-server"), ("redis-benchmark", "redis-tools")):
            if not shutil.which(command):
                wanted.setdefault(package, []).append(command)
    if "postgres" in systems and postgres_bin_dir() is None:
        # On Debian bookworm `postgresql` pulls postgresql-15: initdb, postgres, pg_ctl and pgbench under
        # /usr/lib/postgresql/15/bin (dpkg -S), and postgresql-client-15 for psql.
        wanted["postgresql"] = ["initdb", "postgres", "pgbench", "psql"]
    if "durable-tls" in systems and not shutil.which("openssl"):
        wanted["openssl"] = ["openssl"]
    return wanted


def install_missing(systems, allowed: bool) -> None:
    wanted = missing_packages(systems)
    if not wanted:
        return
    described = "; ".join(f"{package} (for {', '.join(commands)})" for package, commands in wanted.items())
    if not allowed:
        raise SetupError(f"missing: {described}; install them or drop --no-install")
    if not shutil.which("apt-get"):
        raise SetupError(f"missing: {described}; no apt-get here: install them by hand")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    progress(f"installing from Debian: {described}")
    environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (sudo + ["apt-get", "update"], sudo + ["apt-get", "install", "-y", *wanted]):
        progress("$ " + " ".join(argv))
        if subprocess.run(argv, env=environment, stdout=sys.stderr).returncode != 0:
            raise SetupError(f"`{' '.join(argv)}` failed")
    still = missing_packages(systems)
    if still:
        raise SetupError(f"still missing after installing: {still}")


# MARK: machine


def machine_facts(options, versions: dict, load_at_start: float) -> dict:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":")[0].strip() in ("model name", "Model", "Hardware"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    uname = os.uname()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        # Other work on the machine skews every figure: the load average before we start says whether there was
        # any (at the end it mostly shows our own load).
        "load_average_at_start": load_at_start,
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "kernel": f"{uname.sysname} {uname.release} {uname.machine}",
        "temp_folder": f"{options.tmp_dir} ({filesystem_of(options.tmp_dir)})",
        "versions": versions,
        "seconds": options.seconds,
        "rounds": options.rounds,
        "callers": options.callers,
        "workloads": options.workloads,
        "systems": options.systems,
        "event_loops": options.event_loops,
    }


def filesystem_of(path: str) -> str:
    """The filesystem type the path lives on (fsync on tmpfs costs nothing: worth knowing)."""
    real, best, kind = os.path.realpath(path), "", "unknown filesystem"
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            mount = parts[1]
            if (real == mount or real.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                best, kind = mount, parts[2]
    except (OSError, IndexError):
        pass
    return kind


# MARK: table


def number(value: Optional[float], kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if kind == "rate":
        return f"{value:,.0f}"
    if kind == "ratio":
        return f"{value:.2f}×"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def ratio(ours: Optional[Measurement], theirs: Optional[Measurement], attribute: str) -> Optional[float]:
    if not ours or not theirs or ours.error or theirs.error:
        return None
    a, b = getattr(ours, attribute), getattr(theirs, attribute)
    return a / b if a is not None and b else None


def median(values) -> Optional[float]:
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def medians(results) -> dict:
    """One Measurement per system, workload and callers: with several rounds, the median of the rounds' throughputs
    and of their latencies (over the rounds that did not fail; failed when all did)."""
    rounds = {}
    for m in results:
        rounds.setdefault((m.system, m.workload, m.callers), []).append(m)
    summary = {}
    for key, measured in rounds.items():
        if len(measured) == 1:
            summary[key] = measured[0]
            continue
        succeeded = [m for m in measured if not m.error]
        m = Measurement(*key, round=0, details={"rounds": len(measured), "rounds_succeeded": len(succeeded)})
        if not succeeded:
            m.error = measured[0].error
        else:
            m.throughput = median(each.throughput for each in succeeded)
            m.p50_ms = median(each.p50_ms for each in succeeded)
            m.p99_ms = median(each.p99_ms for each in succeeded)
            m.note = "; ".join(sorted({each.note for each in succeeded if each.note})) or None
        summary[key] = m
    return summary


def round_ratios(results, numerator: str, denominator: str, workload: str, callers: int) -> list:
    """numerator's throughput over denominator's in each round where both ran without failing, by round."""
    by_round = {(m.system, m.round): m for m in results if m.workload == workload and m.callers == callers}
    values = [ratio(by_round.get((numerator, index)), by_round.get((denominator, index)), "throughput")
              for index in sorted({index for (_, index) in by_round})]
    return [value for value in values if value is not None]


def tracing_ratios(results, options) -> list:
    """For each workload and callers: the per-round throughput ratios traced/untraced (and untraced/baseline with
    a baseline), each round's pair measured seconds apart, and their median."""
    pairs = [("durable-traced", "durable")]
    if "durable-baseline" in options.systems:
        pairs.append(("durable", "durable-baseline"))
    rows = []
    for workload in options.workloads:
        for callers in options.callers:
            row = {"workload": workload, "callers": callers}
            for numerator, denominator in pairs:
                per_round = round_ratios(results, numerator, denominator, workload, callers)
                row[f"{numerator}/{denominator}"] = {"per_round": per_round, "median": median(per_round)}
            rows.append(row)
    return rows


def render_table(facts: dict, results, options) -> str:
    by_key = medians(results)
    systems = [system for system in SYSTEMS if system in options.systems and system in ("durable", "redis", "postgres")]
    header = ["workload", "callers"]
    for system in systems:
        header += [f"{system} ops/s", "p50 ms", "p99 ms"]
    comparisons = [other for other in ("redis", "postgres") if "durable" in systems and other in systems]
    header += [f"durable/{other}" for other in comparisons]
    if "redis" in comparisons:
        header.append("p50 durable/redis")

    rows = []
    for workload in options.workloads:
        for callers in options.callers:
            row = [WORKLOAD_TITLES[workload], str(callers)]
            for system in systems:
                m = by_key.get((system, workload, callers))
                if m is None or m.error:
                    row += ["failed" if m else "–", "–", "–"]
                else:
                    mark = "†" if m.note else ""
                    row += [number(m.throughput, "rate"), number(m.p50_ms, "ms") + mark, number(m.p99_ms, "ms") + mark]
            ours = by_key.get(("durable", workload, callers))
            for other in comparisons:
                row.append(number(ratio(ours, by_key.get((other, workload, callers)), "throughput"), "ratio"))
            if "redis" in comparisons:
                row.append(number(ratio(ours, by_key.get(("redis", workload, callers)), "p50_ms"), "ratio"))
            rows.append(row)

    versions = facts["versions"]
    lines = [
        f"### durable vs Redis vs PostgreSQL, {facts['date']}",
        "",
        f"- machine: {facts['nproc']} × {facts['cpu']}, {facts['kernel']}; data in {facts['temp_folder']}; "
        f"1-minute load average {facts['load_average_at_start']:.2f} before the first run",
    ]
    if "durable" in versions:
        loops = facts.get("event_loops", 0)
        lines.append(f"- durable: commit {versions['durable']}, release build, a gateway and one node, "
                     f"load from durable-load over RPC to the gateway; event loops per process: "
                     + (f"{loops} (DURABLE_EVENT_LOOPS)" if loops > 0 else "one per core")
                     + (f"; each figure the median of {options.rounds} rounds" if options.rounds > 1 else ""))
    if "redis" in versions:
        lines.append(f"- redis-server {versions['redis']}: appendonly yes, appendfsync always, no RDB snapshots; "
                     f"load from redis-benchmark")
    if "postgres" in versions:
        lines.append(f"- PostgreSQL {versions['postgres']}: fsync on, synchronous_commit on; load from pgbench "
                     f"(prepared statements, -j min(callers, 2))")
    lines += [
        f"- {facts['seconds']:g} s per run, closed loop (each caller waits for its answer); all on 127.0.0.1; "
        f"latencies measured by the client",
        "- workloads: increment over 1,000 keys (Counter objects / INCR with -r 1000 / UPDATE counters ... "
        "RETURNING v on a random id); the same on one key; a no-op call (durable-load noop / GET / SELECT 1)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if index == 0 else "---:" for index in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if "durable-traced" in options.systems or "durable-baseline" in options.systems:
        lines += ["", *render_tracing_table(by_key, results, options)]
    if "durable-tls" in options.systems and "durable" in options.systems:
        lines += ["", *render_tls_table(by_key, results, options)]
    notes = [m for m in results if m.note and not m.error]
    if notes:
        lines += [""] + [f"† {m.system} {m.workload} {m.callers}: {m.note}" for m in notes]
    failures = [m for m in results if m.error]
    if failures:
        lines += ["", "Failed runs:"] + [
            f"- {m.system} {m.workload} {m.callers}"
            + (f" round {m.round}/{options.rounds}" if options.rounds > 1 and m.system in DURABLE_SYSTEMS else "")
            + f": {m.error.splitlines()[0]}" for m in failures]
    return "\n".join(lines) + "\n"


def spread(values: list, rounds: int) -> str:
    """The range of per-round ratios, e.g. 0.91–1.03 (and how many rounds gave one, when not all did)."""
    if not values:
        return "–"
    text = f"{min(values):.2f}–{max(values):.2f}"
    return text if len(values) == rounds else f"{text} ({len(values)} of {rounds})"


def render_tls_table(by_key: dict, results, options) -> list:
    """TLS's cost: durable in plaintext beside durable with TLS on every RPC port, and their throughput ratio (with
    several rounds, medians and the range of the per-round ratios, as for tracing)."""
    rounds = options.rounds
    lines = [
        "TLS: durable in plaintext and with TLS 1.3 on every RPC port (--tls-cert, --tls-key, --tls-ca: mutual TLS "
        "between gateway and node, durable-load verifying the gateway; certificates made by openssl, P-256)"
        + (f"; median of {rounds} alternating rounds" if rounds > 1 else ""),
        "",
        "| workload | callers | plaintext ops/s | p50 ms | TLS ops/s | p50 ms | TLS/plaintext |"
        + (" range |" if rounds > 1 else ""),
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if rounds > 1 else ""),
    ]
    for workload in options.workloads:
        for callers in options.callers:
            row = [WORKLOAD_TITLES[workload], str(callers)]
            for system in ("durable", "durable-tls"):
                m = by_key.get((system, workload, callers))
                if m is None or m.error:
                    row += ["failed" if m else "–", "–"]
                else:
                    row += [number(m.throughput, "rate"), number(m.p50_ms, "ms")]
            per_round = round_ratios(results, "durable-tls", "durable", workload, callers)
            row.append(number(median(per_round), "ratio"))
            if rounds > 1:
                row.append(spread(per_round, rounds))
            lines.append("| " + " | ".join(row) + " |")
    return lines


def render_tracing_table(by_key: dict, results, options) -> list:
    """Tracing's cost: the untraced durable run beside the traced one, and their throughput ratio. With several
    rounds, each figure is the median over the rounds, each ratio the median of the per-round ratios, with their
    range beside it."""
    baseline = "durable-baseline" in options.systems
    sampling = options.trace_sampling
    rounds = options.rounds
    lines = [
        f"Tracing: durable without tracing (no --otel-endpoint) and with tracing on at {sampling:g} sampling "
        f"(--otel-endpoint to an OTLP/HTTP sink on loopback that discards, --trace-sampling {sampling:g})"
        + (f"; baseline: {options.baseline_build_dir}/durable, untraced" if baseline else ""),
    ]
    if rounds > 1:
        lines.append(
            f"Median of {rounds} rounds: the systems run side by side and each round measures each of them once, "
            f"back to back, in alternating order; a ratio is the median of the {rounds} per-round ratios (each "
            f"round's pair measured seconds apart), and `range` gives the lowest and highest of them: the noise.")
    ratio_columns = ["untraced/baseline"] if baseline else []
    ratio_columns.append("traced/untraced")
    if rounds > 1:
        ratio_columns = [column for name in ratio_columns for column in (name, "range")]
    lines += [
        "",
        "| workload | callers | " + ("baseline ops/s | p50 ms | " if baseline else "")
        + "untraced ops/s | p50 ms | traced ops/s | p50 ms | " + " | ".join(ratio_columns) + " |",
        "|---|---:|" + "---:|" * ((6 if baseline else 4) + len(ratio_columns)),
    ]
    ratios = {(row["workload"], row["callers"]): row for row in tracing_ratios(results, options)}
    for workload in options.workloads:
        for callers in options.callers:
            row = [WORKLOAD_TITLES[workload], str(callers)]
            before = by_key.get(("durable-baseline", workload, callers))
            plain = by_key.get(("durable", workload, callers))
            traced = by_key.get(("durable-traced", workload, callers))
            for m in ((before,) if baseline else ()) + (plain, traced):
                if m is None or m.error:
                    row += ["failed" if m else "–", "–"]
                else:
                    row += [number(m.throughput, "rate"), number(m.p50_ms, "ms")]
            pairs = (["durable/durable-baseline"] if baseline else []) + ["durable-traced/durable"]
            for pair in pairs:
                per_round = ratios[(workload, callers)][pair]
                row.append(number(per_round["median"], "ratio"))
                if rounds > 1:
                    row.append(spread(per_round["per_round"], rounds))
            lines.append("| " + " | ".join(row) + " |")
    return lines


# MARK: main


def comma_list(allowed):
    def parse(text: str):
        items = [item.strip() for item in text.split(",") if item.strip()]
        unknown = [item for item in items if item not in allowed]
        if unknown or not items:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)} (got {text!r})")
        return items
    return parse


def callers_list(text: str):
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        values = []
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"a comma-separated list of positive integers, not {text!r}")
    return values


def parse_options(argv):
    parser = argparse.ArgumentParser(
        description="Compare durable objects with Redis and PostgreSQL (durable writes, loopback) on this machine.",
        epilog="See the docstring at the top of benchmarks/compare.py for what each workload runs.")
    parser.add_argument("--systems", type=comma_list(SYSTEMS),
                        default=[system for system in SYSTEMS if system not in ("durable-baseline", "durable-tls")],
                        help="comma-separated, of durable,durable-traced,durable-tls,redis,postgres (default: all "
                             "but durable-tls; durable-traced is durable with tracing on at --trace-sampling, "
                             "durable-tls durable with TLS on every RPC port and mutual TLS between gateway and node)")
    parser.add_argument("--workloads", type=comma_list(WORKLOADS), default=list(WORKLOADS),
                        help="comma-separated, of increment,hot,noop (default: all)")
    parser.add_argument("--callers", type=callers_list, default=[1, 16, 64],
                        help="concurrent callers, comma-separated (default: 1,16,64)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per run (default: 5)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="rounds of the durable systems (durable-baseline, durable, durable-traced), which run "
                             "side by side: for each workload and callers, each round measures each once, back to "
                             "back, in alternating order; the tables give medians over the rounds (default: 1; "
                             "redis and postgres run once)")
    parser.add_argument("--output", default=str(REPOSITORY / "benchmarks/results/latest.md"),
                        help="the Markdown table's file; the raw figures go beside it as .json "
                             "(default: benchmarks/results/latest.md)")
    parser.add_argument("--build-dir", default=str(REPOSITORY / ".build/release"),
                        help="where durable and durable-load are (default: .build/release)")
    parser.add_argument("--tmp-dir", default=tempfile.gettempdir(),
                        help="where the servers' temporary data folders go (default: %(default)s)")
    parser.add_argument("--event-loops", type=int, default=1,
                        help="event loops (threads) in each durable process: the gateway, the node and durable-load "
                             "(DURABLE_EVENT_LOOPS; 0 for one per core, durable's default; default: 1, as the three "
                             "share the machine's cores)")
    parser.add_argument("--baseline-build-dir",
                        help="a release build of another commit (e.g. the one before tracing) whose durable runs "
                             "untraced as durable-baseline, before the others, to compare tracing off with no tracing")
    parser.add_argument("--trace-sampling", type=float, default=TRACE_SAMPLING,
                        help="the share of traces durable-traced records, 0 to 1 (default: %(default)g; 0 measures "
                             "what tracing costs a call it does not record)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the data folders and logs")
    parser.add_argument("--no-install", dest="install", action="store_false",
                        help="fail instead of installing missing Debian packages")
    options = parser.parse_args(argv)
    if options.seconds <= 0:
        parser.error("--seconds must be positive")
    if options.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not 0 <= options.trace_sampling <= 1:
        parser.error("--trace-sampling must be between 0 and 1")
    options.build_dir = str(Path(options.build_dir).resolve())  # The servers run from their own folders.
    if options.baseline_build_dir:
        options.baseline_build_dir = str(Path(options.baseline_build_dir).resolve())
        options.systems.append("durable-baseline")
    elif "durable-baseline" in options.systems:
        parser.error("durable-baseline needs --baseline-build-dir")
    options.systems = [system for system in SYSTEMS if system in options.systems]
    options.workloads = [workload for workload in WORKLOADS if workload in options.workloads]
    return options


def run_system(system: str, options, results, counter) -> str:
    """Starts one system, runs every workload at every number of callers, stops it; returns its version."""
    runner = RUNNERS[system](options)
    failed = False
    try:
        progress(f"starting {system}")
        runner.start()
        version = runner.version()
        for workload in options.workloads:
            for callers in options.callers:
                counter[0] += 1
                label = f"[{counter[0]}/{counter[1]}] {system} {workload} callers={callers}"
                progress(f"{label}: running {options.seconds:g} s")
                measurement = measure_with_steal(runner, workload, callers)
                results.append(measurement)
                progress(f"{label}: {measurement.summary()}")
        return version
    except SetupError:
        failed = True  # Its folder stays, with the logs the error points at.
        raise
    finally:
        progress(f"stopping {system}")
        with interruptions_held():  # A second Ctrl-C must not leave a server running.
            runner.stop(keep_folder=failed)


def run_durable_systems(systems: list, options, results, counter) -> dict:
    """Starts every durable system at once (each its own gateway and node, ports and folder: an idle one costs
    next to nothing), then for each workload and number of callers runs --rounds rounds, each measuring every
    system once, back to back; the order flips after every round (A B, B A, A B, ...; it carries on across
    workloads, so that with an odd number of rounds no system goes first more often overall), so that the
    machine's drift favours none. Stops them all; returns their versions."""
    runners = {system: RUNNERS[system](options) for system in systems}
    started, failed = [], None
    try:
        for system in systems:
            progress(f"starting {system}")
            started.append(system)
            try:
                runners[system].start()
            except SetupError:
                failed = system  # Its folder stays, with the logs the error points at.
                raise
        versions = {system: runners[system].version() for system in systems}
        order = list(systems)
        for workload in options.workloads:
            for callers in options.callers:
                for index in range(1, options.rounds + 1):
                    for system in order:
                        counter[0] += 1
                        label = (f"[{counter[0]}/{counter[1]}] "
                                 + (f"round {index}/{options.rounds} " if options.rounds > 1 else "")
                                 + f"{system} {workload} callers={callers}")
                        progress(f"{label}: running {options.seconds:g} s")
                        measurement = measure_with_steal(runners[system], workload, callers)
                        measurement.round = index
                        results.append(measurement)
                        progress(f"{label}: {measurement.summary()}")
                    order.reverse()
                if options.rounds > 1:
                    summary = medians(m for m in results if m.workload == workload and m.callers == callers)
                    progress(f"{workload} callers={callers}, median of {options.rounds} rounds: " + ", ".join(
                        f"{system} {number(summary[(system, workload, callers)].throughput, 'rate')} ops/s"
                        for system in systems))
        return versions
    finally:
        with interruptions_held():  # A second Ctrl-C must not leave a server running.
            for system in reversed(started):
                progress(f"stopping {system}")
                runners[system].stop(keep_folder=system == failed)


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def interruptions_held():
    """Ignores Ctrl-C and SIGTERM for the duration (each server's stop is bounded by a timeout and SIGKILL)."""
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def main(argv=None) -> int:
    options = parse_options(argv)
    signal.signal(signal.SIGTERM, raise_interrupt)  # A kill stops the servers as Ctrl-C does.
    results, versions = [], {}
    durable_systems = [system for system in options.systems if system in DURABLE_SYSTEMS]
    others = [system for system in options.systems if system not in DURABLE_SYSTEMS]
    counter = [0, (len(durable_systems) * options.rounds + len(others)) * len(options.workloads)
               * len(options.callers)]
    load_at_start = os.getloadavg()[0]
    if load_at_start > 0.5:
        progress(f"warning: the machine is busy (1-minute load average {load_at_start:.2f}): figures will be skewed")
    try:
        install_missing(options.systems, options.install)
        for system in durable_systems:
            RUNNERS[system](options).check()  # Before spending minutes on the others.
        if durable_systems:
            versions.update(run_durable_systems(durable_systems, options, results, counter))
        for system in others:
            versions[system] = run_system(system, options, results, counter)
    except SetupError as error:
        progress(f"error: {error}")
        return 1
    except KeyboardInterrupt:
        progress("interrupted: servers stopped, nothing written")
        return 130

    facts = machine_facts(options, versions, load_at_start)
    table = render_table(facts, results, options)
    print(table)
    output = Path(options.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(table)
    raw = output.with_suffix(".json")
    document = {"machine": facts, "results": [asdict(m) for m in results]}
    if "durable-traced" in options.systems or "durable-baseline" in options.systems:
        document["tracing_ratios"] = tracing_ratios(results, options)
    raw.write_text(json.dumps(document, indent=2) + "\n")
    progress(f"wrote {output} and {raw}")
    return 1 if any(m.error for m in results) else 0


if __name__ == "__main__":
    sys.exit(main())
