"""Every overlay and Job renders with kustomize, validates strictly against the pinned
Kubernetes schemas, passes checkov, and carries config files the server can read."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import k8s_tools
import pytest


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    return {name: k8s_tools.render(name) for name in k8s_tools.KUSTOMIZATIONS}


@pytest.mark.parametrize("name", k8s_tools.KUSTOMIZATIONS)
def test_validates_strictly(rendered, name, tmp_path):
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(rendered[name])
    assert k8s_tools.documents(rendered[name])
    assert k8s_tools.validate(manifest) == []


def test_validation_counts_warn_as_failure(tmp_path):
    """A removed API version has no schema: kubernetes-validate only WARNs and exits 0."""
    manifest = tmp_path / "old-pdb.yaml"
    manifest.write_text(
        textwrap.dedent(
            """\
            apiVersion: policy/v1beta1
            kind: PodDisruptionBudget
            metadata: {name: old}
            spec: {maxUnavailable: 1, selector: {matchLabels: {app: x}}}
            """
        )
    )
    validator = k8s_tools.tool("kubernetes-validate")
    raw = k8s_tools.run([validator, "--strict", "-k", k8s_tools.KUBERNETES_VERSION, str(manifest)])
    assert raw.returncode == 0 and "WARN" in raw.stdout
    problems = k8s_tools.validate(manifest)
    assert len(problems) == 1 and problems[0].startswith("WARN")


def test_validation_rejects_unknown_fields(tmp_path):
    manifest = tmp_path / "typo.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
        "spec: {ports: [{port: 1}], selectr: {app: x}}\n"
    )
    problems = k8s_tools.validate(manifest)
    assert problems and problems[0].startswith("ERROR") and "selectr" in problems[0]


def test_checkov_passes_every_overlay_and_job():
    # The bases and the canary component are not deployable alone (no namespace, by
    # design): checkov scans what is applied, the overlays and the Jobs.
    result = k8s_tools.checkov(k8s_tools.K8S / "overlays", k8s_tools.K8S / "jobs")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "Failed checks: 0" in result.stdout
    assert "Passed checks: 0," not in result.stdout


def test_checkov_fails_a_privileged_container(tmp_path):
    """The scan has teeth: a copy of k8s/ whose server container is privileged fails it."""
    copy = tmp_path / "k8s"
    shutil.copytree(k8s_tools.K8S, copy)
    deployment = copy / "base" / "server" / "deployment.yaml"
    text = deployment.read_text()
    assert text.count("privileged: false") == 1
    deployment.write_text(text.replace("privileged: false", "privileged: true"))
    result = k8s_tools.checkov(copy / "overlays" / "dev")
    assert result.returncode != 0
    assert "CKV_K8S_16" in result.stdout  # "Container should not be privileged"


def config_maps(rendered: str) -> dict[str, dict[str, str]]:
    """Generated ConfigMap name without its hash suffix -> data."""
    return {
        doc["metadata"]["name"].rsplit("-", 1)[0]: doc["data"]
        for doc in k8s_tools.documents(rendered)
        if doc["kind"] == "ConfigMap"
    }


@pytest.mark.parametrize("name", k8s_tools.OVERLAYS)
def test_server_reads_the_generated_config_files(rendered, name, tmp_path):
    from serving import batching_config, monitoring
    from serving import config as model_config

    def written(text: str) -> Path:
        path = tmp_path / f"file{len(list(tmp_path.iterdir()))}"
        path.write_text(text)
        return path

    maps = config_maps(rendered[name])
    for key in ("tfstack-models-config", "tfstack-models-config-canary"):
        if key in maps:
            config = model_config.read_config_file(written(maps[key]["models.config"]))
            model_config.validate(config)
            served = [entry.name for entry in config.model_config_list.config]
            assert served == ["superres", "tumor", "colorize", "speech", "nmt"]
    options = batching_config.read_options(
        written(maps["tfstack-batching-config"]["batching.config"])
    )
    batching_config.validate(options)
    metrics = monitoring.read_monitoring_config(
        written(maps["tfstack-monitoring-config"]["monitoring.config"])
    )
    assert monitoring.prometheus_path(metrics) == "/monitoring/prometheus/metrics"
