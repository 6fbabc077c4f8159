"""The serving contract of `superres` (DESIGN.md): encoded images in, upscaled PNGs out.

`serving_default` takes `image_bytes`: string [N] (PNG, JPEG, BMP, GIF or WebP; gray is
converted to RGB) and returns `image_bytes`: string [N] of RGB PNGs `scale` times
larger. Images are upscaled one at a time because a batch may mix sizes. Every check
is a graph op, so a SavedModel served without tfstack's code still rejects bad input
with INVALID_ARGUMENT: an empty batch, undecodable bytes, or an image over
`max_pixels` (checked from the PNG/GIF/JPEG header before decoding, so a small file
declaring a huge image cannot exhaust memory, and again after decoding).

`x4` (for a x2 model) has the same contract and runs the model twice, quantizing to
8 bits in between (progressive upsampling, as LapSRN): it beats bicubic x4 without a
second network to train or serve. Its inputs are limited to `max_pixels / 4`, so the
second pass sees no more pixels than a x2 request may.
"""

import tensorflow as tf
import tf_keras as keras

DEFAULT_MAX_PIXELS = 2_000_000  # input pixels; the output has scale**2 times more
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class SuperResolutionModule(tf.Module):
    """A trained super-resolution Keras model with its serving signatures."""

    def __init__(
        self,
        model: keras.Model,
        scale: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        name: str = "superres",
    ):
        """`scale=None` measures it by running the model once on an 8x8 image."""
        super().__init__(name=name)
        if not isinstance(max_pixels, int) or max_pixels < 1:
            raise ValueError(
                f"`max_pixels` must be a positive integer. Received: max_pixels={max_pixels}"
            )
        measured = int(model(tf.zeros([1, 8, 8, 3]), training=False).shape[1]) // 8
        if scale is not None and scale != measured:
            raise ValueError(
                f"`scale` does not match the model, which upscales x{measured}. "
                f"Received: scale={scale}"
            )
        self.model = model
        self.scale = measured
        self.max_pixels = max_pixels

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serving_default(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        """Encoded images [N] -> PNG-encoded RGB images [N], `scale` times larger."""
        return {"image_bytes": self._upscale_batch(image_bytes, passes=1)}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def x4(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        """Encoded images [N] -> PNG-encoded RGB images [N], `scale**2` times larger."""
        return {"image_bytes": self._upscale_batch(image_bytes, passes=2)}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def predict_tensor(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """float32 RGB [N, H, W, 3] in [0, 1] -> [N, H*scale, W*scale, 3] in [0, 1]."""
        shape = tf.shape(images, out_type=tf.int64)
        with tf.control_dependencies([self._assert_size(shape[1] * shape[2])]):
            upscaled = self.model(images, training=False)
        return {"images": tf.clip_by_value(upscaled, 0.0, 1.0)}

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """For `tf.saved_model.save(module, path, signatures=module.signatures())`."""
        return {
            "serving_default": self.serving_default.get_concrete_function(),
            "predict_tensor": self.predict_tensor.get_concrete_function(),
            f"x{self.scale**2}": self.x4.get_concrete_function(),
        }

    def _upscale_batch(self, image_bytes: tf.Tensor, passes: int) -> tf.Tensor:
        not_empty = tf.debugging.assert_greater(
            tf.size(image_bytes), 0, message="image_bytes must hold at least one image"
        )
        with tf.control_dependencies([not_empty]):
            return tf.map_fn(
                lambda encoded: self._upscale_encoded(encoded, passes),
                image_bytes,
                fn_output_signature=tf.TensorSpec([], tf.string),
                parallel_iterations=1,  # one image's activations in memory at a time
            )

    def _upscale_encoded(self, encoded: tf.Tensor, passes: int) -> tf.Tensor:
        """Decode, run the model `passes` times (8-bit in between), encode as PNG."""
        max_pixels = self.max_pixels // self.scale ** (2 * (passes - 1))
        with tf.control_dependencies([self._assert_size(_declared_pixels(encoded), max_pixels)]):
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        shape = tf.shape(image, out_type=tf.int64)
        with tf.control_dependencies([self._assert_size(shape[0] * shape[1], max_pixels)]):
            pixels = tf.cast(image, tf.float32)[None]
        for _ in range(passes):
            upscaled = self.model(pixels / 255.0, training=False)
            pixels = tf.round(tf.clip_by_value(upscaled, 0.0, 1.0) * 255.0)
        return tf.io.encode_png(tf.cast(pixels[0], tf.uint8))

    def _assert_size(self, pixels: tf.Tensor, max_pixels: int | None = None) -> tf.Operation:
        max_pixels = self.max_pixels if max_pixels is None else max_pixels
        return tf.debugging.assert_less_equal(
            pixels,
            tf.constant(max_pixels, tf.int64),
            message=f"image has more than max_pixels={max_pixels} pixels",
        )


def _declared_pixels(encoded: tf.Tensor) -> tf.Tensor:
    """Width * height from a PNG, GIF or JPEG header (int64); 0 for other formats."""
    length = tf.strings.length(encoded)

    def header_bytes(offset: int, count: int) -> tf.Tensor:
        raw = tf.io.decode_raw(tf.strings.substr(encoded, offset, count), tf.uint8)
        return tf.cast(raw, tf.int64)

    def png() -> tf.Tensor:  # IHDR: big-endian uint32 width, height at byte 16
        size = header_bytes(16, 8)
        weights = tf.constant([2**24, 2**16, 2**8, 1], tf.int64)
        return tf.reduce_sum(size[:4] * weights) * tf.reduce_sum(size[4:] * weights)

    def gif() -> tf.Tensor:  # logical screen: little-endian uint16 width, height at byte 6
        size = header_bytes(6, 4)
        return (size[0] + 256 * size[1]) * (size[2] + 256 * size[3])

    def jpeg() -> tf.Tensor:
        shape = tf.cast(tf.image.extract_jpeg_shape(encoded), tf.int64)
        return shape[0] * shape[1]

    return tf.case(
        [
            (_starts_with(encoded, _PNG_SIGNATURE) & (length >= 24), png),
            (_starts_with(encoded, b"GIF8") & (length >= 10), gif),
            (_starts_with(encoded, b"\xff\xd8\xff"), jpeg),
        ],
        default=lambda: tf.constant(0, tf.int64),
    )


def _starts_with(encoded: tf.Tensor, prefix: bytes) -> tf.Tensor:
    return tf.equal(tf.strings.substr(encoded, 0, len(prefix)), prefix)
