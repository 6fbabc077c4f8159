"""Smoke test of the image and the dev overlay without a cluster (opt-in: `make test-podman`).

Builds the image with podman from a local debootstrap base, exports the tiny superres model
into a podman volume named like the overlay's PVC, runs the rendered dev overlay with
`podman kube play`, calls the server over gRPC (official stubs) and REST on 127.0.0.1,
checks the pod runs non-root on a read-only root filesystem, then stops it (SIGTERM: the
server must drain and exit 0) and runs `podman kube down`. Needs root, podman, runc and
debootstrap (`apt-get install podman runc debootstrap`); k8s/README.md records a run.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import k8s_tools
import numpy as np
import pytest
import tensorflow as tf
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from models.superres import data as sr_data
from tfstack.console import print_table, write_json

pytestmark = pytest.mark.podman

ROOT = k8s_tools.ROOT
PODMAN_DIR = ROOT / "scripts" / "podman"
BASE_IMAGE = "localhost/tfstack-base:bookworm-python3.11"
IMAGE = "localhost/tfstack:smoke"
VOLUME = "tfstack-models"  # the PVC's claim name: kube play mounts the volume of that name
# What `podman kube play` (4.3) runs; Services, the HPA, the PDB and NetworkPolicies need a
# cluster and are checked by tests/test_k8s_manifests.py instead.
PLAYABLE = {"ConfigMap", "Deployment"}
READY_SECONDS = 300
# The proxy's CA bundle, when pip must trust one to reach PyPI (the `pip_ca` build secret).
CA_BUNDLE = os.environ.get("PIP_CERT", "")


def podman(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.setdefault("CONTAINERS_CONF", str(PODMAN_DIR / "containers.conf"))
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    if result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stderr[-4000:]}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def figures() -> Iterator[dict]:
    """What the run measured; printed and written as JSON at the end."""
    measured: dict = {}
    yield measured
    print_table("podman smoke test", ["measurement", "value"], list(measured.items()))
    report = Path(os.environ.get("TFSTACK_SMOKE_REPORT", tempfile.gettempdir()))
    if report.is_dir():
        report = report / "tfstack-podman-smoke.json"
    write_json(report, measured)
    print(f"report: {report}")


@pytest.fixture(scope="module")
def image(figures) -> str:
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: apt-get install -y podman runc debootstrap")
    started = time.monotonic()
    subprocess.run([str(PODMAN_DIR / "build-base.sh"), BASE_IMAGE], check=True, timeout=1200)
    figures["base image (debootstrap + import), s"] = round(time.monotonic() - started)
    build = ["build", "--format", "docker", "--network", "host"]
    build += ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--tag", IMAGE]
    if CA_BUNDLE:
        build += ["--secret", f"id=pip_ca,src={CA_BUNDLE}"]
    started = time.monotonic()
    podman(*build, str(ROOT), timeout=3600)
    figures["image build, s"] = round(time.monotonic() - started)
    size = int(podman("image", "inspect", IMAGE, "--format", "{{.Size}}").stdout)
    figures["image size, MB"] = round(size / 1e6)
    return IMAGE


@pytest.fixture(scope="module")
def model_volume(superres_workdir, tmp_path_factory) -> Iterator[str]:
    """The tiny superres model exported into the podman volume the PVC names."""
    from tfstack.cli import main

    repo = tmp_path_factory.mktemp("repo")
    exported = ["export", "superres", "--workdir", str(superres_workdir), "--repo", str(repo)]
    assert main(exported) == 0
    podman("volume", "rm", "--force", VOLUME)
    podman("volume", "create", VOLUME)
    mountpoint = Path(podman("volume", "mount", VOLUME).stdout.strip())
    shutil.copytree(repo / "superres", mountpoint / "superres")
    podman("volume", "unmount", VOLUME)
    yield VOLUME
    podman("volume", "rm", "--force", VOLUME)


def smoke_overlay(directory: Path, grpc_port: int, rest_port: int) -> Path:
    """The dev overlay with the local image, only superres in models.config (the model this
    test exports), and the pod's ports published on 127.0.0.1."""
    (directory / "models.config").write_text(
        textwrap.dedent(
            """\
            model_config_list {
              config {
                name: "superres"
                base_path: "/models/superres"
                model_platform: "tensorflow"
                model_version_policy { latest { num_versions: 1 } }
              }
            }
            """
        )
    )
    (directory / "kustomization.yaml").write_text(
        textwrap.dedent(
            f"""\
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            namespace: tfstack-dev
            resources:
              - {os.path.relpath(k8s_tools.K8S / "overlays" / "dev", directory)}
            images:
              - name: ghcr.io/tfstack/tfstack
                newName: {IMAGE.rsplit(":", 1)[0]}
                newTag: {IMAGE.rsplit(":", 1)[1]}
            configMapGenerator:
              - name: tfstack-models-config
                behavior: replace
                files: [models.config]
            patches:
              - target: {{kind: Deployment, name: tfstack-model-server}}
                patch: |-
                  - op: replace
                    path: /spec/template/spec/containers/0/imagePullPolicy
                    value: Never
                  - op: add
                    path: /spec/template/spec/containers/0/ports/0/hostPort
                    value: {grpc_port}
                  - op: add
                    path: /spec/template/spec/containers/0/ports/0/hostIP
                    value: 127.0.0.1
                  - op: add
                    path: /spec/template/spec/containers/0/ports/1/hostPort
                    value: {rest_port}
                  - op: add
                    path: /spec/template/spec/containers/0/ports/1/hostIP
                    value: 127.0.0.1
            """
        )
    )
    played = [d for d in k8s_tools.documents(k8s_tools.render(directory)) if d["kind"] in PLAYABLE]
    assert sorted(d["kind"] for d in played) == ["ConfigMap"] * 3 + ["Deployment"]
    manifest = directory / "played.yaml"
    manifest.write_text(yaml.safe_dump_all(played))
    return manifest


def http(port: int, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except OSError:
        return 0, b""


@pytest.fixture(scope="module")
def pod(image, model_volume, tmp_path_factory, figures):
    """The dev overlay running under podman; stopped and removed afterwards."""
    grpc_port, rest_port = free_port(), free_port()
    manifest = smoke_overlay(tmp_path_factory.mktemp("overlay"), grpc_port, rest_port)
    started = time.monotonic()
    podman("kube", "play", str(manifest))
    try:
        containers = json.loads(podman("ps", "--all", "--format", "json").stdout)
        (server,) = [c for c in containers if c["Names"][0].endswith("-server")]
        deadline = time.monotonic() + READY_SECONDS
        while http(rest_port, "/v1/health/ready")[0] != 200:
            state = json.loads(podman("inspect", server["Id"]).stdout)[0]["State"]
            if not state["Running"] or time.monotonic() > deadline:
                logs = podman("logs", server["Id"]).stderr[-4000:]
                pytest.fail(f"server not ready ({state['Status']}):\n{logs}")
            time.sleep(0.5)
        figures["kube play to ready, s"] = round(time.monotonic() - started, 1)
        yield {"id": server["Id"], "pod": server["Pod"], "grpc": grpc_port, "rest": rest_port}
    finally:
        podman("kube", "down", str(manifest))
        # podman 4.3 keeps a volume per played ConfigMap after `kube down`.
        for doc in yaml.safe_load_all(manifest.read_text()):
            if doc["kind"] == "ConfigMap":
                podman("volume", "rm", "--force", doc["metadata"]["name"])


def photo_png(width: int, height: int) -> bytes:
    photo = Image.fromarray(sr_data.SKIMAGE_PHOTOS["coffee"]()).resize((width, height))
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    return buffer.getvalue()


def test_grpc_health_and_predict(pod, figures):
    with grpc.insecure_channel(f"127.0.0.1:{pod['grpc']}") as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=30
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "superres"
        request.inputs["image_bytes"].CopyFrom(tf.make_tensor_proto([photo_png(96, 64)]))
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        started = time.perf_counter()
        response = stub.Predict(request, timeout=60)
        figures["gRPC Predict 96x64 -> 192x128, ms"] = round(1e3 * (time.perf_counter() - started))
    upscaled = Image.open(io.BytesIO(response.outputs["image_bytes"].string_val[0]))
    assert upscaled.size == (192, 128)
    figures["gRPC answer"] = f"model superres v{response.model_spec.version.value}, PNG 192x128"


def test_rest_status_predict_and_metrics(pod, figures):
    status, body = http(pod["rest"], "/v1/models/superres")
    assert status == 200
    assert json.loads(body)["model_version_status"][0]["state"] == "AVAILABLE"
    request = {
        "instances": [{"image_bytes": {"b64": base64.b64encode(photo_png(40, 30)).decode()}}]
    }
    status, body = http(pod["rest"], "/v1/models/superres:predict", json.dumps(request).encode())
    assert status == 200, body
    (prediction,) = json.loads(body)["predictions"]  # one output: its value, unnamed
    png = base64.b64decode(prediction["b64"])
    assert np.asarray(Image.open(io.BytesIO(png))).shape == (60, 80, 3)
    status, metrics = http(pod["rest"], "/monitoring/prometheus/metrics")
    assert status == 200 and b":tensorflow:serving:request_count" in metrics
    figures["REST answer"] = "AVAILABLE; :predict PNG 80x60; metrics served"


def test_runs_as_non_root_on_a_read_only_root(pod):
    assert podman("exec", pod["id"], "id", "-u").stdout.strip() == "10001"
    env = {**os.environ, "CONTAINERS_CONF": str(PODMAN_DIR / "containers.conf")}
    for read_only in ("/opt/tfstack/written", "/models/written"):
        touch = subprocess.run(
            ["podman", "exec", pod["id"], "touch", read_only],
            capture_output=True,
            text=True,
            env=env,
        )
        assert touch.returncode != 0 and "Read-only file system" in touch.stderr
    podman("exec", pod["id"], "touch", "/tmp/written")  # the emptyDir is writable


def test_image_has_no_compilers_and_no_pip(image):
    look = "for tool in gcc cc c++ make pip pip3; do command -v $tool; done; true"
    found = podman("run", "--rm", "--no-healthcheck", "--entrypoint", "sh", image, "-c", look)
    assert found.stdout.split() == []


def test_image_runs_the_training_cli_as_the_jobs_do(image, figures):
    """What k8s/jobs/train runs (train, then export) on a read-only root without network;
    /work is an anonymous volume, writable by uid 10001 as an emptyDir with fsGroup is."""
    script = (
        "tfstack train superres --preset tiny --steps 50 --no-progress"
        " && tfstack export superres --repo /work/models"
    )
    started = time.monotonic()
    flags = ["--rm", "--no-healthcheck", "--read-only", "--tmpfs", "/tmp", "--volume", "/work"]
    flags += ["--network", "none", "--entrypoint", "sh"]
    result = podman("run", *flags, image, "-c", script)
    figures["train 50 steps + export in the image, s"] = round(time.monotonic() - started)
    assert "exported superres version 1 to /work/models/superres/1" in result.stdout


def test_sigterm_drains_and_exits_zero(pod, figures):
    started = time.monotonic()
    podman("pod", "stop", "--time", "30", pod["pod"])
    figures["pod stop (SIGTERM to exit), s"] = round(time.monotonic() - started, 1)
    state = json.loads(podman("inspect", pod["id"]).stdout)[0]["State"]
    assert state["ExitCode"] == 0
    logs = podman("logs", pod["id"])
    output = logs.stdout + logs.stderr
    assert "tfstack-model-server stopped" in output
    assert "Traceback" not in output, output[-6000:]
