"""`make bench`: every server x workload x concurrency x protocol, the limit, the report.

In one run on this machine: the in-process limit (benchmarks.limit), then each server in
turn, alone on the machine with the load generator (2 worker processes): tfstack-model-
server with its best settings (benchmarks.tfstack_server), the trivial server (the
generator's own ceiling) and each peer (benchmarks.peers, installed in venvs of their own).
Per server: idle RSS with the models loaded, then closed-loop runs at concurrency 8 and 32
for every workload and protocol, one open-loop run on the CNN at 80% of tfstack's
measured capacity, and, for tfstack and the trivial server, the tiny model at concurrency
1 (per-request overhead). During every run: CPU seconds of server vs load generator, the
server's peak RSS and the connection check (a connection beyond 127.0.0.1 fails the run).
Writes benchmarks/results/bench.json, README.md and throughput_p99.png.

    .venv/bin/python -m benchmarks.run [--seconds 8] [--no-peers]
"""

from __future__ import annotations

import tfstack  # noqa: F401  (configures TensorFlow before it is imported)

# isort: split
import argparse
import datetime
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.limit import measure_limit
from benchmarks.load import LoadGenerator, LoadResult, LoadSpec
from benchmarks.monitor import RunMonitor, rss_bytes
from benchmarks.report import write_report
from benchmarks.target import ServerUnderTest, Target
from benchmarks.tfstack_server import BATCHING_PARAMETERS, BEST_FLAGS, TfstackServer
from benchmarks.trivial_server import TrivialServer
from benchmarks.workloads import Workload, build_workloads
from tfstack.console import console, write_json

CONCURRENCY = (8, 32)
WARMUP_SECONDS = 2.0
OPEN_LOOP_WORKLOAD = "cnn"
OPEN_LOOP_SHARE = 0.8  # of tfstack's measured capacity
OVERHEAD_WORKLOAD = "tiny"
TFSTACK = "tfstack"
TRIVIAL = "trivial"


def run_all(out: Path, workdir: Path, seconds: float = 8.0, with_peers: bool = True) -> int:
    """The whole benchmark; returns 0, or 1 if any server failed or broke a rule."""
    out.mkdir(parents=True, exist_ok=True)
    workdir = workdir.absolute()
    notes: list[str] = []
    console.print("[bold]workloads[/bold]: building the SavedModels")
    workloads = build_workloads(workdir / "models")
    console.print("[bold]limit[/bold]: in-process calls, batch sizes 1..64")
    limits = {name: measure_limit(w).to_json() for name, w in workloads.items()}
    failed = False
    try:
        peers = _peer_servers(workloads, with_peers, notes)
    except Exception as err:  # e.g. no package index: measure the rest, fail at the end
        console.print(f"[red]peers could not be set up:[/red] {err}")
        notes.append(f"Peers could not be set up: {type(err).__name__}: {err}")
        peers, failed = {}, True
    servers = {
        TFSTACK: lambda: TfstackServer(workloads, workdir / "tfstack"),
        TRIVIAL: lambda: TrivialServer(workloads),
        **peers,
    }
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "seconds": seconds,
        "warmup_seconds": WARMUP_SECONDS,
        "tfstack_settings": {"flags": list(BEST_FLAGS), "batching_parameters": BATCHING_PARAMETERS},
        "limits": limits,
        "servers": {},
        "runs": [],
        "notes": notes,
    }
    with LoadGenerator(processes=2) as load:
        open_rate = None
        for name, make_server in servers.items():
            console.print(f"[bold]{name}[/bold]")
            try:
                server_report, runs = _bench_server(
                    make_server, workloads, load, seconds, open_rate, name in (TFSTACK, TRIVIAL)
                )
            except Exception as err:  # one broken server must not hide the others' figures
                console.print(f"[red]{name} failed:[/red] {err}")
                report["servers"][name] = {"error": f"{type(err).__name__}: {err}"}
                failed = True
                continue
            report["servers"][name] = server_report
            report["runs"] += [{"server": name, **r.to_json()} for r in runs]
            failed |= any(r.extra["foreign_connections"] for r in runs)
            if name == TFSTACK:
                open_rate = OPEN_LOOP_SHARE * _capacity(runs)
    write_json(out / "bench.json", report)
    write_report(report, out)
    console.print(f"results: {out / 'bench.json'}, {out / 'README.md'}")
    return 1 if failed else 0


def _bench_server(
    make_server: Callable[[], ServerUnderTest],
    workloads: dict[str, Workload],
    load: LoadGenerator,
    seconds: float,
    open_rate: float | None,
    measure_overhead: bool,
) -> tuple[dict[str, object], list[LoadResult]]:
    runs = []
    with make_server() as server:
        idle_rss = rss_bytes(server.pids())
        for workload in workloads.values():
            for target in server.targets(workload):
                concurrency = CONCURRENCY
                if measure_overhead and workload.name == OVERHEAD_WORKLOAD:
                    concurrency = (1, *CONCURRENCY)
                for c in concurrency:
                    spec = LoadSpec(seconds=seconds, warmup_seconds=WARMUP_SECONDS, concurrency=c)
                    runs.append(_measured(load, server, target, workload, spec))
        if open_rate is None:  # tfstack itself: after its closed-loop runs, at 80% of them
            open_rate = OPEN_LOOP_SHARE * _capacity(runs)
        workload = workloads[OPEN_LOOP_WORKLOAD]
        target = server.targets(workload)[0]
        spec = LoadSpec(seconds=seconds, warmup_seconds=WARMUP_SECONDS, rate=round(open_rate))
        runs.append(_measured(load, server, target, workload, spec))
    peak = max(r.extra["server_peak_rss_bytes"] for r in runs)
    return {"label": server.label, "idle_rss_bytes": idle_rss, "peak_rss_bytes": peak}, runs


def _measured(
    load: LoadGenerator, server: ServerUnderTest, target: Target, workload: Workload, spec
) -> LoadResult:
    with RunMonitor(server.pids(), load.pids()) as monitor:
        result = load.run(target, workload, spec)
    usage = monitor.usage
    result.extra = {
        "server_cpu_seconds": usage.server_cpu_seconds,
        "client_cpu_seconds": usage.client_cpu_seconds,
        "server_peak_rss_bytes": usage.server_peak_rss_bytes,
        "wall_seconds": usage.wall_seconds,
        "foreign_connections": usage.foreign_connections,
        "protocol": target.label.rsplit(" ", 1)[-1],
    }
    console.print(
        f"  {target.label:40} {workload.name:9} {_load_name(spec):>10} "
        f"{result.throughput:8.1f} req/s  p99 {result.p99_ms:8.2f} ms  errors {result.errors}"
    )
    if usage.foreign_connections:
        console.print(f"[red]  connections beyond 127.0.0.1: {usage.foreign_connections}[/red]")
    return result


def _capacity(runs: list[LoadResult]) -> float:
    """Best closed-loop throughput on the open-loop workload over its first protocol."""
    rates = [
        r.throughput
        for r in runs
        if r.workload == OPEN_LOOP_WORKLOAD and r.mode == "closed" and r.extra["protocol"] == "grpc"
    ]
    return max(rates, default=100.0)


def _load_name(spec: LoadSpec) -> str:
    return f"c={spec.concurrency}" if spec.rate is None else f"{spec.rate:.0f}/s"


def _peer_servers(
    workloads: dict[str, Workload], with_peers: bool, notes: list[str]
) -> dict[str, Callable[[], ServerUnderTest]]:
    """The peers' servers, set up in their own venvs; none (with a note) if unavailable."""
    if not with_peers:
        notes.append("Run without peers (--no-peers).")
        return {}
    try:
        from benchmarks.peers import PEERS, peer, setup_peers
    except ImportError as err:
        notes.append(f"Run without peers: benchmarks.peers is not available ({err}).")
        return {}
    console.print("[bold]peers[/bold]: setting up their virtual environments")
    setup_peers()
    return {name: (lambda name=name: peer(name, workloads)) for name in PEERS}


def _machine() -> dict[str, object]:
    import psutil

    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/work"))
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per point")
    parser.add_argument("--no-peers", action="store_true")
    args = parser.parse_args(argv)
    return run_all(args.out, args.workdir, args.seconds, with_peers=not args.no_peers)


if __name__ == "__main__":
    sys.exit(main())
