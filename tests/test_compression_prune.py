"""Pruning: See et al.'s three schemes as per-layer targets, reached with TFMOT."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras

from compression.adapter import load_adapter
from compression.candidate import Candidate
from compression.prune import (
    MAX_LAYER_SPARSITY,
    PruneStage,
    layer_targets,
    overall_sparsity,
    prunable_kernels,
)
from compression.stage import StageContext


@pytest.fixture(scope="module")
def adapter(superres_workdir):
    return load_adapter("superres", superres_workdir)


@pytest.fixture(scope="module")
def kernels(adapter):
    return prunable_kernels(adapter.load_model(), adapter.prunable_layers)


def pruned_and_kept(kernel: np.ndarray, sparsity: float) -> tuple[float, float]:
    """(largest pruned, smallest kept) magnitude when `sparsity` of `kernel` is pruned."""
    magnitudes = np.sort(np.abs(kernel).ravel())
    cut = round(sparsity * magnitudes.size)
    return magnitudes[cut - 1], magnitudes[cut]


@pytest.mark.parametrize("scheme", ["class-blind", "class-uniform", "class-distribution"])
def test_every_scheme_reaches_the_overall_sparsity(kernels, scheme):
    targets = layer_targets(kernels, scheme, sparsity=0.6)

    assert set(targets) == {"feature_0", "feature_1", "subpixel_conv"}
    assert overall_sparsity(targets, kernels) == pytest.approx(0.6, abs=0.005)


def test_class_blind_and_class_uniform_give_different_layer_sparsities(kernels):
    uniform = layer_targets(kernels, "class-uniform", sparsity=0.6)
    blind = layer_targets(kernels, "class-blind", sparsity=0.6)

    assert set(uniform.values()) == {0.6}
    # One global threshold: layers of small weights lose far more than others (up to the
    # cap, MAX_LAYER_SPARSITY), and no kept weight is smaller than a pruned one elsewhere.
    assert max(blind.values()) - min(blind.values()) > 0.2
    below_cap = {n: s for n, s in blind.items() if s < MAX_LAYER_SPARSITY}
    largest_pruned = max(pruned_and_kept(kernels[n], s)[0] for n, s in below_cap.items())
    smallest_kept = min(pruned_and_kept(kernels[n], s)[1] for n, s in below_cap.items())
    assert largest_pruned <= smallest_kept


def test_class_distribution_thresholds_each_layer_at_lambda_sigma(kernels):
    targets = layer_targets(kernels, "class-distribution", threshold_lambda=0.5)

    for name, sparsity in targets.items():
        largest_pruned, smallest_kept = pruned_and_kept(kernels[name], sparsity)
        threshold = 0.5 * np.std(kernels[name])
        assert largest_pruned < threshold <= smallest_kept
    assert targets != layer_targets(kernels, "class-blind", sparsity=0.6)


def test_no_layer_is_pruned_beyond_the_cap_and_the_rest_make_up_for_it(kernels):
    targets = layer_targets(kernels, "class-blind", sparsity=0.6, max_layer_sparsity=0.7)

    assert max(targets.values()) <= 0.7
    assert overall_sparsity(targets, kernels) == pytest.approx(0.6, abs=0.005)


@pytest.mark.parametrize("scheme", ["class-blind", "class-uniform"])
def test_pruning_with_retraining_reaches_each_layers_target(adapter, scheme):
    teacher = adapter.load_model()
    stage = PruneStage(scheme=scheme, sparsity=0.5, steps=30, batch_size=4)

    pruned = stage.apply(Candidate(teacher), StageContext(adapter, teacher, progress=False))

    targets, achieved = pruned.details["targets"], pruned.details["layer_sparsity"]
    for name, target in targets.items():
        assert achieved[name] == pytest.approx(target, abs=0.01), name
    assert pruned.details["target_sparsity"] == pytest.approx(0.5, abs=0.005)
    assert all(type(layer).__module__.startswith("tf_keras") for layer in pruned.model.layers[:3])
    assert not any("prune" in layer.name for layer in pruned.model.layers)  # stripped
    _, bicubic = adapter.baseline_metric()
    assert adapter.evaluate(pruned.predictor(adapter.tflite_signature)) > bicubic
    assert isinstance(pruned.model, keras.Model)
