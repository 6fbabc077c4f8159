"""`tfstack compress speech`: prune the tiny recogniser (its BiGRUs included), release it,
and serve the release's WAV signature over gRPC with the official stubs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jiwer
import pytest
import tensorflow as tf
import yaml
from serving_helpers import predict_request, running_server

from compression.adapters import speech as speech_adapter
from models.speech import evaluate as sp_evaluate
from models.speech import train as sp_train
from models.speech.audio import wav_bytes
from tfstack.cli import main

SPARSITY = 0.5
STAGES = [
    {
        "stage": "prune",
        "scheme": "class-blind",
        "sparsity": SPARSITY,
        "steps": 40,
        "batch_size": 8,
        "learning_rate": 3e-4,
    }
]
GATES = {"min_sparsity": 0.4, "min_gzip_size_reduction": 1.2}
MEASURE = {"batch_sizes": [1, 4], "latency_repeats": 2}


@pytest.fixture(scope="module")
def released(speech_workdir, tmp_path_factory) -> tuple[int, Path, Path]:
    """(exit code, repo, workdir) of the pipeline on a copy of the tiny model, scored on
    clean held-out speech only (a fifth of the test set: test time)."""
    root = tmp_path_factory.mktemp("compress-speech")
    workdir = root / "work"
    shutil.copytree(speech_workdir / "speech", workdir / "speech")
    config = root / "speech-test.yaml"
    config.write_text(
        yaml.safe_dump({"model": "speech", "stages": STAGES, "gates": GATES, "measure": MEASURE})
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(speech_adapter.Adapter, "evaluation_conditions", ("clean",))
        args = ["--config", str(config), "--workdir", str(workdir), "--repo", str(root / "repo")]
        exit_code = main(["compress", "speech", *args, "--no-progress"])
    return exit_code, root / "repo", workdir


def test_pruning_reaches_the_class_blind_targets_per_layer_recurrent_layers_included(released):
    exit_code, repo, _ = released
    assert exit_code == 0
    report = json.loads((repo / "speech" / "1" / "compression" / "report.json").read_text())
    baseline, pruned = report["stages"]
    details = pruned["details"]
    layers = {"conv_0", "conv_1", "bigru_0", "bigru_1", "logits"}
    assert set(details["layer_sparsity"]) == layers
    for layer, target in details["targets"].items():
        assert details["layer_sparsity"][layer] == pytest.approx(target, abs=0.01)
    # class-blind: one threshold, so layers of different magnitudes lose different shares
    assert max(details["targets"].values()) - min(details["targets"].values()) > 0.1
    assert details["target_sparsity"] == pytest.approx(SPARSITY, abs=0.01)
    assert pruned["sparsity"] >= 0.45  # over every trainable weight, biases included
    assert pruned["gzip_bytes"] < baseline["gzip_bytes"] / 1.2
    # still a recogniser: better than answering the most frequent training transcript
    assert pruned["metric"] < report["reference"][1]
    assert not report["higher_is_better"]


def test_the_pruned_release_transcribes_wav_over_grpc_with_the_official_stubs(released):
    _, repo, workdir = released
    tests = [t for t in sp_evaluate.test_set(progress=False) if t.condition == "clean"][:8]
    config = str(repo / "models.config")
    with running_server(model_config_file=config) as (_, stubs):
        request = predict_request("speech", {"audio_bytes": [wav_bytes(t.waveform) for t in tests]})
        response = stubs.predict(request)
    transcripts = [t.decode() for t in tf.make_ndarray(response.outputs["transcript"])]
    references = [t.reference for t in tests]
    answer = sp_evaluate.most_frequent(sp_train.training_transcripts(workdir))
    assert jiwer.wer(references, transcripts) < jiwer.wer(references, [answer] * len(tests))
