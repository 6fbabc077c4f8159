"""What the compression pipeline needs from a model family: one adapter class per family.

Stages and the pipeline never import a family's modules; they call its adapter, so a
family joins by writing `compression/adapters/<family>.py` (a `FamilyAdapter`
subclass named `Adapter`), listing it in `compression/adapters/__init__.py` and
shipping `compression/configs/<family>.yaml`. See compression/README.md.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import tensorflow as tf
import tf_keras as keras

from compression import litert
from compression.adapters import ADAPTERS

# A model call on a batch of inputs: numpy in (one array, or a dict for a model with
# several named inputs), numpy out (Keras or LiteRT behind it).
Predict = Callable[[np.ndarray | Mapping[str, np.ndarray]], np.ndarray]


class FamilyAdapter(abc.ABC):
    """One trained model family seen by the compression stages.

    The pipeline builds one adapter per run with the family's training `workdir`.
    Methods that have a default only need overriding when the family differs.
    """

    name: ClassVar[str]
    metric: ClassVar[str]  # the task metric's display name, e.g. "PSNR Y (dB)"
    higher_is_better: ClassVar[bool] = True
    # "classification": distillation matches temperature-softened logits;
    # "regression": the teacher's outputs are the soft targets.
    task: ClassVar[Literal["classification", "regression"]]
    # Signature of the TFLite model (float tensors; the SavedModel has one of that name too).
    tflite_signature: ClassVar[str] = "serving_default"
    # Layer types whose kernels pruning and quantization-aware training may touch.
    prunable_layers: ClassVar[tuple[type, ...]] = (keras.layers.Conv2D, keras.layers.Dense)

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)

    # -- the trained model and its data ----------------------------------------------

    @abc.abstractmethod
    def load_model(self) -> keras.Model:
        """The trained (uncompressed) model: the baseline and the first teacher."""

    @abc.abstractmethod
    def train_batches(self, batch_size: int | None = None, seed: int = 0) -> tf.data.Dataset:
        """Endless (inputs, targets) batches from the training split, for fine-tuning."""

    def distillation_batches(
        self, teacher: keras.Model, batch_size: int | None = None, seed: int = 0
    ) -> tf.data.Dataset:
        """(inputs, targets) for training a student; sequence-level KD replaces the
        targets by the teacher's beam-search outputs here (default: the training data)."""
        return self.train_batches(batch_size, seed)

    @abc.abstractmethod
    def loss(self) -> keras.losses.Loss:
        """The task loss the model was trained with (on hard targets)."""

    @abc.abstractmethod
    def evaluate(self, predict: Predict) -> float:
        """The task metric of `predict` on the held-out split."""

    def baseline_metric(self) -> tuple[str, float] | None:
        """(name, metric) of the family's non-learned baseline, for the report."""
        return None

    def latency_inputs(self, batch_size: int) -> np.ndarray:
        """A realistic batch for latency measurements (default: a training batch)."""
        inputs, _ = next(iter(self.train_batches(batch_size, seed=1)))
        return np.asarray(inputs)

    def representative_inputs(self, count: int) -> Iterator[list[np.ndarray]]:
        """Calibration inputs for full-integer quantization: `count` training examples."""
        for inputs, _ in self.train_batches(batch_size=1, seed=2).take(count):
            yield [np.asarray(inputs)]

    def model_bytes(self, model: keras.Model) -> bytes:
        """A Keras candidate as its size is measured: the float32 TFLite flatbuffer of its
        builtin-ops variant (a family whose model has no TFLite form overrides this)."""
        builtin = self.builtin_ops_model(model)
        return litert.convert(self.tflite_module(builtin), self.tflite_signature, "float")

    def custom_objects(self) -> Mapping[str, type]:
        """Custom Keras classes needed to load a saved candidate."""
        return {}

    # -- students for distillation ------------------------------------------------------

    def build_student(self, teacher: keras.Model, **architecture) -> keras.Model:
        """A fresh (untrained) smaller model; `architecture` comes from the config."""
        raise NotImplementedError(f"{self.name} has no configurable student architecture")

    def imitation_pairs(self, student: keras.Model, teacher: keras.Model) -> list[tuple[str, str]]:
        """(student layer, teacher layer) names whose outputs the student learns to imitate
        ("Go Wide, Then Narrow"); empty: no layerwise imitation."""
        return []

    # -- deployment -------------------------------------------------------------------

    def builtin_ops_model(self, model: keras.Model) -> keras.Model:
        """The same model in TFLite builtin ops (default: it already is)."""
        return model

    @abc.abstractmethod
    def tflite_module(self, model: keras.Model) -> tf.Module:
        """A module whose `tflite_signature` method runs a builtin-ops `model` on float
        tensors (the input to the TFLite converter)."""

    @abc.abstractmethod
    def serving_module(self, model: keras.Model) -> tuple[tf.Module, dict]:
        """(module, signatures) of the family's SavedModel contract around `model`."""

    @abc.abstractmethod
    def warmup_inputs(self, tflite: bool) -> tuple[str, dict[str, np.ndarray | list[bytes]]]:
        """(signature, inputs) of a warmup request valid for the exported version; with
        `tflite` it must also run on the TFLite model (which has `tflite_signature` only)."""


def load_adapter(name: str, workdir: Path) -> FamilyAdapter:
    """The adapter of family `name` for the model trained in `workdir`."""
    if name not in ADAPTERS:
        raise ValueError(
            f"no compression adapter for {name!r}; families with one: {', '.join(ADAPTERS)}"
        )
    return importlib.import_module(ADAPTERS[name]).Adapter(workdir)
