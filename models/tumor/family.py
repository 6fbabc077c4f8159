"""The tumor family as the CLI and demo see it (see `models/__init__.py`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from models.evaluation import Evaluation, ServedResult
from models.training import has_checkpoint, preset_config
from models.tumor import baseline, overlay, scorers, slide_io, sources
from models.tumor import evaluate as tumor_evaluate
from models.tumor import signatures as tumor_signatures
from models.tumor import train as tumor_train
from tfstack.atomic import atomic_write_text

NAME = "tumor"
PRESETS = tumor_train.PRESETS
DEMO_PRESET = "demo"
WARMUP_CENTRE = (1024, 1600)  # (x, y) of epidermis in the real slide's level 0
WARMUP_SIDE = 64
OVERLAYS_IN_DEMO = 2
PROBABILITIES_FILE = "tumor_probabilities.json"


def train(workdir: Path, preset: str = "demo", progress: bool = True, steps: int | None = None):
    """Train from a preset (optionally with a different step count); returns the Keras model."""
    config = preset_config(PRESETS, preset, steps)
    return tumor_train.train(config, Path(workdir), progress=progress)


def is_trained(workdir: Path) -> bool:
    return has_checkpoint(tumor_train.load_trained, workdir)


def evaluate(workdir: Path, progress: bool = True) -> Evaluation:
    """FROC and slide AUC of the model vs the darkness threshold on held-out slides."""
    model, config = tumor_train.load_trained(Path(workdir))
    records = tumor_train.slide_set(Path(workdir), config, "heldout", progress)
    results = tumor_evaluate.compare_detectors(
        records,
        {"model": scorers.keras_scorer(model), "baseline": baseline.darkness_scores},
        config.patch_size,
        config.stride,
        progress,
    )
    return _evaluation(results["model"], results["baseline"], len(records))


def serving_module(workdir: Path) -> tuple[tf.Module, dict]:
    model, _ = tumor_train.load_trained(Path(workdir))
    module = tumor_signatures.TumorPatchModule(model)
    return module, module.signatures()


def warmup_inputs() -> dict[str, list[bytes]]:
    """A serving_default request for export's warmup file: one real patch of the SVS."""
    x, y = WARMUP_CENTRE
    with slide_io.open_slide(sources.data_file(sources.NORMAL_SLIDE)) as slide:
        patch = slide_io.read_region(
            slide, x - WARMUP_SIDE // 2, y - WARMUP_SIDE // 2, WARMUP_SIDE, WARMUP_SIDE
        )
    return {scorers.INPUT: [scorers.encode_png(patch)]}


def request_inputs(paths: list[Path]) -> dict[str, np.ndarray]:
    """Patch files (PNG/JPEG) go to the server as they are: the model decodes them."""
    return {scorers.INPUT: np.array([Path(p).read_bytes() for p in paths], dtype=object)}


def save_outputs(outputs: dict[str, np.ndarray], paths: list[Path], out_dir: Path) -> list[Path]:
    """One JSON file: patch file -> tumor probability."""
    probabilities = {
        str(path): float(p) for path, p in zip(paths, outputs[scorers.OUTPUT], strict=True)
    }
    target = Path(out_dir) / PROBABILITIES_FILE
    atomic_write_text(target, json.dumps(probabilities, indent=2) + "\n")
    return [target]


def serve_demo(client, workdir: Path) -> ServedResult:
    """Scan the held-out slides through the server (PNG patches over gRPC) and with the
    baseline; FROC and slide AUC of each, heatmap overlays of the first tumor slides."""
    workdir = Path(workdir)
    _, config = tumor_train.load_trained(workdir)
    records = tumor_train.slide_set(workdir, config, "heldout", progress=False)
    images: list[str] = []

    def save_overlay(name: str, record, result) -> None:
        if name == "model" and record.has_tumor and len(images) < OVERLAYS_IN_DEMO:
            path = workdir / f"tumor_heatmap_{record.name}.png"
            overlay.heatmap_overlay(
                record.path, result.heatmap, result.detections, record.labels()
            ).save(path)
            images.append(str(path))

    started = time.perf_counter()
    results = tumor_evaluate.compare_detectors(
        records,
        {"model": scorers.served_scorer(client, NAME), "baseline": baseline.darkness_scores},
        config.patch_size,
        config.stride,
        progress=False,
        on_scan=save_overlay,
    )
    seconds = time.perf_counter() - started
    model, base = results["model"], results["baseline"]
    evaluation = _evaluation(model, base, len(records))
    patches = sum(s["patches"] for s in model["per_slide"])
    served_seconds = sum(s["seconds"] for s in model["per_slide"])
    passed = model["froc"] > base["froc"] and model["slide_auc"] >= base["slide_auc"]
    return ServedResult(
        family=NAME,
        title=f"tumor over gRPC: {len(records)} held-out slides, {model['lesions']} lesions",
        columns=["metric", "served model", "baseline"],
        rows=[*evaluation.rows, ("patches per second over gRPC", patches / served_seconds, "")],
        summary=(
            f"FROC {model['froc']:.3f} vs baseline {base['froc']:.3f}, slide AUC "
            f"{model['slide_auc']:.3f} vs {base['slide_auc']:.3f} ({patches} patches over gRPC)"
        ),
        passed=passed,
        report={**evaluation.to_json(), "seconds": round(seconds, 3)},
        images=images,
    )


def _evaluation(model: dict, base: dict, slides: int) -> Evaluation:
    rows = [
        ("FROC score (1/4-8 FP per slide)", model["froc"], base["froc"]),
        ("slide ROC AUC", model["slide_auc"], base["slide_auc"]),
        (
            "sensitivity @ 1 FP/slide",
            model["sensitivity_at"]["1.0"],
            base["sensitivity_at"]["1.0"],
        ),
        (
            "sensitivity @ 8 FP/slide",
            model["sensitivity_at"]["8.0"],
            base["sensitivity_at"]["8.0"],
        ),
    ]
    return Evaluation(
        family=NAME,
        baseline="darkness threshold",
        metrics={
            "model_froc": model["froc"],
            "baseline_froc": base["froc"],
            "model_slide_auc": model["slide_auc"],
            "baseline_slide_auc": base["slide_auc"],
            "slides": float(slides),
            "lesions": float(model["lesions"]),
        },
        rows=rows,
        details={"model": model, "baseline": base},
    )
