"""Low-bit weights through a custom TFMOT QuantizeConfig: ternary or DoReFa k-bit.

- ternary (Li & Liu, "Ternary Weight Networks", 2016): per output channel, weights below
  0.7 * mean|w| become 0 and the rest +-alpha, alpha the mean magnitude of the rest;
- DoReFa k-bit (Zhou et al. 2016): w -> 2 * round_k(tanh(w) / (2 max|tanh w|) + 1/2) - 1,
  2^k levels, here rescaled by max|tanh w| so a trained model starts where it is.

Both use the straight-through estimator: the forward pass sees quantized kernels,
gradients update the float ("latent") kernels. Activations and biases stay float.
After fine-tuning, the quantized kernels are baked into a plain copy of the model:
the next stage (e.g. int8 `quantize`, which represents 3 or 2^k levels per channel
exactly) sees an ordinary Keras model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from compression import training
from compression.candidate import Candidate
from compression.quantize import annotate_and_apply
from compression.stage import Stage, StageContext, require

SCHEMES = ("ternary", "dorefa")
TERNARY_THRESHOLD = 0.7  # of the mean magnitude (TWN's approximation of the optimum)


def ternarize(kernel: tf.Tensor) -> tf.Tensor:
    """{-alpha, 0, +alpha} per output channel (the last axis)."""
    axes = list(range(len(kernel.shape) - 1))
    magnitude = tf.abs(kernel)
    delta = TERNARY_THRESHOLD * tf.reduce_mean(magnitude, axis=axes, keepdims=True)
    kept = tf.cast(magnitude > delta, kernel.dtype)
    alpha = tf.reduce_sum(magnitude * kept, axis=axes, keepdims=True) / tf.maximum(
        tf.reduce_sum(kept, axis=axes, keepdims=True), 1.0
    )
    return alpha * tf.sign(kernel) * kept


def dorefa(kernel: tf.Tensor, bits: int) -> tf.Tensor:
    """2**bits levels spanning the layer's (tanh-squashed) range."""
    squashed = tf.tanh(kernel)
    scale = tf.maximum(tf.reduce_max(tf.abs(squashed)), 1e-8)
    levels = float(2**bits - 1)
    unit = squashed / (2.0 * scale) + 0.5
    return scale * (2.0 * tf.round(unit * levels) / levels - 1.0)


class LowBitQuantizer(tfmot.quantization.keras.quantizers.Quantizer):
    """Ternary or DoReFa k-bit fake quantization with a straight-through gradient."""

    def __init__(self, scheme: str = "ternary", bits: int = 2) -> None:
        self.scheme = scheme
        self.bits = bits

    def quantize(self, kernel: tf.Tensor) -> tf.Tensor:
        return ternarize(kernel) if self.scheme == "ternary" else dorefa(kernel, self.bits)

    def build(self, tensor_shape, name, layer) -> dict:
        return {}

    def __call__(self, inputs, training, weights, **kwargs):
        return inputs + tf.stop_gradient(self.quantize(inputs) - inputs)

    def get_config(self) -> dict:
        return {"scheme": self.scheme, "bits": self.bits}

    def __eq__(self, other) -> bool:
        return isinstance(other, LowBitQuantizer) and self.get_config() == other.get_config()


class LowBitWeightsConfig(tfmot.quantization.keras.QuantizeConfig):
    """Quantize a Conv2D/Dense kernel with `LowBitQuantizer`; nothing else."""

    def __init__(self, scheme: str = "ternary", bits: int = 2) -> None:
        self.scheme = scheme
        self.bits = bits

    def get_weights_and_quantizers(self, layer):
        return [(layer.kernel, LowBitQuantizer(self.scheme, self.bits))]

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        (layer.kernel,) = quantize_weights

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self) -> dict:
        return {"scheme": self.scheme, "bits": self.bits}


@dataclass(frozen=True)
class LowBitStage(Stage):
    """Fine-tune with low-bit kernels, then bake them into a plain model."""

    kind = "lowbit"

    scheme: str = "ternary"
    bits: int = 2  # dorefa only (ternary is always 3 levels)
    steps: int = 1000
    learning_rate: float = 1e-4
    batch_size: int | None = None

    def __post_init__(self):
        require(
            self.scheme in SCHEMES,
            f"`scheme` must be one of {SCHEMES}. Received: scheme={self.scheme!r}",
        )
        require(1 <= self.bits <= 8, f"`bits` must be from 1 to 8. Received: bits={self.bits}")
        require(self.steps >= 1, f"`steps` must be positive. Received: steps={self.steps}")

    def apply(self, candidate: Candidate, context: StageContext) -> Candidate:
        adapter = context.adapter
        model = candidate.model
        layers = [
            layer.name for layer in model.layers if isinstance(layer, adapter.prunable_layers)
        ]
        config = LowBitWeightsConfig(self.scheme, self.bits)
        aware = annotate_and_apply(model, adapter, layers, config)
        losses = training.fit(
            aware,
            adapter.train_batches(self.batch_size, seed=context.seed + 40),
            self.steps,
            self.learning_rate,
            f"low-bit ({self.describe()})",
            loss=adapter.loss(),
            progress=context.progress,
        )
        baked = self._bake(model, aware, layers)
        levels = {name: distinct_levels(baked.get_layer(name).kernel) for name in layers}
        return Candidate(
            baked,
            details={"scheme": self.describe(), "levels": levels, "mean_loss": losses[-1]},
        )

    def describe(self) -> str:
        return "ternary" if self.scheme == "ternary" else f"DoReFa {self.bits}-bit"

    def _bake(self, model: keras.Model, aware: keras.Model, layers: list[str]) -> keras.Model:
        """A plain copy of `model` with the trained weights, kernels quantized."""
        quantizer = LowBitQuantizer(self.scheme, self.bits)
        baked = keras.models.clone_model(model)
        baked.set_weights(model.get_weights())
        for name in layers:
            trained = aware.get_layer(f"quant_{name}").layer  # QuantizeWrapper's inner layer
            kernel = _latent_kernel(aware.get_layer(f"quant_{name}"))
            target = baked.get_layer(name)
            target.kernel.assign(quantizer.quantize(kernel))
            if getattr(trained, "use_bias", False):
                target.bias.assign(trained.bias)
        return baked


def _latent_kernel(wrapper: keras.layers.Layer) -> tf.Variable:
    """The float kernel a QuantizeWrapper trains (its layer's `kernel` holds the
    quantized tensor during calls)."""
    (kernel,) = [w for w in wrapper.trainable_weights if w.name.split("/")[-1].startswith("kernel")]
    return kernel


def distinct_levels(kernel) -> int:
    """The most distinct values in any output channel (3 for ternary, <= 2**k for DoReFa)."""
    values = np.asarray(kernel).reshape(-1, np.asarray(kernel).shape[-1])
    return int(max(len(np.unique(values[:, c])) for c in range(values.shape[1])))
