"""Publish a released candidate as a new version, atomically, with its report inside.

The version holds the SavedModel (the family's serving contract), `model.tflite` for a
TFLite candidate (served with `--prefer_tflite_model`), warmup requests valid for both,
and `compression/report.{json,md,png}`. Like `export.savedmodel.save_version`, all of
it is written under a hidden temporary name in the model directory and renamed to the
next version number only when complete, so a polling server never loads half of it,
and a failure leaves the repository as it was.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import tensorflow as tf

from compression.adapter import FamilyAdapter
from compression.candidate import Candidate
from export.repository import ModelRepository
from export.savedmodel import (
    TEMP_PREFIX,
    ExportedVersion,
    existing_versions,
    remove_stale_temp_dirs,
)
from export.tflite import TFLITE_MODEL_FILE
from export.warmup import WARMUP_FILENAME, warmup_records

REPORT_DIR = "compression"
_RENAME_ATTEMPTS = 20


def publish(
    repo: ModelRepository,
    adapter: FamilyAdapter,
    candidate: Candidate,
    report_files: Mapping[str, Path],
) -> ExportedVersion:
    """Write `candidate` as the next version of `adapter.name`; update models.config."""
    model_dir = repo.model_dir(adapter.name)
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_dirs(model_dir)
    temp = model_dir / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    try:
        _write_version(temp, adapter, candidate, report_files)
        final = _rename_to_next_version(temp, model_dir)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    repo.write_config()
    size = sum(f.stat().st_size for f in final.rglob("*") if f.is_file())
    return ExportedVersion(model_dir, int(final.name), final, size)


def _write_version(
    directory: Path, adapter: FamilyAdapter, candidate: Candidate, report_files
) -> None:
    module, signatures = adapter.serving_module(candidate.model)
    tf.saved_model.save(module, str(directory), signatures=signatures)
    tflite = candidate.tflite is not None
    if tflite:
        (directory / TFLITE_MODEL_FILE).write_bytes(candidate.tflite)
    signature, inputs = adapter.warmup_inputs(tflite=tflite)
    warmup = directory / "assets.extra" / WARMUP_FILENAME
    warmup.parent.mkdir(parents=True, exist_ok=True)
    warmup.write_bytes(warmup_records(adapter.name, signature, inputs))
    (directory / REPORT_DIR).mkdir()
    for name, path in report_files.items():
        shutil.copyfile(path, directory / REPORT_DIR / name)
    _fsync_tree(directory)


def _rename_to_next_version(temp: Path, model_dir: Path) -> Path:
    # Another exporter may claim the same number between our look and our rename;
    # renaming onto an existing non-empty directory fails, so then try the next one.
    for _ in range(_RENAME_ATTEMPTS):
        target = model_dir / str(max(existing_versions(model_dir), default=0) + 1)
        try:
            os.rename(temp, target)
        except OSError:
            continue
        _fsync(model_dir)
        return target
    raise RuntimeError(f"could not claim a new version number in {model_dir}")


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            _fsync(Path(dirpath) / name)
        _fsync(Path(dirpath))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
