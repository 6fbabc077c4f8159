"""The pipeline's report: report.json (everything), report.md (tables), report.png (plots)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI
import matplotlib.pyplot as plt

from compression.gates import GateResult
from compression.measure import Measurement
from tfstack.atomic import atomic_write, atomic_write_text
from tfstack.console import write_json

JSON_FILE, MARKDOWN_FILE, PLOT_FILE = "report.json", "report.md", "report.png"


def stage_columns(batch_sizes: Sequence[int], metric: str) -> list[str]:
    latency = [f"b{size} {unit}" for size in batch_sizes for unit in ("ms", "x")]
    return ["stage", "kind", metric, "drop %", "KB", "gzip KB", "size x", "sparsity", *latency]


def stage_rows(rows: Sequence[dict], batch_sizes: Sequence[int]) -> list[tuple]:
    """Table rows from report rows ({"measurement": Measurement, "ratios": dict})."""
    table = []
    for row in rows:
        m, r = row["measurement"], row["ratios"]
        latency = []
        for size in batch_sizes:
            latency += [
                f"{m.latency_ms.get(size, float('nan')):.2f}",
                f"{m.speedup.get(size, 1.0):.2f}",
            ]
        table.append(
            (
                m.stage + (" (cached)" if m.cached else ""),
                m.kind,
                f"{m.metric:.3f}",
                f"{100 * r['relative_metric_drop']:.2f}",
                f"{m.model_bytes / 1e3:.1f}",
                f"{m.gzip_bytes / 1e3:.1f}",
                f"{r['size_reduction']:.2f}",
                f"{m.sparsity:.2f}",
                *latency,
            )
        )
    return table


def summary_columns(batch_sizes: Sequence[int], metric: str) -> list[str]:
    return [
        "stage",
        metric,
        "drop %",
        "KB",
        "size x",
        "sparsity",
        *(f"b{s} x" for s in batch_sizes),
    ]


def summary_rows(rows: Sequence[dict], batch_sizes: Sequence[int]) -> list[tuple]:
    """The terminal's narrower table: ratios only."""
    return [
        (
            m.stage + (" (cached)" if m.cached else ""),
            f"{m.metric:.3f}",
            f"{100 * r['relative_metric_drop']:.2f}",
            f"{m.model_bytes / 1e3:.1f}",
            f"{r['size_reduction']:.2f}",
            f"{m.sparsity:.2f}",
            *(f"{m.speedup.get(size, 1.0):.2f}" for size in batch_sizes),
        )
        for m, r in ((row["measurement"], row["ratios"]) for row in rows)
    ]


def gate_rows(gates: Sequence[GateResult]) -> list[tuple]:
    return [
        (g.gate, g.description, f"{g.bound:g}", f"{g.measured:.4g}", "pass" if g.passed else "FAIL")
        for g in gates
    ]


GATE_COLUMNS = ["gate", "figure", "bound", "measured", "result"]


def write_report(directory: Path, report: dict, rows: Sequence[dict], metric: str) -> dict:
    """Write the three files into `directory`; returns {file name: path}."""
    directory.mkdir(parents=True, exist_ok=True)
    json_report = {
        **report,
        "stages": [{**row["measurement"].to_json(), **row["ratios"]} for row in rows],
    }
    paths = {
        JSON_FILE: write_json(directory / JSON_FILE, json_report),
        MARKDOWN_FILE: atomic_write_text(
            directory / MARKDOWN_FILE, _markdown(report, rows, metric)
        ),
    }
    paths[PLOT_FILE] = atomic_write(
        directory / PLOT_FILE, lambda temp: _plot(rows, metric, report["batch_sizes"], temp)
    )
    return paths


def _markdown(report: dict, rows: Sequence[dict], metric: str) -> str:
    batch_sizes = report["batch_sizes"]
    lines = [
        f"# Compression report: {report['model']} ({report['config']['name']})",
        "",
        report["config"].get("description") or "",
        "",
        f"Held-out {metric}; sizes as TFLite flatbuffers (float32 for Keras stages); latency "
        "per example, median of interleaved runs, x = speedup over the baseline.",
        "",
    ]
    if report.get("reference"):
        name, value = report["reference"]
        lines += [f"Non-learned baseline ({name}): {value:.3f}.", ""]
    lines += _table(stage_columns(batch_sizes, metric), stage_rows(rows, batch_sizes))
    lines += ["", "## Gates", ""]
    gates = [GateResult(**g) for g in report["gates"]]
    lines += _table(GATE_COLUMNS, gate_rows(gates))
    verdict = "released" if report["passed"] else "not released: a gate failed"
    published = report.get("published")
    if published:
        verdict += f" as version {published['version']}"
    lines += ["", f"**Result: {verdict}.**", ""]
    return "\n".join(lines)


def _table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


def _plot(rows: Sequence[dict], metric: str, batch_sizes: Sequence[int], path: Path) -> None:
    """Quality vs size and vs latency, one point per stage (the baseline first)."""
    measurements: list[Measurement] = [row["measurement"] for row in rows]
    figure, axes = plt.subplots(1, 1 + len(batch_sizes), figsize=(5 * (1 + len(batch_sizes)), 4))
    panels = [("size (KB, TFLite flatbuffer)", [m.model_bytes / 1e3 for m in measurements])]
    # Latency relative to the baseline timed in the same rounds: load-independent.
    panels += [
        (
            f"latency at batch {size}, relative (baseline = 1)",
            [1 / m.speedup[size] for m in measurements],
        )
        for size in batch_sizes
    ]
    for axis, (label, xs) in zip(axes, panels, strict=True):
        ys = [m.metric for m in measurements]
        axis.plot(xs, ys, "-o", color="tab:blue")
        for x, y, m in zip(xs, ys, measurements, strict=True):
            axis.annotate(m.stage, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        axis.set_xlabel(label)
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
