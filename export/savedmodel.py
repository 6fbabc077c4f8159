"""Write a SavedModel as a new numbered version, atomically.

A server polling the model directory (TensorFlow Serving, tfstack-model-server)
loads any child whose name is a positive integer. So the SavedModel is written
under a hidden temporary name in the same directory, flushed to disk, and only
then renamed to its version number: the rename is atomic on POSIX file systems,
so a poller sees either no version or a complete one, never half of one.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

log = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-export-"
# A temp dir older than this was left by a crashed exporter and may be removed.
STALE_TEMP_SECONDS = 3600.0
_RENAME_ATTEMPTS = 20


class ExportError(RuntimeError):
    """Raised when a version could not be written; nothing partial is left behind."""


@dataclass(frozen=True)
class ExportedVersion:
    """Where a version landed and how big it is."""

    model_dir: Path
    version: int
    path: Path
    size_bytes: int


def existing_versions(model_dir: Path) -> list[int]:
    """Version numbers present in `model_dir`, ascending (what a server would load)."""
    if not model_dir.is_dir():
        return []
    versions = []
    for child in model_dir.iterdir():
        if child.is_dir() and child.name.isdigit() and int(child.name) > 0:
            versions.append(int(child.name))
    return sorted(versions)


def save_version(
    module: tf.Module,
    model_dir: Path | str,
    signatures: Mapping[str, object] | None = None,
    version: int | None = None,
    assets_extra: Mapping[str, bytes] | None = None,
    extra_files: Mapping[str, bytes] | None = None,
) -> ExportedVersion:
    """Save `module` as `model_dir/<version>/`, atomically.

    `version=None` takes the next number after the highest existing one.
    An explicit version that already exists is refused: published versions
    are immutable, clients and caches rely on that. `assets_extra` files
    (e.g. `tf_serving_warmup_requests`) go to `assets.extra/`; `extra_files` are
    other files at paths relative to the version (e.g. `model.tflite`).
    """
    model_dir = Path(model_dir).absolute()
    if version is not None and version <= 0:
        raise ValueError(f"version must be a positive integer. Received: version={version}")
    model_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_dirs(model_dir)

    temp_dir = model_dir / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    try:
        tf.saved_model.save(module, str(temp_dir), signatures=signatures)
        files = {f"assets.extra/{name}": content for name, content in (assets_extra or {}).items()}
        for name, content in {**files, **(extra_files or {})}.items():
            extra = temp_dir / name
            extra.parent.mkdir(parents=True, exist_ok=True)
            extra.write_bytes(content)
        _fsync_tree(temp_dir)
        final = _rename_into_place(temp_dir, model_dir, version)
    except BaseException as err:
        shutil.rmtree(temp_dir, ignore_errors=True)
        # Interrupts and the caller's own mistake pass through; I/O and TF errors are wrapped.
        if isinstance(err, FileExistsError) or not isinstance(err, Exception):
            raise
        raise ExportError(f"could not export a version to {model_dir}: {err}") from err
    _fsync_dir(model_dir)
    size = sum(f.stat().st_size for f in final.rglob("*") if f.is_file())
    log.info("exported %s (%.1f MB)", final, size / 1e6)
    return ExportedVersion(model_dir, int(final.name), final, size)


def remove_stale_temp_dirs(model_dir: Path, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove temp dirs abandoned by exporters that crashed long ago."""
    removed = []
    now = time.time()
    for child in model_dir.glob(f"{TEMP_PREFIX}*"):
        if child.is_dir() and now - child.stat().st_mtime > older_than:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


def _rename_into_place(temp_dir: Path, model_dir: Path, version: int | None) -> Path:
    if version is not None:
        target = model_dir / str(version)
        if target.exists():
            raise FileExistsError(f"version {version} already exists in {model_dir}")
        os.rename(temp_dir, target)
        return target
    # Another exporter may take the same number between our look and our
    # rename; os.rename onto a non-empty directory fails, so try the next.
    for _ in range(_RENAME_ATTEMPTS):
        target = model_dir / str(max(existing_versions(model_dir), default=0) + 1)
        if target.exists():
            continue
        try:
            os.rename(temp_dir, target)
            return target
        except OSError:
            continue
    raise ExportError(f"could not claim a new version number in {model_dir}")


def _fsync_tree(root: Path) -> None:
    """Flush every file and directory so a crash after rename can't expose empty files."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
