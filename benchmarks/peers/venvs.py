"""One virtual environment per peer under .venv-peers/, built by the benchmark's setup.

The peers never enter the project's dependencies: each gets its own venv from its
locked requirements file (requirements-<venv>.txt, compiled by uv from the .in beside
it), installed with uv (pip-installed into the new venv first: it resolves and installs
these ~90-package sets several times faster than pip and shares one download cache, so
TensorFlow is fetched once for the three venvs). A venv whose stamp (the hash of its
lock file, the uv pin and the Python version) matches is reused untouched.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

from tfstack.console import console, print_table

DEFAULT_ROOT = Path(".venv-peers")
# One venv per peer program (MLServer with and without adaptive batching share one).
VENVS = ("mlserver", "kserve", "bentoml")
UV = "uv==0.13.8"
_REQUIREMENTS_DIR = Path(__file__).parent
_STAMP = ".requirements-stamp"


def requirements_file(venv: str) -> Path:
    return _REQUIREMENTS_DIR / f"requirements-{venv}.txt"


def venv_bin(root: Path, venv: str, program: str) -> Path:
    """A program installed in a peer's venv, e.g. venv_bin(root, "mlserver", "mlserver")."""
    return Path(root).absolute() / venv / "bin" / program


def is_ready(root: Path, venv: str) -> bool:
    """Whether the venv is installed from the current lock file."""
    stamp = Path(root) / venv / _STAMP
    return stamp.exists() and stamp.read_text() == _fingerprint(venv)


def setup_peers(root: Path = DEFAULT_ROOT) -> None:
    """Create, or reuse when their stamps match, the peers' venvs; prints what it did."""
    root = Path(root).absolute()
    rows = []
    for index, venv in enumerate(VENVS, start=1):
        started = time.monotonic()
        if is_ready(root, venv):
            rows.append((venv, "reused", 0.0))
            continue
        console.print(f"[bold][{index}/{len(VENVS)}][/bold] installing the {venv} venv in {root}")
        _install(root / venv, requirements_file(venv))
        (root / venv / _STAMP).write_text(_fingerprint(venv))
        rows.append((venv, "installed", time.monotonic() - started))
    print_table("Peer venvs", ("venv", "state", "seconds"), rows)


def _install(venv_dir: Path, requirements: Path) -> None:
    python = venv_dir / "bin" / "python"
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(venv_dir)])
    _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", UV])
    # uv prints its own progress (resolving, downloading, installing) to the terminal.
    uv = str(venv_dir / "bin" / "uv")
    _run(
        [uv, "pip", "install", "--python", str(python), "--requirement", str(requirements)],
        # The machine's CA store (PIP_CERT or the system's), as pip uses it.
        env={**os.environ, "UV_SYSTEM_CERTS": "1"},
    )


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    completed = subprocess.run(command, env=env, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{command[0]} exited with {completed.returncode}: {command}")


def _fingerprint(venv: str) -> str:
    digest = hashlib.sha256(requirements_file(venv).read_bytes())
    digest.update(f"{UV} {sys.version_info[:3]}".encode())
    return digest.hexdigest() + "\n"
