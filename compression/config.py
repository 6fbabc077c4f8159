"""Pipeline configs: YAML files listing stages, gates and how to measure.

```yaml
model: superres                 # the family (compression/adapters)
description: distill, then int8 # optional, for the report
stages:                         # in order; each stage's output feeds the next
  - stage: distill              # compression.config.STAGES
    student: {filters: [32, 16]}
    steps: 2000
  - stage: quantize
    mode: int8
gates:                          # compression.gates.GATES
  max_relative_metric_drop: 0.01
  min_size_reduction: 4
measure:
  batch_sizes: [1, 32]
  latency_repeats: 7
seed: 0
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from compression.distill import DistillStage
from compression.gates import validate_gates
from compression.lowbit import LowBitStage
from compression.prune import PruneStage
from compression.quantize import PostTrainingQuantization, QuantizationAwareTraining
from compression.stage import Stage

STAGES: dict[str, type[Stage]] = {
    stage.kind: stage
    for stage in (
        DistillStage,
        PruneStage,
        LowBitStage,
        QuantizationAwareTraining,
        PostTrainingQuantization,
    )
}
CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class PipelineConfig:
    model: str
    name: str  # the config file's stem: names the run's directory
    stages: tuple[Stage, ...]
    gates: dict[str, float] = field(default_factory=dict)
    batch_sizes: tuple[int, ...] = (1, 32)
    latency_repeats: int = 7
    seed: int = 0
    description: str = ""

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "name": self.name,
            "description": self.description,
            "stages": [stage.spec() for stage in self.stages],
            "gates": self.gates,
            "batch_sizes": list(self.batch_sizes),
            "latency_repeats": self.latency_repeats,
            "seed": self.seed,
        }


def load_config(path: Path | str) -> PipelineConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from err
    try:
        return parse_config(data, name=path.stem)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def shipped_config(name: str) -> Path:
    """`compression/configs/<name>.yaml`, the configs that ship with tfstack."""
    return CONFIG_DIR / f"{name}.yaml"


def parse_config(data: object, name: str) -> PipelineConfig:
    if not isinstance(data, dict):
        raise ValueError("a pipeline config is a mapping with `model` and `stages`")
    unknown = set(data) - {"model", "description", "stages", "gates", "measure", "seed"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    if not isinstance(data.get("model"), str):
        raise ValueError(f"`model` must name a family. Received: model={data.get('model')!r}")
    stages = tuple(_stage(entry, index) for index, entry in enumerate(data.get("stages") or []))
    if not stages:
        raise ValueError("`stages` must list at least one stage")
    for stage in stages[:-1]:
        if stage.produces_tflite:
            raise ValueError(f"stage `{stage.kind}` makes a TFLite model and must come last")
    measure = dict(data.get("measure") or {})
    unknown = set(measure) - {"batch_sizes", "latency_repeats"}
    if unknown:
        raise ValueError(f"unknown `measure` keys {sorted(unknown)}")
    batch_sizes = tuple(int(size) for size in measure.get("batch_sizes", (1, 32)))
    repeats = int(measure.get("latency_repeats", 7))
    if not batch_sizes or min(batch_sizes) < 1 or repeats < 1:
        raise ValueError(
            "`measure.batch_sizes` and `measure.latency_repeats` must be positive. "
            f"Received: batch_sizes={batch_sizes}, latency_repeats={repeats}"
        )
    return PipelineConfig(
        model=data["model"],
        name=name,
        stages=stages,
        gates=validate_gates(data.get("gates") or {}),
        batch_sizes=batch_sizes,
        latency_repeats=repeats,
        seed=int(data.get("seed", 0)),
        description=str(data.get("description", "")),
    )


def _stage(entry: object, index: int) -> Stage:
    if not isinstance(entry, dict) or "stage" not in entry:
        raise ValueError(f"stage {index + 1} must be a mapping with a `stage` key")
    params = dict(entry)
    kind = params.pop("stage")
    if kind not in STAGES:
        raise ValueError(
            f"stage {index + 1}: unknown stage {kind!r}; choose from {', '.join(STAGES)}"
        )
    for key, value in params.items():
        if isinstance(value, list):
            params[key] = tuple(value)
    try:
        return STAGES[kind](**params)
    except TypeError as err:  # an unknown parameter
        raise ValueError(f"stage {index + 1} ({kind}): {err}") from err
