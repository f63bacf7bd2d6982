#!/usr/bin/env python3
"""What one call costs: CPU microseconds and heap allocations per call, in each process it crosses.

Starts a release `durable gateway` and one `durable node` (as benchmarks/compare.py does), and for each workload
runs `durable-load --rpc` against the gateway in a closed loop:

1. a warm-up run (objects created and resident, connections open), not measured;
2. a measured run: the CPU time (user + system) that the load generator, the gateway and the node used during it,
   divided by the calls it completed;
3. the same again with every process started under alloc-counter.so (LD_PRELOAD; see alloc-counter.c), which
   counts malloc, calloc, realloc and the aligned allocators: allocations per call in each process.

The processes run as compare.py runs them (one event loop each unless --event-loops says otherwise). The CPU pass
runs without the counter, so its figures are not slowed by it. Throughput is printed too, but this
is not a throughput benchmark (compare.py is): the figures that matter here are per call.

    make bench-cost                                           # builds release, then runs (about 1 minute)
    make bench-cost ARGS="--traced"                           # the same with tracing on at 1% sampling
    make bench-cost ARGS="--tls"                              # the same with TLS on every RPC port
    python3 benchmarks/cost-per-call/cost.py --workloads increment --callers 64 --seconds 4

Standard library only; needs a C compiler for the counter (make deps installs one).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import compare  # noqa: E402  (the server set-up is compare.py's)

PROCESSES = ("durable-load", "gateway", "node")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a running process has used, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime and stime, fields 14 and 15 of stat(5)


def allocations(pid: int) -> int:
    """The allocation count alloc-counter.so keeps for a process (0 when it was not loaded there)."""
    try:
        return int.from_bytes(Path(f"/dev/shm/alloc-count-{pid}").read_bytes()[:8], "little")
    except OSError:
        return 0


def build_counter(folder: Path) -> Path:
    library = folder / "alloc-counter.so"
    result = subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", library, HERE / "alloc-counter.c"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise compare.SetupError(f"could not build alloc-counter.so:\n{result.stderr}")
    return library


def run_load(durable: compare.Durable, workload: str, callers: int, seconds: float, warmup: bool):
    """Runs durable-load once; returns (its JSON figures, its CPU seconds, its allocation count)."""
    report = durable.folder / f"cost-{workload}-{callers}.json"
    argv = [str(part) for part in [
        durable.load, "--rpc", durable.rpc_address, "--workload", workload, "--callers", callers,
        "--seconds", f"{seconds:g}", "--warmup", "0", "--json", report, "--prefix", "cost",
        *durable.load_arguments(), *(["--objects", compare.KEYS] if workload == "increment" else [])]]
    # durable.environment: the keys of this gateway (and DURABLE_EVENT_LOOPS, and LD_PRELOAD when counting).
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=durable.environment)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise compare.SetupError(f"durable-load exited with {process.returncode}:\n{output.decode()[-2000:]}")
    figures = json.loads(report.read_text())
    count = allocations(process.pid)
    Path(f"/dev/shm/alloc-count-{process.pid}").unlink(missing_ok=True)
    if not warmup and sum((figures.get("errors") or {}).values()):
        compare.progress(f"  {workload}: calls failed: {figures.get('errors')}")
    return figures, usage.ru_utime + usage.ru_stime, count


def measure(options, counter_library) -> dict:
    """One pass over the workloads on a fresh gateway and node; with counter_library, counts allocations."""
    if counter_library:
        os.environ["LD_PRELOAD"] = str(counter_library)
    runner = compare.DurableTLS if options.tls else compare.DurableTraced if options.traced else compare.Durable
    durable = runner(options)
    results = {}
    try:
        # start() copies our environment (LD_PRELOAD included) into durable.environment, with this gateway's keys:
        # the gateway, the node and every durable-load run get it.
        durable.start()
        servers = {"gateway": durable.servers[0].process.pid, "node": durable.servers[1].process.pid}
        for workload in options.workloads:
            for callers in options.callers:
                run_load(durable, workload, callers, options.warmup, warmup=True)
                before = {name: (cpu_seconds(pid), allocations(pid)) for name, pid in servers.items()}
                figures, load_cpu, load_allocations = run_load(durable, workload, callers, options.seconds,
                                                               warmup=False)
                after = {name: (cpu_seconds(pid), allocations(pid)) for name, pid in servers.items()}
                calls = figures["completed"]
                row = {"calls": calls, "throughput": figures["throughput"],
                       "p50_ms": figures["latency_ms"]["p50"], "p99_ms": figures["latency_ms"]["p99"],
                       "cpu_us": {"durable-load": load_cpu * 1e6 / calls},
                       "allocations": {"durable-load": load_allocations / calls}}
                for name in servers:
                    row["cpu_us"][name] = (after[name][0] - before[name][0]) * 1e6 / calls
                    row["allocations"][name] = (after[name][1] - before[name][1]) / calls
                results[(workload, callers)] = row
                kind = "allocations" if counter_library else "cpu"
                compare.progress(f"{workload} callers={callers} ({kind} pass): {calls} calls, "
                                 f"{figures['throughput']:,.0f}/s, " + ", ".join(
                                     f"{name} {row[kind if kind == 'allocations' else 'cpu_us'][name]:.1f}"
                                     for name in PROCESSES))
    finally:
        os.environ.pop("LD_PRELOAD", None)
        durable.stop()
        for pid_file in Path("/dev/shm").glob("alloc-count-*"):
            pid_file.unlink(missing_ok=True)
    return results


def table(cpu: dict, counted: dict) -> str:
    lines = ["| workload | callers | calls/s | " + " | ".join(f"{name} µs" for name in PROCESSES)
             + " | total µs | " + " | ".join(f"{name} allocs" for name in PROCESSES) + " | total allocs |",
             "|---|---:|---:|" + "---:|" * (2 * len(PROCESSES) + 2)]
    for key, row in cpu.items():
        allocated = counted.get(key, {}).get("allocations", {})
        cells = [key[0], str(key[1]), f"{row['throughput']:,.0f}"]
        cells += [f"{row['cpu_us'][name]:.1f}" for name in PROCESSES]
        cells.append(f"{sum(row['cpu_us'].values()):.1f}")
        cells += [f"{allocated[name]:.1f}" if name in allocated else "–" for name in PROCESSES]
        cells.append(f"{sum(allocated.values()):.1f}" if allocated else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="CPU µs and allocations per call in each process a call crosses.")
    parser.add_argument("--workloads", type=compare.comma_list(compare.WORKLOADS), default=list(compare.WORKLOADS))
    parser.add_argument("--callers", type=compare.callers_list, default=[64])
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds measured per run (default: 4)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per run (default: 1)")
    parser.add_argument("--build-dir", default=str(compare.REPOSITORY / ".build/release"))
    parser.add_argument("--event-loops", type=int, default=1,
                        help="event loops in each durable process (DURABLE_EVENT_LOOPS; 0 for one per core; "
                             "default: 1, as in compare.py)")
    parser.add_argument("--traced", action="store_true",
                        help="run the gateway and the node with tracing on, as compare.py's durable-traced does "
                             "(spans to an OTLP sink on loopback)")
    parser.add_argument("--trace-sampling", type=float, default=compare.TRACE_SAMPLING,
                        help="with --traced, the share of traces recorded, 0 to 1 (default: %(default)g)")
    parser.add_argument("--tls", action="store_true",
                        help="run the gateway and the node with TLS on every RPC port, as compare.py's durable-tls does")
    parser.add_argument("--no-allocations", dest="allocations", action="store_false",
                        help="skip the allocation-counting pass")
    options = parser.parse_args(argv)
    if not 0 <= options.trace_sampling <= 1:
        parser.error("--trace-sampling must be between 0 and 1")
    if options.tls and options.traced:
        parser.error("--tls and --traced measure one thing each: choose one")
    options.tmp_dir, options.keep_temp = tempfile.gettempdir(), False
    options.build_dir = str(Path(options.build_dir).resolve())
    options.workloads = [workload for workload in compare.WORKLOADS if workload in options.workloads]
    with tempfile.TemporaryDirectory(prefix="cost-per-call-") as folder:
        cpu = measure(options, None)
        counted = measure(options, build_counter(Path(folder))) if options.allocations else {}
    print(table(cpu, counted))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except compare.SetupError as error:
        print(f"cost.py: {error}", file=sys.stderr)
        sys.exit(1)
