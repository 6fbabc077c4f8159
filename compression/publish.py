"""Publish a released candidate as a new version, atomically, with its report inside.

The version holds the SavedModel (the family's serving contract), `model.tflite` for a
TFLite candidate (served with `--prefer_tflite_model`), warmup requests valid for both,
and `compression/report.{json,md,png}`, written by `export.savedmodel.save_version`:
under a hidden temporary name, renamed to the next version number only when complete,
so a polling server never loads half of it, and a failure leaves the repository as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from compression.adapter import FamilyAdapter
from compression.candidate import Candidate
from export.repository import ModelRepository
from export.savedmodel import ExportedVersion, save_version
from export.tflite import TFLITE_MODEL_FILE
from export.warmup import WARMUP_FILENAME, warmup_records

REPORT_DIR = "compression"


def publish(
    repo: ModelRepository,
    adapter: FamilyAdapter,
    candidate: Candidate,
    report_files: Mapping[str, Path],
) -> ExportedVersion:
    """Write `candidate` as the next version of `adapter.name`; update models.config."""
    module, signatures = adapter.serving_module(candidate.model)
    tflite = candidate.tflite is not None
    signature, inputs = adapter.warmup_inputs(tflite=tflite)
    files = {f"{REPORT_DIR}/{name}": Path(path).read_bytes() for name, path in report_files.items()}
    if tflite:
        files[TFLITE_MODEL_FILE] = candidate.tflite
    exported = save_version(
        module,
        repo.model_dir(adapter.name),
        signatures,
        assets_extra={WARMUP_FILENAME: warmup_records(adapter.name, signature, inputs)},
        extra_files=files,
    )
    repo.write_config()
    return exported
