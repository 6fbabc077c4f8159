"""The serving contract of `tumor` (DESIGN.md): encoded patches in, tumor probabilities out.

`serving_default` takes `image_bytes`: string [N], PNG or JPEG RGB patches cut from a
slide's level 0 (about 0.5 µm/px), and returns `probability`: float32 [N], the tumor
probability of each patch's centre. A patch of another size than the model's `patch_size`
is resized to it (the same field of view scanned at another magnification). Every check is
a graph op, so the SavedModel rejects bad input with INVALID_ARGUMENT in any server: an
empty batch, more than `max_batch` patches, bytes that are not a PNG or JPEG or do not
decode, and patches over `max_side` pixels a side (read from the header, before decoding,
so a small file declaring a huge image cannot exhaust memory).

`predict_tensor` takes float32 [N, patch_size, patch_size, 3] in [0, 1].
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

DEFAULT_MAX_BATCH = 4096
DEFAULT_MAX_SIDE = 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SIGNATURE = b"\xff\xd8\xff"


class TumorPatchModule(tf.Module):
    """A trained patch classifier with its serving signatures."""

    def __init__(
        self,
        model: keras.Model,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_side: int = DEFAULT_MAX_SIDE,
        name: str = "tumor",
    ):
        super().__init__(name=name)
        for field, value in (("max_batch", max_batch), ("max_side", max_side)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{field}` must be a positive integer. Received: {value}")
        height, width = model.input_shape[1:3]
        if height is None or height != width:
            raise ValueError(
                f"the model must take square patches of a fixed size. Received input shape "
                f"{model.input_shape}"
            )
        self.model = model
        self.patch_size = int(height)
        self.max_batch = max_batch
        self.max_side = max_side

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serving_default(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        """Encoded patches [N] -> tumor probability [N]."""
        count = tf.size(image_bytes)
        checks = [
            tf.debugging.assert_greater(
                count, 0, message="image_bytes must hold at least one patch"
            ),
            tf.debugging.assert_less_equal(
                count,
                self.max_batch,
                message=f"image_bytes holds more than max_batch={self.max_batch} patches",
            ),
        ]
        with tf.control_dependencies(checks):
            patches = tf.map_fn(
                self._decode_patch,
                image_bytes,
                fn_output_signature=tf.TensorSpec(
                    [self.patch_size, self.patch_size, 3], tf.float32
                ),
            )
        return {"probability": self.model(patches, training=False)[:, 0]}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="patches")])
    def predict_tensor(self, patches: tf.Tensor) -> dict[str, tf.Tensor]:
        """float32 RGB [N, P, P, 3] in [0, 1] -> tumor probability [N]."""
        shape = tf.shape(patches)
        check = tf.debugging.assert_equal(
            shape[1:3],
            [self.patch_size, self.patch_size],
            message=f"patches must be {self.patch_size}x{self.patch_size}",
        )
        with tf.control_dependencies([check]):
            patches = tf.ensure_shape(patches, [None, self.patch_size, self.patch_size, 3])
        return {"probability": self.model(patches, training=False)[:, 0]}

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """For `tf.saved_model.save(module, path, signatures=module.signatures())`."""
        return {
            "serving_default": self.serving_default.get_concrete_function(),
            "predict_tensor": self.predict_tensor.get_concrete_function(),
        }

    def _decode_patch(self, encoded: tf.Tensor) -> tf.Tensor:
        """One encoded patch -> float32 [P, P, 3] in [0, 1], after the header checks."""
        is_png = _starts_with(encoded, _PNG_SIGNATURE) & (tf.strings.length(encoded) >= 24)
        is_jpeg = _starts_with(encoded, _JPEG_SIGNATURE)
        known = tf.debugging.assert_equal(
            is_png | is_jpeg, True, message="a patch is not a PNG or JPEG image"
        )
        with tf.control_dependencies([known]):
            side = tf.reduce_max(
                tf.cond(is_png, lambda: _png_size(encoded), lambda: _jpeg_size(encoded))
            )
        small = tf.debugging.assert_less_equal(
            side,
            tf.constant(self.max_side, tf.int64),
            message=f"a patch is larger than max_side={self.max_side} pixels",
        )
        with tf.control_dependencies([small]):
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        image = tf.cast(image, tf.float32) / 255.0
        size = tf.shape(image)[:2]
        return tf.cond(
            tf.reduce_all(size == self.patch_size),
            lambda: tf.reshape(image, [self.patch_size, self.patch_size, 3]),
            lambda: tf.image.resize(image, [self.patch_size, self.patch_size], antialias=True),
        )


def _png_size(encoded: tf.Tensor) -> tf.Tensor:
    """(height, width) int64 from the IHDR chunk: big-endian uint32s at byte 16."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(encoded, 16, 8), tf.uint8), tf.int64)
    weights = tf.constant([2**24, 2**16, 2**8, 1], tf.int64)
    return tf.stack([tf.reduce_sum(raw[4:] * weights), tf.reduce_sum(raw[:4] * weights)])


def _jpeg_size(encoded: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.image.extract_jpeg_shape(encoded)[:2], tf.int64)


def _starts_with(encoded: tf.Tensor, prefix: bytes) -> tf.Tensor:
    return tf.equal(tf.strings.substr(encoded, 0, len(prefix)), prefix)
