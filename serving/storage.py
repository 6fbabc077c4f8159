"""What a model's base path holds: its version directories and their fingerprints.

A version is a child directory named by a positive integer (as TensorFlow
Serving's FileSystemStoragePathSource reads it) that already contains a
`saved_model.pb` (or `.pbtxt`): a directory still being created or copied,
and temporary ones (`.tmp-...`), are not versions yet. A fingerprint of a
directory's files lets the manager retry a failed load exactly when the
directory changed, e.g. when a slow copy completed or its permissions were fixed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from serving.errors import InvalidArgumentError

SAVED_MODEL_FILENAMES = ("saved_model.pb", "saved_model.pbtxt")
_VERSION_NAME = re.compile(r"[0-9]+")

# (relative path, size, mtime in ns, ctime in ns) of every file, sorted. The ctime changes
# with a chmod or chown too, so fixing a version's permissions is a change worth a retry.
Fingerprint = tuple[tuple[str, int, int, int], ...]


def list_versions(model_name: str, base_path: str | os.PathLike) -> dict[int, Path]:
    """Version number -> directory, for every complete-looking version under `base_path`."""
    base = Path(base_path)
    try:
        children = sorted(os.listdir(base))
    except OSError as err:
        raise InvalidArgumentError(
            f"Could not find base path {base} for servable {model_name} with error {err}"
        ) from err
    versions: dict[int, Path] = {}
    for child in children:
        if not _VERSION_NAME.fullmatch(child) or int(child) <= 0:
            continue
        path = base / child
        if any((path / name).is_file() for name in SAVED_MODEL_FILENAMES):
            versions[int(child)] = path
    return versions


def fingerprint(path: Path) -> Fingerprint:
    """Identifies the directory's content without reading it: names, sizes, mtimes."""
    entries = []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            try:
                stat = os.stat(full)
            except OSError:  # removed while we looked: the next poll sees the change
                continue
            entries.append(
                (os.path.relpath(full, path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
            )
    return tuple(sorted(entries))
