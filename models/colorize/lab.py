"""sRGB <-> CIELAB (D65, 2° observer) as TensorFlow ops.

Inside the graph so an exported SavedModel colourizes PNG/JPEG bytes without the
project's code. The formulas are scikit-image's (`rgb2lab`, `lab2rgb`), which the
tests compare against.
"""

import tensorflow as tf

_RGB_TO_XYZ = tf.constant(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_XYZ_TO_RGB = tf.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = tf.constant([0.95047, 1.0, 1.08883])
_DELTA = 6.0 / 29.0


def rgb_to_lab(rgb: tf.Tensor) -> tf.Tensor:
    """[..., 3] sRGB in [0, 1] -> [..., 3] Lab (L in [0, 100], a and b about [-110, 110])."""
    rgb = tf.convert_to_tensor(rgb, tf.float32)
    linear = tf.where(rgb > 0.04045, _power((rgb + 0.055) / 1.055, 2.4), rgb / 12.92)
    xyz = tf.tensordot(linear, tf.transpose(_RGB_TO_XYZ), axes=1) / _WHITE_D65
    f = tf.where(
        xyz > _DELTA**3,
        _power(tf.maximum(xyz, _DELTA**3), 1.0 / 3.0),
        xyz / (3.0 * _DELTA**2) + 4.0 / 29.0,
    )
    fx, fy, fz = tf.unstack(f, axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: tf.Tensor) -> tf.Tensor:
    """[..., 3] Lab -> [..., 3] sRGB clipped to [0, 1] (out-of-gamut colours are clipped)."""
    lab = tf.convert_to_tensor(lab, tf.float32)
    lightness, a, b = tf.unstack(lab, axis=-1)
    fy = (lightness + 16.0) / 116.0
    f = tf.stack([fy + a / 500.0, fy, tf.maximum(fy - b / 200.0, 0.0)], axis=-1)
    xyz = tf.where(f > _DELTA, f * f * f, 3.0 * _DELTA**2 * (f - 4.0 / 29.0)) * _WHITE_D65
    linear = tf.maximum(tf.tensordot(xyz, tf.transpose(_XYZ_TO_RGB), axes=1), 0.0)
    rgb = tf.where(
        linear > 0.0031308,
        1.055 * _power(tf.maximum(linear, 0.0031308), 1.0 / 2.4) - 0.055,
        12.92 * linear,
    )
    return tf.clip_by_value(rgb, 0.0, 1.0)


def _power(positive: tf.Tensor, exponent: float) -> tf.Tensor:
    """`positive ** exponent` for positive inputs; several times faster than tf.pow on CPU."""
    return tf.exp(exponent * tf.math.log(positive))
