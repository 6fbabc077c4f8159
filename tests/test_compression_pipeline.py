"""`tfstack compress`: stages, gates, an atomic release, resuming, serving the release."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import compression_helpers
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from serving_helpers import predict_request, running_server

from compression.commands import GATE_FAILED
from compression.demo import serve_demo, serve_versions
from compression.litert import TFLitePredictor
from compression.pipeline import run
from export.repository import ModelRepository
from models.superres import data as sr_data
from serving.client import ServingClient
from serving.tflite_servable import TfLiteServable
from tfstack.cli import main

STAGES = [
    {"stage": "prune", "scheme": "class-uniform", "sparsity": 0.5, "steps": 20, "batch_size": 4},
    {"stage": "quantize", "mode": "int8", "representative_samples": 20},
]
MEASURE = {"batch_sizes": [1, 4], "latency_repeats": 2}


def write_config(path: Path, gates: dict) -> Path:
    return compression_helpers.write_config(path, "superres", STAGES, gates, MEASURE)


def compress(config: Path, workdir: Path, repo: Path) -> int:
    return compression_helpers.compress("superres", config, workdir, repo)


@pytest.fixture(scope="module")
def workdir(superres_workdir, tmp_path_factory) -> Path:
    """A copy of the tiny trained model: the pipeline writes its cache beside it."""
    workdir = tmp_path_factory.mktemp("compress-work")
    shutil.copytree(superres_workdir / "superres", workdir / "superres")
    return workdir


@pytest.fixture(scope="module")
def released(workdir, tmp_path_factory) -> tuple[int, Path]:
    root = tmp_path_factory.mktemp("compress")
    config = write_config(
        root / "release.yaml", {"max_relative_metric_drop": 0.05, "min_size_reduction": 2}
    )
    assert (
        main(["export", "superres", "--workdir", str(workdir), "--repo", str(root / "repo")]) == 0
    )
    return compress(config, workdir, root / "repo"), root / "repo"


def test_a_passing_pipeline_publishes_a_version_with_its_report(released):
    exit_code, repo = released

    assert exit_code == 0
    version = repo / "superres" / "2"  # 1: the original, exported before
    assert (version / "saved_model.pb").is_file()
    assert (version / "model.tflite").is_file()
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()
    report = json.loads((version / "compression" / "report.json").read_text())
    assert report["passed"]
    assert [s["stage"] for s in report["stages"]] == ["baseline", "1 prune", "2 quantize"]
    pruned, final = report["stages"][1], report["stages"][2]
    assert pruned["sparsity"] == pytest.approx(0.5, abs=0.05)
    assert set(pruned["details"]["layer_sparsity"]) == {"feature_0", "feature_1", "subpixel_conv"}
    assert final["kind"] == "tflite" and final["size_reduction"] >= 2
    assert final["gzip_bytes"] < final["model_bytes"]
    assert set(final["latency_ms"]) == {"1", "4"} and set(final["speedup"]) == {"1", "4"}
    assert (version / "compression" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| max_relative_metric_drop |" in (version / "compression" / "report.md").read_text()
    listed = ModelRepository(repo).read_config().model_config_list.config
    assert [entry.name for entry in listed] == ["superres"]
    assert sorted(p.name for p in (repo / "superres").iterdir()) == ["1", "2"]  # no temp dirs


def test_the_released_version_serves_over_grpc_as_savedmodel_and_as_tflite(released):
    _, repo = released
    photo = sr_data.load_rgb(sr_data.Photo("coffee", "skimage/coffee", "skimage"))[:24, :32]
    png = io.BytesIO()
    Image.fromarray(photo).save(png, format="PNG")
    images = (photo.astype(np.float32) / 255.0)[None]
    config = str(repo / "models.config")

    with running_server(model_config_file=config) as (_, stubs):
        response = stubs.predict(predict_request("superres", {"image_bytes": [png.getvalue()]}))
    upscaled = Image.open(io.BytesIO(tf.make_ndarray(response.outputs["image_bytes"])[0]))
    assert upscaled.size == (64, 48)

    with running_server(model_config_file=config, prefer_tflite_model=True) as (server, stubs):
        assert isinstance(server.manager.get_servable("superres"), TfLiteServable)
        response = stubs.predict(predict_request("superres", {"images": images}, "predict_tensor"))
    served = tf.make_ndarray(response.outputs["images"])
    local = TFLitePredictor(
        (repo / "superres" / "2" / "model.tflite").read_bytes(), "predict_tensor"
    )
    assert served.shape == (1, 48, 64, 3)
    np.testing.assert_allclose(served, local(images), atol=1e-6)


def test_a_failing_gate_exits_nonzero_and_leaves_the_repository_untouched(
    released, workdir, tmp_path, capsys
):
    _, repo = released
    before = compression_helpers.snapshot(repo)
    config = write_config(tmp_path / "strict.yaml", {"min_size_reduction": 1000})

    assert compress(config, workdir, repo) == GATE_FAILED

    assert compression_helpers.snapshot(repo) == before
    printed = capsys.readouterr().out
    assert "min_size_reduction" in printed and "FAIL" in printed
    report = json.loads(
        (workdir / "compression" / "superres" / "strict" / "report.json").read_text()
    )
    assert not report["passed"] and report["published"] is None
    assert [gate["passed"] for gate in report["gates"]] == [False]
    assert all(stage["cached"] for stage in report["stages"][1:])  # the release's stages, reused


def test_a_rerun_after_a_crash_redoes_only_the_unfinished_stage(released, workdir, tmp_path):
    stages = workdir / "compression" / "superres" / "stages"
    (second,) = stages.glob("02-quantize-*")
    (second / "complete").unlink()  # as if the process died while saving stage 2

    result = run(write_config(tmp_path / "again.yaml", {}), workdir, progress=False)

    first, redone = (row["measurement"] for row in result.rows[1:])
    assert first.cached and not redone.cached
    assert (second / "complete").is_file()
    assert result.passed and result.version is None  # no repository: measured only


def test_the_demo_serves_the_release_beside_the_original(released, workdir):
    _, repo = released
    serve_versions(ModelRepository(repo), "superres", [1, 2])
    config = str(repo / "models.config")

    with (
        running_server(model_config_file=config, prefer_tflite_model=True) as (server, _),
        ServingClient(f"127.0.0.1:{server.port}") as client,
    ):
        served = serve_demo(client, workdir, "superres", original=1, compressed=2)

    assert [row[:2] for row in served.rows] == [("original", 1), ("compressed", 2)]
    scores = served.report["scores"]
    assert served.passed and scores["compressed"] > served.report["baseline"]  # beats bicubic
    assert scores["compressed"] == pytest.approx(scores["original"], abs=0.5)
