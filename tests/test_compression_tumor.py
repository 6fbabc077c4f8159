"""`tfstack compress tumor`: the patch classifier pruned and int8-quantized, gated,
released, and served over gRPC as a SavedModel (PNG patches) and as TFLite (tensors)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import compression_helpers
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from serving_helpers import predict_request, running_server

from compression.adapter import load_adapter
from compression.candidate import Candidate
from compression.commands import GATE_FAILED
from compression.litert import TFLitePredictor
from models.tumor import scorers
from serving.tflite_servable import TfLiteServable
from tfstack.cli import main

STAGES = [
    {"stage": "prune", "scheme": "class-blind", "sparsity": 0.4, "steps": 30, "batch_size": 16},
    {"stage": "quantize", "mode": "int8", "representative_samples": 20},
]
MEASURE = {"batch_sizes": [1, 8], "latency_repeats": 2}


def write_config(path: Path, gates: dict) -> Path:
    return compression_helpers.write_config(path, "tumor", STAGES, gates, MEASURE)


def compress(config: Path, workdir: Path, repo: Path) -> int:
    return compression_helpers.compress("tumor", config, workdir, repo)


@pytest.fixture(scope="module")
def workdir(tumor_workdir, tmp_path_factory) -> Path:
    """A copy of the tiny trained model and its slides: the pipeline caches beside it."""
    workdir = tmp_path_factory.mktemp("compress-tumor-work")
    shutil.copytree(tumor_workdir / "tumor", workdir / "tumor")
    return workdir


@pytest.fixture(scope="module")
def released(workdir, tmp_path_factory) -> tuple[int, Path]:
    root = tmp_path_factory.mktemp("compress-tumor")
    config = write_config(
        root / "release.yaml", {"max_relative_metric_drop": 0.15, "min_size_reduction": 1.5}
    )
    assert main(["export", "tumor", "--workdir", str(workdir), "--repo", str(root / "repo")]) == 0
    return compress(config, workdir, root / "repo"), root / "repo"


def test_the_patch_auc_of_the_trained_model_beats_the_darkness_baseline(workdir):
    adapter = load_adapter("tumor", workdir)
    model = adapter.load_model()

    auc = adapter.evaluate(Candidate(model).predictor(adapter.tflite_signature))

    _, labels = adapter.heldout_cells()
    assert labels.any() and not labels.all()
    name, baseline_auc = adapter.baseline_metric()
    assert name == "darkness threshold"
    assert auc > baseline_auc + 0.1
    assert adapter.evaluate(lambda patches: np.zeros(len(patches))) == 0.5  # ties: chance


def test_students_imitate_the_teacher_stage_by_stage(workdir):
    adapter = load_adapter("tumor", workdir)
    teacher = adapter.load_model()

    student = adapter.build_student(teacher, widths=[8, 16, 32, 48])
    pairs = adapter.imitation_pairs(student, teacher)

    assert student.count_params() < teacher.count_params() / 2
    assert pairs == [
        (name, name)
        for name in [
            "stem_relu",
            "stage1_block0_pointwise_relu",
            "stage2_block0_pointwise_relu",
            "stage3_block0_pointwise_relu",
        ]
    ]
    shallow = adapter.build_student(teacher, widths=[8, 16])
    assert adapter.imitation_pairs(shallow, teacher) == [
        ("stem_relu", "stem_relu"),
        ("stage1_block0_pointwise_relu", "stage1_block0_pointwise_relu"),
    ]


def test_a_passing_pipeline_publishes_an_int8_tflite_version_with_its_report(released):
    exit_code, repo = released

    assert exit_code == 0
    version = repo / "tumor" / "2"  # 1: the original, exported before
    assert (version / "saved_model.pb").is_file()
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()
    report = json.loads((version / "compression" / "report.json").read_text())
    assert report["passed"] and report["metric"] == "patch AUC"
    baseline, pruned, final = report["stages"]
    pruned_layers = pruned["details"]["layer_sparsity"]  # depthwise kernels are not pruned
    assert set(pruned_layers) == {
        "stem",
        "stage1_block0_pointwise",
        "stage2_block0_pointwise",
        "stage3_block0_pointwise",
        "probability",
    }
    assert pruned_layers == pytest.approx(pruned["details"]["targets"], abs=0.01)
    assert len({round(value, 2) for value in pruned_layers.values()}) > 1  # class-blind
    # The tiny model is a few thousand weights: int8 scales and graph dominate its size.
    assert final["kind"] == "tflite" and final["size_reduction"] >= 1.5
    assert final["metric"] > report["reference"][1]  # still beats the darkness threshold
    assert final["metric"] >= 0.85 * baseline["metric"]  # 30 steps of pruning, then int8
    flatbuffer = (version / "model.tflite").read_bytes()
    interpreter = Interpreter(model_content=flatbuffer)
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "CONV_2D" in ops and "DEPTHWISE_CONV_2D" in ops
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops)  # builtin only
    assert sorted(p.name for p in (repo / "tumor").iterdir()) == ["1", "2"]


def test_the_released_version_serves_over_grpc_as_savedmodel_and_as_tflite(released, workdir):
    _, repo = released
    adapter = load_adapter("tumor", workdir)
    cells, labels = adapter.heldout_cells()
    picks = np.concatenate([np.flatnonzero(labels)[:3], np.flatnonzero(~labels)[:3]])
    patches = adapter.patches(cells[picks])
    config = str(repo / "models.config")

    with running_server(model_config_file=config) as (_, stubs):
        pngs = [scorers.encode_png(patch) for patch in patches]
        response = stubs.predict(predict_request("tumor", {scorers.INPUT: pngs}))
    served_float = tf.make_ndarray(response.outputs[scorers.OUTPUT])

    with running_server(model_config_file=config, prefer_tflite_model=True) as (server, stubs):
        assert isinstance(server.manager.get_servable("tumor"), TfLiteServable)
        floats = patches.astype(np.float32) / 255.0
        response = stubs.predict(predict_request("tumor", {"patches": floats}, "predict_tensor"))
    served_int8 = tf.make_ndarray(response.outputs[scorers.OUTPUT])

    local = TFLitePredictor((repo / "tumor" / "2" / "model.tflite").read_bytes(), "predict_tensor")
    assert served_int8.shape == served_float.shape == (6,)
    np.testing.assert_allclose(served_int8, local(floats), atol=1e-6)
    np.testing.assert_allclose(served_int8, served_float, atol=0.1)  # int8 vs the float model
    assert served_int8[:3].mean() > served_int8[3:].mean()  # tumor above normal


def test_a_failing_gate_exits_nonzero_and_leaves_the_repository_untouched(
    released, workdir, tmp_path, capsys
):
    _, repo = released
    before = compression_helpers.snapshot(repo)
    config = write_config(tmp_path / "strict.yaml", {"min_speedup": 1000})

    assert compress(config, workdir, repo) == GATE_FAILED

    assert compression_helpers.snapshot(repo) == before
    printed = capsys.readouterr().out
    assert "min_speedup" in printed and "FAIL" in printed
    report = json.loads((workdir / "compression" / "tumor" / "strict" / "report.json").read_text())
    assert not report["passed"] and report["published"] is None
    assert all(stage["cached"] for stage in report["stages"][1:])  # the release's stages
