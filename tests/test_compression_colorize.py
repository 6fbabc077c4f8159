"""`tfstack compress colorize`: both stages as one core, quantized, gated, released, and
served over gRPC as a SavedModel (gray PNG in, colour PNG out) and as TFLite (tensors)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import compression_helpers
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from PIL import Image
from serving_helpers import predict_request, running_server

from compression.adapter import load_adapter
from compression.candidate import Candidate
from compression.commands import GATE_FAILED
from compression.litert import TFLitePredictor
from models.colorize import data as cz_data
from models.colorize import images as cz_images
from models.superres import data as photos
from serving.tflite_servable import TfLiteServable
from tfstack.cli import main

STAGES = [{"stage": "quantize", "mode": "dynamic"}]
MEASURE = {"batch_sizes": [1, 4], "latency_repeats": 2}


def write_config(path: Path, gates: dict) -> Path:
    return compression_helpers.write_config(path, "colorize", STAGES, gates, MEASURE)


def compress(config: Path, workdir: Path, repo: Path) -> int:
    return compression_helpers.compress("colorize", config, workdir, repo)


def heldout_photo() -> tf.Tensor:
    """A held-out colour photo cut to 96x128: RGB in [0, 1]."""
    _, heldout = cz_data.colour_photos(photos.DEBIAN_ROOTS)
    return tf.convert_to_tensor(heldout[0][1][:96, :128], tf.float32) / 255.0


@pytest.fixture(scope="module")
def workdir(colorize_workdir, tmp_path_factory) -> Path:
    """A copy of the tiny trained model: the pipeline writes its cache beside it."""
    workdir = tmp_path_factory.mktemp("compress-colorize-work")
    shutil.copytree(colorize_workdir / "colorize", workdir / "colorize")
    return workdir


@pytest.fixture(scope="module")
def released(workdir, tmp_path_factory) -> tuple[int, Path]:
    root = tmp_path_factory.mktemp("compress-colorize")
    config = write_config(
        root / "release.yaml", {"max_relative_metric_drop": 0.01, "min_size_reduction": 2.5}
    )
    repo = str(root / "repo")
    assert main(["export", "colorize", "--workdir", str(workdir), "--repo", repo]) == 0
    return compress(config, workdir, root / "repo"), root / "repo"


def test_the_core_colours_a_photo_as_the_family_colorizer_does(workdir):
    adapter = load_adapter("colorize", workdir)
    photo = heldout_photo()

    core = Candidate(adapter.load_model()).predictor(adapter.tflite_signature)
    ours = adapter.colorize(core, photo, adapter.core_input(photo))

    np.testing.assert_allclose(
        ours.numpy(), adapter.trained.colorizer.colorize(photo).numpy(), atol=2e-3
    )


def test_a_half_width_student_survives_the_stage_cache(workdir, tmp_path):
    adapter = load_adapter("colorize", workdir)
    teacher = adapter.load_model()
    student = adapter.build_student(teacher, chroma_filters=[8, 16, 32], refine_filters=8)
    lightness = adapter.core_input(heldout_photo())

    loaded = Candidate.load(Candidate(student).save(tmp_path / "stage"), adapter.custom_objects())

    assert student.count_params() < teacher.count_params() / 3
    np.testing.assert_allclose(loaded.model(lightness), student(lightness), atol=1e-5)


def test_a_passing_pipeline_publishes_a_tflite_version_with_its_report(released):
    exit_code, repo = released

    assert exit_code == 0
    version = repo / "colorize" / "2"  # 1: the original, exported before
    assert (version / "saved_model.pb").is_file()
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()
    report = json.loads((version / "compression" / "report.json").read_text())
    assert report["passed"] and report["metric"] == "PSNR RGB (dB)"
    baseline, final = report["stages"]
    assert final["kind"] == "tflite" and final["size_reduction"] >= 2.5
    assert final["metric"] == pytest.approx(baseline["metric"], abs=0.1)
    assert final["metric"] > report["reference"][1]  # still beats the mean chroma
    interpreter = Interpreter(model_content=(version / "model.tflite").read_bytes())
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "CONV_2D" in ops and "RESIZE_BILINEAR" in ops
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops)  # builtin only
    assert sorted(p.name for p in (repo / "colorize").iterdir()) == ["1", "2"]


def test_the_released_version_serves_over_grpc_as_savedmodel_and_as_tflite(released, workdir):
    _, repo = released
    adapter = load_adapter("colorize", workdir)
    photo = heldout_photo()
    gray = np.asarray(Image.fromarray(np.uint8(photo.numpy() * 255)).convert("L"))
    lightness = adapter.core_input(photo)
    config = str(repo / "models.config")

    with running_server(model_config_file=config) as (_, stubs):
        png = cz_images.encode_png(gray)
        colour = stubs.predict(predict_request("colorize", {"image_bytes": [png]}))
        tensor = stubs.predict(
            predict_request("colorize", {"lightness": lightness}, "predict_tensor")
        )
    coloured = Image.open(io.BytesIO(tf.make_ndarray(colour.outputs["image_bytes"])[0]))
    assert coloured.mode == "RGB" and coloured.size == (128, 96)
    served_float = tf.make_ndarray(tensor.outputs["ab"])

    with running_server(model_config_file=config, prefer_tflite_model=True) as (server, stubs):
        assert isinstance(server.manager.get_servable("colorize"), TfLiteServable)
        response = stubs.predict(
            predict_request("colorize", {"lightness": lightness}, "predict_tensor")
        )
    served_int8 = tf.make_ndarray(response.outputs["ab"])

    local = TFLitePredictor(
        (repo / "colorize" / "2" / "model.tflite").read_bytes(), "predict_tensor"
    )
    assert served_int8.shape == served_float.shape == (*lightness.shape[:3], 2)
    np.testing.assert_allclose(served_int8, local(lightness), atol=1e-4)
    assert np.abs(served_int8 - served_float).mean() < 1.0  # ab units: int8 weights vs float


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
        (workdir / "compression" / "colorize" / "strict" / "report.json").read_text()
    )
    assert not report["passed"] and report["published"] is None
    assert all(stage["cached"] for stage in report["stages"][1:])  # the release's stage
