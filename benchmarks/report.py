"""Results as tables: on the terminal (rich), as Markdown (benchmarks/results/README.md),
and as a throughput-vs-p99 plot per workload (throughput_p99.png)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.load import LoadResult
from tfstack.atomic import atomic_write_text
from tfstack.console import print_table

COLUMNS = ["target", "model", "load", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"]
CPU_CONCURRENCY = 32
REFERENCE_WORKLOAD = "cnn"
OVERHEAD_WORKLOAD = "tiny"
NOT_PEERS = ("tfstack", "trivial")
PLOT_NAME = "throughput_p99.png"

Run = dict[str, Any]  # one entry of the report's "runs" (LoadResult.to_json() + "server")


def load_label(result: LoadResult | Run) -> str:
    get = result.get if isinstance(result, dict) else lambda key: getattr(result, key)
    return f"c={get('concurrency')}" if get("mode") == "closed" else f"{get('rate'):.0f}/s open"


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in sorted(errors.items())) or "0"


def print_results(title: str, results: Sequence[LoadResult]) -> None:
    rows = [
        [
            r.label,
            r.workload,
            load_label(r),
            round(r.throughput, 1),
            round(r.p50_ms, 2),
            round(r.p90_ms, 2),
            round(r.p99_ms, 2),
            round(r.max_ms, 2),
            _errors(r.errors),
        ]
        for r in results
    ]
    print_table(title, COLUMNS, rows)


def write_report(report: dict[str, Any], out: Path) -> None:
    """README.md and the plot from the report `benchmarks.run` wrote as bench.json."""
    atomic_write_text(out / "README.md", markdown(report))
    plot(report["runs"], out / PLOT_NAME)


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    runs = report["runs"]
    parts = [
        "# Benchmark results\n",
        f"Written by `make bench` on {report['date']}. Machine: {machine['cpus']} CPU cores "
        f"({machine['processor']}), {machine['memory_gb']} GB RAM, Python {machine['python']}, "
        f"load average at start {', '.join(f'{x:.1f}' for x in machine['load_average_at_start'])}"
        f". Every point: {report['seconds']:.0f} s measured after {report['warmup_seconds']:.0f}"
        " s of warm-up, one request = batch 1; the load generator is 2 processes of asyncio "
        "(gRPC: official stubs on grpc.aio; REST: aiohttp). The servers run one at a time, "
        f"sharing the {machine['cpus']} cores with the load generator. Plot: [{PLOT_NAME}]"
        f"({PLOT_NAME}).\n",
        _headline(report),
        _overhead(report),
        _ceiling(runs),
        _limits(report["limits"]),
        _memory(report["servers"]),
        _cpu(runs, report["seconds"], machine["cpus"]),
        _all_runs(runs),
        _notes(report),
    ]
    return "\n".join(part for part in parts if part)


def _table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    if value is None:  # a percentile of a run without one success
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def _closed(runs: list[Run], server: str, workload: str, concurrency: int) -> list[Run]:
    return [
        r
        for r in runs
        if r["server"] == server
        and r["workload"] == workload
        and r["mode"] == "closed"
        and r["concurrency"] == concurrency
    ]


def _best(runs: list[Run]) -> Run | None:
    return max(runs, key=lambda r: r["throughput"], default=None)


def _headline(report: dict[str, Any]) -> str:
    runs, limits = report["runs"], report["limits"]
    peers = sorted({r["server"] for r in runs} - set(NOT_PEERS))
    rows = []
    for workload in limits:
        for concurrency in (8, 32):
            ours = _best(_closed(runs, "tfstack", workload, concurrency))
            theirs = _best([r for p in peers for r in _closed(runs, p, workload, concurrency)])
            if ours is None:
                continue
            limit = limits[workload]["best_rows"]
            rows.append(
                [
                    workload,
                    concurrency,
                    f"{ours['throughput']:,.0f} ({ours['extra']['protocol']})",
                    ours["p99_ms"],
                    f"{theirs['label']}: {theirs['throughput']:,.0f}" if theirs else "no peers",
                    theirs["p99_ms"] if theirs else "",
                    f"{ours['throughput'] / theirs['throughput']:.2f}x" if theirs else "",
                    f"{ours['throughput'] / limit:.0%}",
                ]
            )
    columns = ["model", "conc", "tfstack req/s", "p99 ms", "best peer req/s", "its p99 ms"]
    columns += ["tfstack / best peer", "of in-process batched limit"]
    return "## tfstack-model-server vs the best peer and the limit\n\n" + _table(columns, rows)


def _overhead(report: dict[str, Any]) -> str:
    call_us = report["limits"].get(OVERHEAD_WORKLOAD, {}).get("batch1_call_us")
    rows = [
        [r["label"], r["p50_ms"] * 1e3, r["p50_ms"] * 1e3 - call_us]
        for r in report["runs"]
        if r["workload"] == OVERHEAD_WORKLOAD and r["mode"] == "closed" and r["concurrency"] == 1
    ]
    if call_us is None or not rows:
        return ""
    return (
        f"## Per-request overhead ({OVERHEAD_WORKLOAD} model, batch 1, one request in flight)\n\n"
        f"In process, one call of the SavedModel's signature takes {call_us:.0f} µs (median).\n\n"
        + _table(["target", "p50 µs", "added to the in-process call, µs"], rows)
    )


def _ceiling(runs: list[Run]) -> str:
    rows = [
        [r["workload"], load_label(r), r["throughput"], r["p99_ms"]]
        for r in runs
        if r["server"] == "trivial" and r["mode"] == "closed" and r["concurrency"] != 1
    ]
    if not rows:
        return ""
    return "## The load generator's ceiling (a gRPC server that does no work)\n\n" + _table(
        ["model (payload)", "load", "req/s", "p99 ms"], rows
    )


def _limits(limits: dict[str, Any]) -> str:
    rows = [
        [name, v["batch1_rows_per_second"], v["batch1_call_us"], v["best_batch"], v["best_rows"]]
        for name, v in limits.items()
    ]
    columns = ["model", "batch 1 rows/s", "batch 1 call µs", "best batch", "its rows/s"]
    return "## The limit: the SavedModel called in process (no RPC)\n\n" + _table(columns, rows)


def _memory(servers: dict[str, Any]) -> str:
    rows = [
        [name, s["idle_rss_bytes"] / 2**20, s["peak_rss_bytes"] / 2**20]
        for name, s in servers.items()
        if "error" not in s
    ]
    return (
        "## Memory: RSS of each server's processes (children included), all models loaded\n\n"
        + _table(["server", "idle MB", "peak under load MB"], rows)
    )


def _cpu(runs: list[Run], seconds: float, cpus: int) -> str:
    rows = []
    for r in runs:
        if r["workload"] != REFERENCE_WORKLOAD or r["mode"] != "closed":
            continue
        if r["concurrency"] != CPU_CONCURRENCY:
            continue
        available = r["extra"]["wall_seconds"] * cpus  # CPU was read over the whole run
        server, client = r["extra"]["server_cpu_seconds"], r["extra"]["client_cpu_seconds"]
        rows.append(
            [
                r["label"],
                r["throughput"],
                f"{server / available:.0%}",
                f"{client / available:.0%}",
                f"{max(0.0, 1 - (server + client) / available):.0%}",
            ]
        )
    if not rows:
        return ""
    columns = ["target", "req/s", "server CPU", "load generator CPU", "rest (others, idle)"]
    return (
        f"## Where the {cpus} cores go ({REFERENCE_WORKLOAD}, c={CPU_CONCURRENCY}), "
        "share of the run's core-seconds\n\n" + _table(columns, rows)
    )


def _all_runs(runs: list[Run]) -> str:
    rows = [
        [
            r["label"],
            r["workload"],
            load_label(r),
            r["throughput"],
            r["p50_ms"],
            r["p90_ms"],
            r["p99_ms"],
            r["max_ms"],
            _errors(r["errors"]),
            r["extra"]["server_cpu_seconds"],
            r["extra"]["client_cpu_seconds"],
            r["extra"]["server_peak_rss_bytes"] / 2**20,
        ]
        for r in runs
    ]
    columns = [*COLUMNS, "server CPU s", "client CPU s", "peak RSS MB"]
    return "## Every run\n\n" + _table(columns, rows)


def _notes(report: dict[str, Any]) -> str:
    settings = report["tfstack_settings"]
    lines = [
        "## Notes\n",
        f"- tfstack-model-server flags: `{' '.join(settings['flags'])}`, batching parameters: "
        f"`{' '.join(settings['batching_parameters'].split())}`.",
        "- Every server was checked for connections beyond 127.0.0.1 during every run "
        "(benchmarks/netcheck.py); runs listing any are marked in bench.json "
        "(`foreign_connections`).",
    ]
    lines += [f"- {note}" for note in report["notes"]]
    lines += [  # the last line says why; bench.json keeps the whole message
        f"- {name} failed: {s['error'].strip().splitlines()[-1]}"
        for name, s in report["servers"].items()
        if "error" in s
    ]
    return "\n".join(lines) + "\n"


def plot(runs: list[Run], path: Path) -> None:
    """Throughput against p99 latency, one panel per workload, one line per target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in runs))
    figure, axes = plt.subplots(1, len(workloads), figsize=(6 * len(workloads), 5), squeeze=False)
    for axis, workload in zip(axes[0], workloads, strict=True):
        closed = [r for r in runs if r["workload"] == workload and r["mode"] == "closed"]
        for label in dict.fromkeys(r["label"] for r in closed):
            points = sorted(
                (r["concurrency"], r["p99_ms"], r["throughput"])
                for r in closed
                if r["label"] == label and r["concurrency"] > 1
            )
            if not points:
                continue
            axis.plot([p[1] for p in points], [p[2] for p in points], "o-", label=label)
            for concurrency, p99, throughput in points:
                axis.annotate(f"c={concurrency}", (p99, throughput), fontsize=7)
        axis.set_xscale("log")
        axis.set_xlabel("p99 latency (ms, log)")
        axis.set_ylabel("throughput (req/s)")
        axis.set_title(workload)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
