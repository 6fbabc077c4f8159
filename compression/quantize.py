"""Quantization stages: post-training (TFLite converter) and quantization-aware training.

- `quantize`: dynamic-range (int8 weights, float activations), float16 weights, or full
  integer int8 calibrated on a representative dataset from the training split; the
  result runs on LiteRT with a float signature.
- `qat`: TFMOT's quantization-aware training, annotating only the layers it supports
  (Conv2D/Dense: the rest, e.g. LSTMs or a family's custom layers, stays float and is
  quantized post-training), fine-tuned, then converted with the ranges it learned.

Both convert the family's builtin-ops variant of the model (`adapter.builtin_ops_model`),
so the TFLite file loads in LiteRT and TF Serving, which have no Flex delegate.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow_model_optimization as tfmot
import tf_keras as keras

from compression import litert, training
from compression.adapter import FamilyAdapter
from compression.candidate import Candidate
from compression.stage import Stage, StageContext, require


def to_tflite(
    model: keras.Model, adapter: FamilyAdapter, mode: str, representative_samples: int = 0
) -> bytes:
    """Convert a (builtin-ops) Keras model through the family's TFLite signature."""
    return litert.convert(
        adapter.tflite_module(model),
        adapter.tflite_signature,
        mode,
        representative=lambda: adapter.representative_inputs(representative_samples),
    )


@dataclass(frozen=True)
class PostTrainingQuantization(Stage):
    kind = "quantize"
    produces_tflite = True

    mode: str = "int8"
    representative_samples: int = 200  # calibration inputs for int8

    def __post_init__(self):
        require(
            self.mode in litert.MODES,
            f"`mode` must be one of {litert.MODES}. Received: mode={self.mode!r}",
        )
        require(
            self.representative_samples >= 1,
            "`representative_samples` must be positive. "
            f"Received: representative_samples={self.representative_samples}",
        )

    def apply(self, candidate: Candidate, context: StageContext) -> Candidate:
        adapter = context.adapter
        builtin = adapter.builtin_ops_model(candidate.model)
        flatbuffer = to_tflite(builtin, adapter, self.mode, self.representative_samples)
        return Candidate(candidate.model, flatbuffer, details={"mode": self.mode})


@dataclass(frozen=True)
class QuantizationAwareTraining(Stage):
    kind = "qat"
    produces_tflite = True

    steps: int = 500
    learning_rate: float = 1e-4
    batch_size: int | None = None

    def __post_init__(self):
        require(self.steps >= 1, f"`steps` must be positive. Received: steps={self.steps}")

    def apply(self, candidate: Candidate, context: StageContext) -> Candidate:
        adapter = context.adapter
        builtin = adapter.builtin_ops_model(candidate.model)
        quantized_layers = [
            layer.name for layer in builtin.layers if isinstance(layer, adapter.prunable_layers)
        ]
        aware = annotate_and_apply(builtin, adapter, quantized_layers)
        losses = training.fit(
            aware,
            adapter.train_batches(self.batch_size, seed=context.seed + 30),
            self.steps,
            self.learning_rate,
            "quantization-aware training",
            loss=adapter.loss(),
            progress=context.progress,
        )
        # With fake-quant ranges in the graph, the converter's default optimization
        # emits int8 kernels and activations where they were learned.
        flatbuffer = to_tflite(aware, adapter, "dynamic")
        return Candidate(
            aware,
            flatbuffer,
            details={"quantized_layers": quantized_layers, "mean_loss": losses[-1]},
        )


def annotate_and_apply(
    model: keras.Model,
    adapter: FamilyAdapter,
    layers: list[str],
    quantize_config: tfmot.quantization.keras.QuantizeConfig | None = None,
) -> keras.Model:
    """`quantize_apply` with only `layers` annotated (with `quantize_config`, or TFMOT's
    default 8-bit scheme); `model` is copied, not changed."""

    def annotate(layer: keras.layers.Layer) -> keras.layers.Layer:
        copy = layer.__class__.from_config(layer.get_config())
        if layer.name in layers:
            return tfmot.quantization.keras.quantize_annotate_layer(copy, quantize_config)
        return copy

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    scope = dict(adapter.custom_objects())
    if quantize_config is not None:
        scope[quantize_config.__class__.__name__] = quantize_config.__class__
    with tfmot.quantization.keras.quantize_scope(scope):
        return tfmot.quantization.keras.quantize_apply(annotated)
