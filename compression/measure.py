"""What each stage costs and gains: task metric, size, parameters, sparsity, CPU latency.

Size is the model as a TFLite flatbuffer (float32 for Keras candidates, as converted
for TFLite ones), raw and gzip-compressed: one format for every stage, graph included,
and gzip is where pruning's zeros pay off. Latency is per example at each batch size,
the median of repeated runs, with every predictor timed in turn in each round, so a
change in machine load hits the baseline and the candidate alike.
"""

from __future__ import annotations

import gzip
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from compression.adapter import FamilyAdapter, Predict
from compression.candidate import Candidate, count_parameters

WARMUP_CALLS = 2


@dataclass
class Measurement:
    """One row of the report: a stage's candidate (or the baseline) measured."""

    stage: str
    kind: str
    metric: float
    model_bytes: int
    gzip_bytes: int
    parameters: int
    nonzero_parameters: int
    latency_ms: dict[int, float] = field(default_factory=dict)  # batch size -> ms/example
    speedup: dict[int, float] = field(default_factory=dict)  # vs the baseline, same rounds
    seconds: float = 0.0  # the stage's own run time (0 when resumed from its cache)
    cached: bool = False
    details: dict = field(default_factory=dict)

    @property
    def sparsity(self) -> float:
        return 1.0 - self.nonzero_parameters / self.parameters if self.parameters else 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "sparsity": self.sparsity}

    @classmethod
    def from_json(cls, values: Mapping) -> Measurement:
        values = {k: v for k, v in values.items() if k != "sparsity"}
        for timing in ("latency_ms", "speedup"):
            values[timing] = {int(k): v for k, v in values.get(timing, {}).items()}
        return cls(**values)


def measure_quality(stage: str, candidate: Candidate, adapter: FamilyAdapter) -> Measurement:
    """Everything but latency, which is timed against the baseline separately."""
    flatbuffer = candidate.tflite or adapter.model_bytes(candidate.model)
    parameters, nonzero = count_parameters(candidate.model)
    return Measurement(
        stage=stage,
        kind=candidate.kind,
        metric=adapter.evaluate(candidate.predictor(adapter.tflite_signature)),
        model_bytes=len(flatbuffer),
        gzip_bytes=len(gzip.compress(flatbuffer, compresslevel=9)),
        parameters=parameters,
        nonzero_parameters=nonzero,
        details=candidate.details,
    )


def interleaved_latency(
    predictors: Mapping[str, Predict], batches: Mapping[int, np.ndarray], repeats: int
) -> dict[str, dict[int, float]]:
    """Median milliseconds per example: {predictor: {batch size: ms}}."""
    timings: dict[str, dict[int, list[float]]] = {
        name: {size: [] for size in batches} for name in predictors
    }
    for size, inputs in batches.items():
        for predict in predictors.values():
            for _ in range(WARMUP_CALLS):
                predict(inputs)
        for _ in range(repeats):
            for name, predict in predictors.items():
                started = time.perf_counter()
                predict(inputs)
                timings[name][size].append(time.perf_counter() - started)
    return {
        name: {size: statistics.median(runs) * 1e3 / size for size, runs in by_size.items()}
        for name, by_size in timings.items()
    }


def ratios(baseline: Measurement, candidate: Measurement, higher_is_better: bool) -> dict:
    """Size reductions and metric drop vs the baseline (speedups are measured in pairs)."""
    drop = baseline.metric - candidate.metric
    if not higher_is_better:
        drop = -drop
    return {
        "size_reduction": baseline.model_bytes / candidate.model_bytes,
        "gzip_size_reduction": baseline.gzip_bytes / candidate.gzip_bytes,
        "metric_drop": drop,
        "relative_metric_drop": drop / abs(baseline.metric) if baseline.metric else 0.0,
    }


def latency_batches(adapter: FamilyAdapter, sizes: Sequence[int]) -> dict[int, np.ndarray]:
    return {size: adapter.latency_inputs(size) for size in sizes}
