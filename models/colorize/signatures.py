"""The serving contract of `colorize` (DESIGN.md): encoded images in, colour PNGs out.

- `serving_default`: `image_bytes` string [N] (PNG, JPEG, BMP, GIF or WebP; gray or
  colour, colour is converted to gray: only its CIELAB lightness is used) ->
  `image_bytes` string [N], RGB PNGs of the same size: the annealed-mean colouring.
- `samples`: `image_bytes` string [N], `num_samples` int32 scalar K (1 to
  `max_samples`), `temperature` float32 scalar (> 0; 1 samples the model's own
  distribution, lower is closer to its most likely colours) -> `image_bytes` string
  [N, K]: K different plausible colourings of every image.

Images are colourized one at a time (a batch may mix sizes). Every check is a graph op,
so the SavedModel rejects bad input with INVALID_ARGUMENT without tfstack's code: an
empty batch, undecodable bytes, an image over `max_pixels` (from the header before
decoding, and again after), and out-of-range `num_samples` or `temperature`.
"""

import tensorflow as tf

from models.colorize.colorizer import Colorizer
from models.superres.signatures import _declared_pixels

DEFAULT_MAX_PIXELS = 2_000_000
DEFAULT_MAX_SAMPLES = 8


class ColorizeModule(tf.Module):
    """A trained `Colorizer` with its serving signatures."""

    def __init__(
        self,
        colorizer: Colorizer,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        max_samples: int = DEFAULT_MAX_SAMPLES,
        name: str = "colorize",
    ):
        super().__init__(name=name)
        for field, value in (("max_pixels", max_pixels), ("max_samples", max_samples)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{field}` must be a positive integer. Received: {field}={value}")
        self.colorizer = colorizer
        # Attributes, so the SavedModel tracks and saves their variables.
        self.chroma_network = colorizer.chroma_network
        self.refinement_network = colorizer.refinement_network
        self.max_pixels = max_pixels
        self.max_samples = max_samples

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serving_default(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        """Encoded images [N] -> PNG-encoded RGB colourings [N]."""
        with tf.control_dependencies([_assert_not_empty(image_bytes)]):
            colourings = tf.map_fn(
                lambda encoded: _encode_png(self.colorizer.colorize(self._decode(encoded))),
                image_bytes,
                fn_output_signature=tf.TensorSpec([], tf.string),
                parallel_iterations=1,  # one image's activations in memory at a time
            )
        return {"image_bytes": colourings}

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name="image_bytes"),
            tf.TensorSpec([], tf.int32, name="num_samples"),
            tf.TensorSpec([], tf.float32, name="temperature"),
        ]
    )
    def samples(
        self, image_bytes: tf.Tensor, num_samples: tf.Tensor, temperature: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        """Encoded images [N] -> [N, num_samples] PNGs drawn at `temperature`."""
        checks = [
            _assert_not_empty(image_bytes),
            tf.debugging.assert_greater_equal(
                num_samples, 1, message=f"num_samples must be 1 to {self.max_samples}"
            ),
            tf.debugging.assert_less_equal(
                num_samples,
                self.max_samples,
                message=f"num_samples must be 1 to {self.max_samples}",
            ),
            tf.debugging.assert_greater(
                temperature, 0.0, message="temperature must be a positive finite number"
            ),
            tf.debugging.assert_all_finite(
                temperature, message="temperature must be a positive finite number"
            ),
        ]

        def sample_one(encoded: tf.Tensor) -> tf.Tensor:
            drawn = self.colorizer.sample(self._decode(encoded), num_samples, temperature)
            return tf.map_fn(_encode_png, drawn, fn_output_signature=tf.TensorSpec([], tf.string))

        with tf.control_dependencies(checks):
            colourings = tf.map_fn(
                sample_one,
                image_bytes,
                fn_output_signature=tf.TensorSpec([None], tf.string),
                parallel_iterations=1,
            )
        return {"image_bytes": colourings}

    def signatures(self) -> dict[str, tf.types.experimental.ConcreteFunction]:
        """For `tf.saved_model.save(module, path, signatures=module.signatures())`."""
        return {
            "serving_default": self.serving_default.get_concrete_function(),
            "samples": self.samples.get_concrete_function(),
        }

    def _decode(self, encoded: tf.Tensor) -> tf.Tensor:
        """Encoded image -> float32 RGB [H, W, 3] in [0, 1] (gray stacked to RGB)."""
        with tf.control_dependencies([self._assert_size(_declared_pixels(encoded))]):
            image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        shape = tf.shape(image, out_type=tf.int64)
        with tf.control_dependencies([self._assert_size(shape[0] * shape[1])]):
            return tf.cast(image, tf.float32) / 255.0

    def _assert_size(self, pixels: tf.Tensor) -> tf.Operation:
        return tf.debugging.assert_less_equal(
            pixels,
            tf.constant(self.max_pixels, tf.int64),
            message=f"image has more than max_pixels={self.max_pixels} pixels",
        )


def _assert_not_empty(image_bytes: tf.Tensor) -> tf.Operation:
    return tf.debugging.assert_greater(
        tf.size(image_bytes), 0, message="image_bytes must hold at least one image"
    )


def _encode_png(rgb: tf.Tensor) -> tf.Tensor:
    return tf.io.encode_png(tf.cast(tf.round(tf.clip_by_value(rgb, 0.0, 1.0) * 255.0), tf.uint8))
