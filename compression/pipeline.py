"""Run a compression pipeline: stages in order, measured, gated, and released or not.

`run(config, workdir, repo)` loads the family's trained model from `workdir`, measures
it (the baseline), applies each stage to the previous stage's output, measures every
candidate, checks the gates on the last one and, only if all pass, publishes it as a
new version in `repo` with its report. Nothing is written to `repo` otherwise.

Resumable: each stage's output is cached under
`<workdir>/compression/<model>/stages/NN-<stage>-<key>/`, the key hashing the trained
weights and every stage spec up to that one, so a rerun after a crash (or a config that
shares its first stages) resumes after the last completed stage. Reports go to
`<workdir>/compression/<model>/<config name>/`.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tf_keras as keras

from compression import report as reports
from compression.adapter import load_adapter
from compression.candidate import Candidate
from compression.config import PipelineConfig, load_config
from compression.gates import GateResult, check_gates
from compression.measure import (
    Measurement,
    interleaved_latency,
    latency_batches,
    measure_quality,
    ratios,
)
from compression.publish import publish
from compression.stage import StageContext
from export.repository import ModelRepository
from tfstack.atomic import atomic_write_text
from tfstack.console import console, print_table

MEASUREMENT_FILE = "measurement.json"


@dataclass
class PipelineResult:
    passed: bool
    run_dir: Path
    report: dict
    rows: list[dict]  # {"measurement": Measurement, "ratios": dict}, baseline first
    gates: list[GateResult]
    report_files: dict[str, Path] = field(default_factory=dict)
    version: int | None = None  # the published version, when the gates passed


def run(
    config: PipelineConfig | Path | str,
    workdir: Path | str,
    repo: Path | str | None = None,
    progress: bool = True,
    fresh: bool = False,
) -> PipelineResult:
    """Compress the model trained in `workdir`; publish to `repo` if every gate passes.

    `fresh` ignores (and overwrites) cached stage outputs."""
    config = config if isinstance(config, PipelineConfig) else load_config(config)
    workdir = Path(workdir)
    adapter = load_adapter(config.model, workdir)
    teacher = adapter.load_model()
    context = StageContext(adapter, teacher, progress, config.seed)
    model_dir = workdir / "compression" / config.model
    run_dir = model_dir / config.name
    signature = adapter.tflite_signature
    console.rule(f"compress {config.model} ({config.name}): {len(config.stages)} stages")

    batches = latency_batches(adapter, config.batch_sizes)
    baseline = Candidate(teacher)
    baseline_predict = baseline.predictor(signature)
    key = _fingerprint(teacher)
    measured = _baseline_quality(
        baseline, adapter, model_dir / "stages" / f"00-baseline-{key[:12]}"
    )
    timing = interleaved_latency({"baseline": baseline_predict}, batches, config.latency_repeats)
    measured.latency_ms = timing["baseline"]
    measured.speedup = dict.fromkeys(config.batch_sizes, 1.0)
    rows = [{"measurement": measured, "ratios": ratios(measured, measured, True)}]
    _print_progress(rows[-1], adapter.metric)

    candidate = baseline
    for index, stage in enumerate(config.stages, start=1):
        key = hashlib.sha256((key + json.dumps(stage.spec(), sort_keys=True)).encode()).hexdigest()
        stage_dir = model_dir / "stages" / f"{index:02d}-{stage.kind}-{key[:12]}"
        label = f"{index} {stage.kind}"
        console.print(f"[bold]stage {label}[/bold]: {stage.spec()}")
        candidate, measured = _run_stage(stage, candidate, context, stage_dir, label, fresh)
        timing = interleaved_latency(
            {"baseline": baseline_predict, "candidate": candidate.predictor(signature)},
            batches,
            config.latency_repeats,
        )
        measured.latency_ms = timing["candidate"]
        measured.speedup = {
            size: timing["baseline"][size] / timing["candidate"][size] for size in batches
        }
        base = rows[0]["measurement"]
        rows.append(
            {"measurement": measured, "ratios": ratios(base, measured, adapter.higher_is_better)}
        )
        _print_progress(rows[-1], adapter.metric)

    final = rows[-1]
    gates = check_gates(config.gates, final["measurement"], final["ratios"])
    passed = all(gate.passed for gate in gates)
    report = {
        "model": config.model,
        "config": config.to_json(),
        "metric": adapter.metric,
        "higher_is_better": adapter.higher_is_better,
        "reference": adapter.baseline_metric(),
        "batch_sizes": list(config.batch_sizes),
        "gates": [gate.to_json() for gate in gates],
        "passed": passed,
        "published": None,
    }
    files = reports.write_report(run_dir, report, rows, adapter.metric)
    result = PipelineResult(passed, run_dir, report, rows, gates, files)
    _print_summary(result, adapter.metric)
    if passed and repo is not None:
        exported = publish(ModelRepository(repo), adapter, candidate, files)
        result.version = exported.version
        report["published"] = {"version": exported.version, "path": str(exported.path)}
        result.report_files = reports.write_report(run_dir, report, rows, adapter.metric)
        console.print(
            f"[green]released[/green] {config.model} version {exported.version}: {exported.path}"
        )
    elif not passed:
        console.print("[red]not released: a gate failed[/red]; the repository is unchanged")
    console.print(f"report: {files[reports.MARKDOWN_FILE]}")
    return result


def _run_stage(stage, candidate, context, stage_dir, label, fresh):
    """Apply the stage, or load its cached output; (candidate, measurement sans latency)."""
    adapter = context.adapter
    measurement_file = stage_dir / MEASUREMENT_FILE
    if not fresh and Candidate.is_saved(stage_dir) and measurement_file.is_file():
        try:
            cached = Candidate.load(stage_dir, adapter.custom_objects())
        except (OSError, ValueError) as err:  # e.g. written by an older tfstack: redo it
            console.print(f"   [yellow]cannot resume from {stage_dir} ({err}); rerunning[/yellow]")
        else:
            console.print(f"   resumed from {stage_dir}")
            measured = Measurement.from_json(json.loads(measurement_file.read_text()))
            measured.cached, measured.seconds = True, 0.0
            return cached, measured
    started = time.monotonic()
    candidate = stage.apply(candidate, context)
    seconds = time.monotonic() - started
    measured = measure_quality(label, candidate, adapter)
    measured.seconds = round(seconds, 2)
    candidate.save(stage_dir)
    atomic_write_text(measurement_file, json.dumps(measured.to_json(), indent=2, default=str))
    return candidate, measured


def _baseline_quality(baseline: Candidate, adapter, directory: Path) -> Measurement:
    """The baseline's metric and size, cached like a stage's (they only depend on it)."""
    cached = directory / MEASUREMENT_FILE
    if cached.is_file():
        return Measurement.from_json(json.loads(cached.read_text()))
    measured = measure_quality("baseline", baseline, adapter)
    atomic_write_text(cached, json.dumps(measured.to_json(), indent=2, default=str))
    return measured


def _fingerprint(model: keras.Model) -> str:
    """The trained model's identity for cache keys: its architecture and weights."""
    digest = hashlib.sha256(model.to_json().encode())
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


def _print_progress(row: dict, metric: str) -> None:
    m, r = row["measurement"], row["ratios"]
    speedups = ", ".join(f"b{size} x{value:.2f}" for size, value in m.speedup.items())
    console.print(
        f"   {m.stage}: {metric} {m.metric:.3f} (drop {100 * r['relative_metric_drop']:.2f}%), "
        f"{m.model_bytes / 1e3:.1f} KB (x{r['size_reduction']:.2f}), "
        f"sparsity {m.sparsity:.2f}, speedup {speedups}"
        + (f", {m.seconds:.0f}s" if m.seconds else "")
    )


def _print_summary(result: PipelineResult, metric: str) -> None:
    batch_sizes = result.report["batch_sizes"]
    print_table(
        f"{result.report['model']}: compression ({result.report['config']['name']})",
        reports.summary_columns(batch_sizes, metric),
        reports.summary_rows(result.rows, batch_sizes),
    )
    if result.gates:
        print_table("release gates", reports.GATE_COLUMNS, reports.gate_rows(result.gates))
