"""Pipeline configs and release gates: parsing, validation, and the gate arithmetic."""

from __future__ import annotations

import pytest

from compression.config import STAGES, load_config, parse_config, shipped_config
from compression.gates import check_gates, validate_gates
from compression.measure import Measurement, ratios
from compression.prune import PruneStage
from compression.quantize import PostTrainingQuantization


def measurement(metric: float, size: int, latency: float, nonzero: int = 100) -> Measurement:
    return Measurement(
        stage="s",
        kind="keras",
        metric=metric,
        model_bytes=size,
        gzip_bytes=size // 2,
        parameters=100,
        nonzero_parameters=nonzero,
        latency_ms={1: latency, 32: latency / 4},
    )


def test_the_shipped_superres_config_parses_into_stages_and_gates():
    config = load_config(shipped_config("superres"))

    assert config.model == "superres"
    assert config.stages[0].kind == "distill"
    assert config.stages[-1].produces_tflite  # released as model.tflite beside the SavedModel
    assert config.gates["max_relative_metric_drop"] == 0.01
    assert config.batch_sizes == (1, 32)


def test_stages_are_built_from_yaml_parameters():
    config = parse_config(
        {
            "model": "superres",
            "stages": [
                {"stage": "prune", "scheme": "class-uniform", "sparsity": 0.8, "skip": ["a"]},
                {"stage": "quantize", "mode": "float16"},
            ],
        },
        name="example",
    )

    assert config.stages == (
        PruneStage(scheme="class-uniform", sparsity=0.8, skip=("a",)),
        PostTrainingQuantization(mode="float16"),
    )
    assert set(STAGES) == {"distill", "prune", "lowbit", "qat", "quantize"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model": "superres", "stages": []}, "at least one stage"),
        ({"model": "superres", "stages": [{"stage": "shrink"}]}, "unknown stage 'shrink'"),
        ({"model": "superres", "stages": [{"stage": "prune", "sparsty": 0.5}]}, "sparsty"),
        ({"model": "superres", "stages": [{"stage": "prune", "sparsity": 1.5}]}, "sparsity"),
        ({"model": "superres", "stages": [{"stage": "quantize", "mode": "int4"}]}, "mode"),
        (
            {"model": "superres", "stages": [{"stage": "quantize"}, {"stage": "prune"}]},
            "must come last",
        ),
        (
            {"model": "superres", "stages": [{"stage": "qat"}], "gates": {"min_accuracy": 1}},
            "unknown gates",
        ),
        ({"model": "superres", "stages": [{"stage": "qat"}], "colour": "red"}, "unknown keys"),
    ],
)
def test_a_bad_config_is_refused_with_a_clear_message(data, message):
    with pytest.raises(ValueError, match=message):
        parse_config(data, name="bad")


def test_gates_compare_the_final_candidate_with_the_baseline():
    baseline = measurement(metric=30.0, size=400, latency=8.0)
    candidate = measurement(metric=29.85, size=100, latency=2.0, nonzero=40)
    candidate.speedup = {1: 4.0, 32: 1.5}
    gates = validate_gates(
        {
            "max_relative_metric_drop": 0.01,
            "min_size_reduction": 4,
            "min_speedup": 2,
            "min_sparsity": 0.5,
        }
    )

    results = {r.gate: r for r in check_gates(gates, candidate, ratios(baseline, candidate, True))}

    assert results["max_relative_metric_drop"].passed  # 0.5% drop
    assert results["max_relative_metric_drop"].measured == pytest.approx(0.005)
    assert results["min_size_reduction"].passed  # exactly 4x
    assert not results["min_speedup"].passed  # batch 32 is only 1.5x
    assert results["min_speedup"].measured == 1.5
    assert results["min_sparsity"].passed  # 60% zeros


def test_a_lower_is_better_metric_counts_an_increase_as_the_drop():
    baseline = measurement(metric=0.20, size=100, latency=1.0)  # e.g. a word error rate
    worse = measurement(metric=0.21, size=100, latency=1.0)

    assert ratios(baseline, worse, higher_is_better=False)["relative_metric_drop"] == (
        pytest.approx(0.05)
    )
    assert ratios(baseline, worse, higher_is_better=True)["relative_metric_drop"] == (
        pytest.approx(-0.05)
    )


def test_a_gate_needs_a_number():
    with pytest.raises(ValueError, match="needs a number"):
        validate_gates({"min_size_reduction": "4x"})
