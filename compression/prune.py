"""Magnitude pruning with TFMOT, per-layer targets from the schemes of See et al. (2016).

See, Luong & Manning, "Compression of Neural Machine Translation Models via Pruning"
(arXiv 1606.09274) compare three ways to choose how much of each weight class to prune,
for the same overall sparsity x:

- class-blind: one global threshold over every weight's magnitude (the x-th percentile);
  classes with small weights lose more of them;
- class-uniform: x of every class;
- class-distribution: per class c the threshold lambda * sigma_c (sigma_c: the standard
  deviation of the class's weights), lambda chosen so the overall sparsity is x (or
  given as `threshold_lambda`).

Here a class is a prunable layer's kernel (for a `tfmot.sparsity.keras.PrunableLayer`,
e.g. a family's recurrent layer, the weights it names, taken together). The scheme only
computes each layer's target; TFMOT's `prune_low_magnitude` then prunes each layer to
its target on a schedule while the model is retrained, and `strip_pruning` leaves a
plain model with zeros.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from compression import training
from compression.candidate import Candidate
from compression.stage import Stage, StageContext, require

SCHEMES = ("class-blind", "class-uniform", "class-distribution")
SCHEDULES = ("polynomial", "constant")
POLYNOMIAL_RAMP = 2 / 3  # the share of the fine-tuning steps over which sparsity rises
MASK_UPDATES = 10  # how many times masks are recomputed when `frequency` is not given
MAX_LAYER_SPARSITY = 0.95


def prunable_kernels(model: keras.Model, types: tuple[type, ...], skip=()) -> dict[str, np.ndarray]:
    """Layer name -> kernel of every layer of `types` not in `skip` (flattened prunable
    weights for a PrunableLayer)."""
    return {
        layer.name: _prunable_weights(layer)
        for layer in model.layers
        if isinstance(layer, types) and layer.name not in skip
    }


def _prunable_weights(layer: keras.layers.Layer) -> np.ndarray:
    """What TFMOT prunes in `layer`: a PrunableLayer's own choice (all of it as one
    class: TFMOT prunes a layer on one schedule), else the kernel."""
    if isinstance(layer, tfmot.sparsity.keras.PrunableLayer):
        return np.concatenate([np.ravel(w) for w in layer.get_prunable_weights()])
    return np.asarray(layer.kernel)


def layer_targets(
    kernels: Mapping[str, np.ndarray],
    scheme: str,
    sparsity: float | None = None,
    threshold_lambda: float | None = None,
    max_layer_sparsity: float = MAX_LAYER_SPARSITY,
) -> dict[str, float]:
    """Per-layer target sparsity under `scheme`: overall `sparsity`, or for
    class-distribution a given `threshold_lambda`. No layer goes beyond
    `max_layer_sparsity` (a layer pruned away disconnects the network); the global
    threshold or lambda is then chosen so the other layers make up the difference."""
    magnitudes = {name: np.abs(kernel).ravel() for name, kernel in kernels.items()}
    if scheme == "class-uniform":
        return dict.fromkeys(magnitudes, float(min(sparsity, max_layer_sparsity)))
    if scheme == "class-blind":
        scales = dict.fromkeys(magnitudes, 1.0)  # threshold = t for every class
    elif scheme == "class-distribution":
        scales = {name: float(np.std(kernel)) for name, kernel in kernels.items()}
    else:
        raise ValueError(f"`scheme` must be one of {SCHEMES}. Received: scheme={scheme!r}")

    def targets(parameter: float) -> dict[str, float]:
        return {
            name: float(min(np.mean(m < parameter * scales[name]), max_layer_sparsity))
            for name, m in magnitudes.items()
        }

    if threshold_lambda is not None:
        return targets(threshold_lambda)
    return targets(_solve(lambda p: overall_sparsity(targets(p), kernels), sparsity))


def overall_sparsity(targets: Mapping[str, float], kernels: Mapping[str, np.ndarray]) -> float:
    total = sum(kernel.size for kernel in kernels.values())
    return sum(targets[name] * kernels[name].size for name in targets) / total


def kernel_sparsity(model: keras.Model, names) -> dict[str, float]:
    """Fraction of exact zeros in each named layer's kernel (or prunable weights)."""
    return {name: float(np.mean(_prunable_weights(model.get_layer(name)) == 0)) for name in names}


def _solve(sparsity_at, wanted: float) -> float:
    """Bisection for the threshold (or lambda) at which `sparsity_at` reaches `wanted`
    (it rises monotonically with the threshold)."""
    low, high = 0.0, 1.0
    for _ in range(64):
        if sparsity_at(high) >= wanted:
            break
        low, high = high, high * 2.0
    for _ in range(60):
        middle = (low + high) / 2
        low, high = (middle, high) if sparsity_at(middle) < wanted else (low, middle)
    return high


@dataclass(frozen=True)
class PruneStage(Stage):
    """Prune to per-layer targets from a scheme, retraining on the task loss."""

    kind = "prune"

    scheme: str = "class-blind"
    sparsity: float | None = 0.5
    threshold_lambda: float | None = None  # class-distribution only; overrides `sparsity`
    schedule: str = "polynomial"
    steps: int = 1000
    learning_rate: float = 1e-4
    batch_size: int | None = None
    frequency: int | None = None  # steps between mask updates (default: steps / 10)
    max_layer_sparsity: float = MAX_LAYER_SPARSITY
    skip: tuple[str, ...] = field(default_factory=tuple)  # layers never pruned

    def __post_init__(self):
        require(
            self.scheme in SCHEMES,
            f"`scheme` must be one of {SCHEMES}. Received: scheme={self.scheme!r}",
        )
        require(
            self.schedule in SCHEDULES,
            f"`schedule` must be one of {SCHEDULES}. Received: schedule={self.schedule!r}",
        )
        if self.threshold_lambda is None:
            require(
                self.sparsity is not None and 0.0 <= self.sparsity <= self.max_layer_sparsity < 1,
                "`sparsity` must be in [0, max_layer_sparsity], max_layer_sparsity < 1. "
                f"Received: sparsity={self.sparsity}, "
                f"max_layer_sparsity={self.max_layer_sparsity}",
            )
        else:
            require(
                self.scheme == "class-distribution" and self.threshold_lambda > 0,
                "`threshold_lambda` is a positive number for scheme class-distribution. "
                f"Received: threshold_lambda={self.threshold_lambda}, scheme={self.scheme}",
            )
        require(self.steps >= 1, f"`steps` must be positive. Received: steps={self.steps}")
        require(
            self.frequency is None or self.frequency >= 1,
            f"`frequency` must be positive. Received: frequency={self.frequency}",
        )
        object.__setattr__(self, "skip", tuple(self.skip))

    def apply(self, candidate: Candidate, context: StageContext) -> Candidate:
        adapter = context.adapter
        model = _copy(candidate.model)
        kernels = prunable_kernels(model, adapter.prunable_layers, self.skip)
        targets = layer_targets(
            kernels, self.scheme, self.sparsity, self.threshold_lambda, self.max_layer_sparsity
        )
        pruned = keras.models.clone_model(
            model,
            clone_function=lambda layer: (
                tfmot.sparsity.keras.prune_low_magnitude(
                    layer, pruning_schedule=self._schedule(targets[layer.name])
                )
                if layer.name in targets
                else layer
            ),
        )
        losses = training.fit(
            pruned,
            adapter.train_batches(self.batch_size, seed=context.seed + 10),
            self.steps,
            self.learning_rate,
            f"prune ({self.scheme})",
            loss=adapter.loss(),
            callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
            progress=context.progress,
        )
        stripped = tfmot.sparsity.keras.strip_pruning(pruned)
        achieved = kernel_sparsity(stripped, targets)
        return Candidate(
            stripped,
            details={
                "scheme": self.scheme,
                "targets": targets,
                "layer_sparsity": achieved,
                "target_sparsity": overall_sparsity(targets, kernels),
                "mean_loss": losses[-1],
            },
        )

    def _schedule(self, target: float) -> tfmot.sparsity.keras.PruningSchedule:
        # TFMOT updates masks only every `frequency` steps (default 100) and only up to
        # `end_step`: both come from the real step count, or short runs prune nothing.
        frequency = self.frequency or max(1, self.steps // MASK_UPDATES)
        if self.schedule == "constant":
            return tfmot.sparsity.keras.ConstantSparsity(target, 0, frequency=frequency)
        end_step = max(frequency, int(self.steps * POLYNOMIAL_RAMP) // frequency * frequency)
        return tfmot.sparsity.keras.PolynomialDecay(
            0.0, target, 0, end_step=end_step, frequency=frequency
        )


def _copy(model: keras.Model) -> keras.Model:
    """A copy with its own weights: pruning wraps layers in place, and the input may be
    the teacher another stage still needs."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone
