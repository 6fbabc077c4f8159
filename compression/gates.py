"""Release gates: thresholds from the config, checked on the final candidate.

Every gate compares one figure of the candidate (relative to the baseline) with the
configured bound; the candidate is released only when all of them pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass

from compression.measure import Measurement


@dataclass(frozen=True)
class Gate:
    description: str
    value: Callable[[Measurement, dict], float]
    at_least: bool  # True: the figure must be >= the bound; False: <=


GATES: dict[str, Gate] = {
    "max_relative_metric_drop": Gate(
        "relative metric drop", lambda m, r: r["relative_metric_drop"], at_least=False
    ),
    "max_metric_drop": Gate("metric drop", lambda m, r: r["metric_drop"], at_least=False),
    "min_size_reduction": Gate("size reduction (x)", lambda m, r: r["size_reduction"], True),
    "min_gzip_size_reduction": Gate(
        "gzip size reduction (x)", lambda m, r: r["gzip_size_reduction"], at_least=True
    ),
    "min_speedup": Gate(
        "speedup, slowest batch size (x)", lambda m, r: min(m.speedup.values()), at_least=True
    ),
    "min_speedup_batch1": Gate("speedup at batch 1 (x)", lambda m, r: m.speedup[1], True),
    "min_speedup_batch32": Gate("speedup at batch 32 (x)", lambda m, r: m.speedup[32], True),
    "min_sparsity": Gate("sparsity", lambda m, r: m.sparsity, at_least=True),
}


@dataclass(frozen=True)
class GateResult:
    gate: str
    description: str
    bound: float
    measured: float
    passed: bool

    def to_json(self) -> dict:
        return asdict(self)


def validate_gates(gates: Mapping[str, float]) -> dict[str, float]:
    unknown = sorted(set(gates) - set(GATES))
    if unknown:
        raise ValueError(f"unknown gates {unknown}; known: {', '.join(GATES)}")
    for name, bound in gates.items():
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise ValueError(f"gate `{name}` needs a number. Received: {name}={bound!r}")
    return {name: float(bound) for name, bound in gates.items()}


def check_gates(
    gates: Mapping[str, float], candidate: Measurement, ratios: dict
) -> list[GateResult]:
    results = []
    for name, bound in gates.items():
        gate = GATES[name]
        measured = float(gate.value(candidate, ratios))
        passed = measured >= bound if gate.at_least else measured <= bound
        results.append(GateResult(name, gate.description, bound, measured, passed))
    return results
