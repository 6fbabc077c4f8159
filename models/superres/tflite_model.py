"""The superres network in TFLite builtin ops only, for LiteRT and `--prefer_tflite_model`.

TFLite has no bicubic resize (only bilinear and nearest), and LiteRT's Python package
has no Flex delegate, so `BicubicUpsample` cannot be converted as it is. Upscaling by
an integer factor is a polyphase filter, though: output pixel `s*k + p` of
`tf.image.resize(..., "bicubic")` (half-pixel centres, Keys cubic a = -0.5) is a fixed
4-tap filter over input pixels `k-2 .. k+2` per axis and phase `p`. So one 5x5
convolution with `channels * s * s` outputs (one per channel and phase) followed by
`depth_to_space` computes it exactly in the interior. At the borders TensorFlow gives
taps outside the image zero weight and renormalizes the rest. The kernel is separable,
so the sums of the weights that fall inside the image are a row factor times a column
factor: two 1-D convolutions of ones give them, and the image is multiplied by their
reciprocals. Dividing only these small [1, H*s] and [1, W*s] vectors keeps the division
out of the per-pixel path, where integer kernels of LiteRT (XNNPACK) have no division.
"""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from models.superres.model import BicubicUpsample, _check_scale

KEYS_A = -0.5  # TensorFlow's cubic coefficient with half-pixel centres
TAPS = 5  # input pixels k-2 .. k+2 cover every phase of every integer scale


def keys_cubic(distance: np.ndarray, a: float = KEYS_A) -> np.ndarray:
    """Keys' cubic convolution kernel."""
    x = np.abs(distance)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def phase_filters(scale: int) -> np.ndarray:
    """[scale, TAPS] 1-D weights: row p interpolates output phase p from offsets -2..+2."""
    filters = np.zeros([scale, TAPS])
    for phase in range(scale):
        position = (phase + 0.5) / scale - 0.5  # in input pixels, relative to k
        offsets = np.arange(TAPS) - TAPS // 2
        filters[phase] = keys_cubic(offsets - position)
    return filters


def polyphase_kernel(scale: int, channels: int) -> np.ndarray:
    """Conv2D kernel [TAPS, TAPS, channels, scale*scale*channels] in depth_to_space order
    (output channel = (phase_y * scale + phase_x) * channels + c)."""
    filters = phase_filters(scale)
    kernel = np.zeros([TAPS, TAPS, channels, scale * scale * channels], np.float32)
    for py in range(scale):
        for px in range(scale):
            taps = np.outer(filters[py], filters[px])
            for c in range(channels):
                kernel[:, :, c, (py * scale + px) * channels + c] = taps
    return kernel


@keras.saving.register_keras_serializable(package="tfstack")
class PolyphaseBicubicUpsample(keras.layers.Layer):
    """`BicubicUpsample` as a fixed convolution and depth_to_space (TFLite builtins)."""

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        _check_scale(scale)
        self.scale = scale

    def build(self, input_shape):
        channels = int(input_shape[-1])
        self._kernel = tf.constant(polyphase_kernel(self.scale, channels))
        phases = phase_filters(self.scale).T.astype(np.float32)  # [TAPS, scale]
        self._row_kernel = tf.constant(phases[:, None, None, :])  # [TAPS, 1, 1, scale]
        self._column_kernel = tf.constant(phases[None, :, None, :])  # [1, TAPS, 1, scale]
        super().build(input_shape)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        weighted = tf.nn.conv2d(inputs, self._kernel, 1, "SAME")
        upsampled = tf.nn.depth_to_space(weighted, self.scale)
        # Sums of the weights inside the image, per output row and column (1 but at borders).
        rows = tf.nn.conv2d(tf.ones_like(inputs[:1, :, :1, :1]), self._row_kernel, 1, "SAME")
        columns = tf.nn.conv2d(tf.ones_like(inputs[:1, :1, :, :1]), self._column_kernel, 1, "SAME")
        row_scale = 1.0 / tf.reshape(rows, [1, -1, 1, 1])  # [1, H*scale, 1, 1]
        column_scale = 1.0 / tf.reshape(columns, [1, 1, -1, 1])  # [1, 1, W*scale, 1]
        return upsampled * row_scale * column_scale

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale}


def builtin_ops_model(model: keras.Model) -> keras.Model:
    """A copy of a trained superres model (plain, pruned-and-stripped, or a student) with
    every `BicubicUpsample` replaced by `PolyphaseBicubicUpsample`, same weights."""

    def swap(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, BicubicUpsample):
            return PolyphaseBicubicUpsample(layer.scale, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    clone = keras.models.clone_model(model, clone_function=swap)
    clone.set_weights(model.get_weights())
    return clone
