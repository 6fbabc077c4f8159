"""Whole-photo colourization with the two trained stages, as TensorFlow ops.

One code path for evaluation, the CLI and the SavedModel signatures. A photo of any
size is squeezed (aspect kept) to about `refine_side`^2 pixels, the scale the networks
were trained at: stage 1 sees L at half that and predicts colour at 1/8, stage 2 refines
it at `refine_side` scale, and the refined ab is upsampled to the photo and joined with
the photo's own, untouched L. Colour is smooth, so full-resolution chroma from a 128^2
(presets) prediction costs little PSNR, and the networks' cost does not grow with the photo.
"""

import tensorflow as tf
import tf_keras as keras

from models.colorize import chroma
from models.colorize.data import LOW_RES_FACTOR
from models.colorize.lab import lab_to_rgb, rgb_to_lab

_SIDE_MULTIPLE = 2 * LOW_RES_FACTOR  # refinement sides: stage 1 (half) must divide by 8


class Colorizer:
    """The trained networks plus how to decode them; every method takes float RGB in [0, 1]
    (gray or colour: only its L is used) and returns float RGB in [0, 1]."""

    def __init__(
        self,
        chroma_network: keras.Model,
        refinement_network: keras.Model,
        refine_side: int,
        decode_temperature: float,
        sample_correlation_px: float,
    ):
        if refine_side % _SIDE_MULTIPLE or refine_side < _SIDE_MULTIPLE:
            raise ValueError(
                f"`refine_side` must be a positive multiple of {_SIDE_MULTIPLE}. "
                f"Received: refine_side={refine_side}"
            )
        if decode_temperature <= 0 or sample_correlation_px < 0:
            raise ValueError(
                "`decode_temperature` must be positive and `sample_correlation_px` not "
                f"negative. Received: decode_temperature={decode_temperature}, "
                f"sample_correlation_px={sample_correlation_px}"
            )
        self.chroma_network = chroma_network
        self.refinement_network = refinement_network
        self.refine_side = refine_side
        self.decode_temperature = decode_temperature
        self.sample_correlation_px = sample_correlation_px

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32)])
    def colorize(self, rgb: tf.Tensor) -> tf.Tensor:
        """[H, W, 3] -> [H, W, 3]: the annealed-mean colouring (the deterministic output)."""
        lightness, refine_l, logits = self._predict_logits(rgb)
        low_ab = chroma.annealed_mean(logits, self.decode_temperature)
        return self._refine(lightness, refine_l, low_ab)[0]

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None, 3], tf.float32),
            tf.TensorSpec([], tf.int32),
            tf.TensorSpec([], tf.float32),
        ]
    )
    def sample(self, rgb: tf.Tensor, num_samples: tf.Tensor, temperature: tf.Tensor) -> tf.Tensor:
        """[H, W, 3] -> [K, H, W, 3]: K colourings drawn at `temperature` (1: the model's
        distribution; lower: closer to its most likely colours)."""
        lightness, refine_l, logits = self._predict_logits(rgb)
        logits = tf.repeat(logits, num_samples, axis=0)
        noise = chroma.correlated_gumbel(tf.shape(logits), self.sample_correlation_px)
        low_ab = chroma.sample(logits, temperature, noise)
        return self._refine(lightness, tf.repeat(refine_l, num_samples, axis=0), low_ab)

    def refine_size(self, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
        """[2] int32: the photo's size scaled to about `refine_side`^2 pixels, aspect kept,
        each side a multiple of 16 between 16 and 4 * `refine_side`."""
        size = tf.cast(tf.stack([height, width]), tf.float32)
        scaled = size * self.refine_side / tf.sqrt(size[0] * size[1])
        sides = tf.round(scaled / _SIDE_MULTIPLE) * _SIDE_MULTIPLE
        return tf.cast(tf.clip_by_value(sides, _SIDE_MULTIPLE, 4 * self.refine_side), tf.int32)

    def _predict_logits(self, rgb: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        lightness = rgb_to_lab(rgb)[..., :1]
        # Colour is dropped first, so a photo and its gray copy are the same input.
        gray = lab_to_rgb(tf.concat([lightness, tf.zeros_like(rgb[..., :2])], axis=-1))
        size = self.refine_size(tf.shape(rgb)[0], tf.shape(rgb)[1])
        refine_gray = tf.image.resize(gray[None], size, "bilinear", antialias=True)
        refine_gray = tf.clip_by_value(refine_gray, 0.0, 1.0)
        refine_l = rgb_to_lab(refine_gray)[..., :1]
        stage1_l = rgb_to_lab(tf.nn.avg_pool2d(refine_gray, 2, 2, "VALID"))[..., :1]
        return lightness, refine_l, self.chroma_network(stage1_l, training=False)

    def _refine(self, lightness: tf.Tensor, refine_l: tf.Tensor, low_ab: tf.Tensor) -> tf.Tensor:
        coarse_ab = tf.image.resize(low_ab, tf.shape(refine_l)[1:3], "bilinear")
        ab = self.refinement_network([refine_l, coarse_ab], training=False)
        ab = tf.image.resize(ab, tf.shape(lightness)[:2], "bilinear")
        lightness = tf.broadcast_to(lightness, tf.concat([tf.shape(ab)[:3], [1]], axis=0))
        return lab_to_rgb(tf.concat([lightness, ab], axis=-1))
