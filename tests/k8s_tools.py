"""The Kubernetes tools the k8s tests run: kubectl (kustomize), kubernetes-validate, checkov.

They live in their own virtualenv (`make tools`, pinned in k8s/tools-requirements.txt):
checkov's dependencies conflict with the project's pins.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "k8s"
TOOLS_BIN = Path(os.environ.get("TFSTACK_TOOLS_BIN", ROOT / ".venv-tools" / "bin"))
# Kubernetes version the manifests must be valid for (oldest minor we support).
KUBERNETES_VERSION = "1.33.0"
# What `kubectl apply -k` deploys: the serving overlays and the Jobs.
OVERLAYS = ("overlays/dev", "overlays/prod", "overlays/canary")
JOBS = ("jobs/train", "jobs/train-multiworker", "jobs/compress", "jobs/retrain-cronjob")
KUSTOMIZATIONS = OVERLAYS + JOBS


def tool(name: str) -> str:
    path = TOOLS_BIN / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `make tools` (pinned in k8s/)")
    return str(path)


def run(command: list[str], extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a tool with the tools' bin first on PATH (checkov calls kubectl itself)."""
    path = f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, **(extra_env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def render(kustomization: Path | str) -> str:
    """`kubectl kustomize DIR`: the YAML stream `kubectl apply -k DIR` would send."""
    result = run([tool("kubectl"), "kustomize", str(K8S / kustomization)])
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {kustomization} failed:\n{result.stderr}")
    return result.stdout


def documents(rendered: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def validate(manifest: Path) -> list[str]:
    """kubernetes-validate --strict problems in `manifest`. WARN (e.g. a kind it has no
    schema for, as for a removed API version) counts: its exit code alone would pass."""
    command = [tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBERNETES_VERSION]
    result = run([*command, str(manifest)])
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.startswith(("WARN", "ERROR", "FATAL"))
    ]
    if result.returncode != 0 and not problems:
        problems.append(f"kubernetes-validate exited {result.returncode}: {result.stderr}")
    return problems


def checkov(*directories: Path) -> subprocess.CompletedProcess:
    """checkov's kustomize framework over `directories`, offline, with k8s/.checkov.yaml.
    Sequential: its parallel kustomize runner shares a scratch directory between workers."""
    command = [tool("checkov"), "--config-file", str(K8S / ".checkov.yaml")]
    command += ["--framework", "kustomize", "--skip-download", "--compact", "--quiet"]
    for directory in directories:
        command += ["-d", str(directory)]
    return run(command, extra_env={"CHECKOV_PARALLELIZATION_TYPE": "none"})
