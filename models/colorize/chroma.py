"""Quantized chroma: the ab plane cut into bins, and the ways to turn a distribution over
bins back into colour.

Stage 1 predicts, for every low-resolution pixel, a categorical distribution over
`BIN_CENTERS` (10x10 ab cells on [-110, 110]^2, as Zhang et al. 2016). Training targets are
soft-encoded (a Gaussian over nearby bins) so neighbouring colours share credit.
Decoding: `annealed_mean` (the deterministic output; temperature 1 is the mean, which
minimizes squared error, lower temperatures move towards the mode and more vivid colour) and
`sample` (true temperature sampling, optionally with spatially correlated noise).
"""

import numpy as np
import tensorflow as tf

AB_LIMIT = 110.0
BIN_SIZE = 10.0
_AXIS = np.arange(-AB_LIMIT + BIN_SIZE / 2, AB_LIMIT, BIN_SIZE, dtype=np.float32)
BIN_CENTERS = np.stack(np.meshgrid(_AXIS, _AXIS, indexing="ij"), axis=-1).reshape(-1, 2)
NUM_BINS = len(BIN_CENTERS)  # 22 * 22 = 484


def soft_encode(ab: tf.Tensor, sigma: float = 5.0) -> tf.Tensor:
    """[..., 2] ab -> [..., NUM_BINS] target distribution: a Gaussian (std `sigma`) over
    bin centres, normalized."""
    centers = tf.constant(BIN_CENTERS)
    distance2 = (
        tf.reduce_sum(tf.square(ab), axis=-1, keepdims=True)
        - 2.0 * tf.tensordot(ab, tf.transpose(centers), axes=1)
        + tf.reduce_sum(tf.square(centers), axis=-1)
    )
    return tf.nn.softmax(-tf.maximum(distance2, 0.0) / (2.0 * sigma**2), axis=-1)


def annealed_mean(logits: tf.Tensor, temperature: float | tf.Tensor) -> tf.Tensor:
    """[..., NUM_BINS] logits -> [..., 2] ab: the mean of softmax(logits / temperature)."""
    probabilities = tf.nn.softmax(logits / temperature, axis=-1)
    return tf.tensordot(probabilities, tf.constant(BIN_CENTERS), axes=1)


def sample(logits: tf.Tensor, temperature: float | tf.Tensor, gumbel: tf.Tensor) -> tf.Tensor:
    """[..., NUM_BINS] logits -> [..., 2] ab of one bin drawn from softmax(logits /
    temperature) per pixel (Gumbel-max; `gumbel` has the logits' shape)."""
    chosen = tf.argmax(logits / temperature + gumbel, axis=-1)
    return tf.gather(tf.constant(BIN_CENTERS), chosen)


def correlated_gumbel(shape: tf.Tensor, correlation_px: float) -> tf.Tensor:
    """Gumbel(0, 1) noise of `shape` [K, H, W, C], spatially correlated over about
    `correlation_px` pixels, so a sample picks coherent colours for whole regions instead
    of salt-and-pepper.

    White Gaussian noise is blurred with a unit-energy kernel (VALID, over a padded grid,
    so every pixel still has a standard normal marginal) and mapped through the normal
    CDF and the inverse Gumbel CDF: each pixel's marginal is exactly Gumbel, so each
    pixel's colour is still drawn from softmax(logits / temperature).
    """
    radius = int(np.ceil(2 * correlation_px))
    if radius == 0:
        normal = tf.random.normal(shape)
    else:
        offsets = np.arange(-radius, radius + 1, dtype=np.float32)
        kernel_1d = np.exp(-(offsets**2) / (2 * correlation_px**2))
        kernel_2d = np.outer(kernel_1d, kernel_1d)
        kernel_2d /= np.sqrt(np.sum(kernel_2d**2))
        padded = shape + tf.constant([0, 2 * radius, 2 * radius, 0], shape.dtype)
        # Channels go to the batch axis: one 2-D blur shared by every bin.
        noise = tf.random.normal([padded[0] * padded[3], padded[1], padded[2], 1])
        blurred = tf.nn.conv2d(noise, kernel_2d[:, :, None, None], strides=1, padding="VALID")
        normal = tf.transpose(
            tf.reshape(blurred, [shape[0], shape[3], shape[1], shape[2]]), [0, 2, 3, 1]
        )
    uniform = tf.clip_by_value(0.5 * tf.math.erfc(-normal / np.sqrt(2.0)), 1e-7, 1.0 - 1e-7)
    return -tf.math.log(-tf.math.log(uniform))
