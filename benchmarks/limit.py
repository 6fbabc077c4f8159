"""The ceiling: each benchmark SavedModel's serving_default called in process, no RPC.

At batch 1 (what one request per call costs without any server) and over batch sizes
1..64 (what a server that batches perfectly could reach): rows (images) per second.
"""

from __future__ import annotations

import tfstack  # noqa: F401  (configures TensorFlow before it is imported)

# isort: split
import math
import statistics
import time
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow as tf

from benchmarks.workloads import Workload

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


@dataclass
class Limit:
    """In-process figures of one workload."""

    workload: str
    batch1_rows_per_second: float
    batch1_call_us: float  # median time of one batch-1 call
    best_batch: int
    best_rows: float  # rows per second at best_batch
    rows_per_second_by_batch: dict[int, float]

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def measure_limit(
    workload: Workload,
    seconds_per_slice: float = 0.4,
    rounds: int = 3,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
) -> Limit:
    """Calls back to back at every batch size, in `rounds` interleaved slices: the best
    slice counts, since a ceiling is what the machine reaches when nothing else runs."""
    function = tf.saved_model.load(str(workload.saved_model_dir)).signatures["serving_default"]
    inputs = {
        size: {workload.input_name: tf.constant(np.repeat(workload.batch[:1], size, axis=0))}
        for size in batch_sizes
    }
    for size in batch_sizes:  # warm-up: traces and allocations out of the measurement
        for _ in range(3):
            function(**inputs[size])
    rates = dict.fromkeys(batch_sizes, 0.0)
    call_seconds = math.inf
    for _ in range(rounds):
        for size in batch_sizes:
            times = _timed_calls(function, inputs[size], seconds_per_slice)
            rates[size] = max(rates[size], size * len(times) / sum(times))
            if size == 1:
                call_seconds = min(call_seconds, statistics.median(times))
    best = max(rates, key=rates.get)
    return Limit(
        workload=workload.name,
        batch1_rows_per_second=rates[1],
        batch1_call_us=call_seconds * 1e6,
        best_batch=best,
        best_rows=rates[best],
        rows_per_second_by_batch=rates,
    )


def _timed_calls(function, inputs: dict[str, tf.Tensor], seconds: float) -> list[float]:
    """Durations of back-to-back calls for about `seconds` (at least 3 calls)."""
    times: list[float] = []
    deadline = time.perf_counter() + seconds
    while (started := time.perf_counter()) < deadline or len(times) < 3:
        function(**inputs)
        times.append(time.perf_counter() - started)
    return times
