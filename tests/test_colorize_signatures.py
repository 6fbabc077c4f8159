"""The SavedModel serving contract of `colorize`, through `tf.saved_model.load`."""

import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from PIL import Image

from models.colorize.colorizer import Colorizer
from models.colorize.images import gray_copy
from models.colorize.lab import rgb_to_lab
from models.colorize.model import build_chroma_network, build_refinement_network
from models.colorize.signatures import ColorizeModule
from models.superres import data as photos

MAX_PIXELS = 300_000  # above the 512x512 astronaut, below a 600x600 image
MAX_SAMPLES = 4


def _encode(image: np.ndarray, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=image_format)
    return buffer.getvalue()


def _decode(png) -> np.ndarray:
    png = png.numpy() if hasattr(png, "numpy") else png
    assert png.startswith(b"\x89PNG")
    return np.asarray(Image.open(io.BytesIO(png)))


@pytest.fixture(scope="module")
def colorizer():
    """Untrained but random, so colours differ from gray and from sample to sample."""
    keras.utils.set_random_seed(0)
    refinement = build_refinement_network(8)
    delta = refinement.get_layer("delta")
    rng = np.random.default_rng(0)
    delta.set_weights([rng.normal(0, 0.05, w.shape).astype("float32") for w in delta.get_weights()])
    return Colorizer(build_chroma_network((8, 8, 16)), refinement, 64, 1.0, 2.0)


@pytest.fixture(scope="module")
def saved_path(colorizer, tmp_path_factory):
    path = tmp_path_factory.mktemp("colorize") / "1"
    module = ColorizeModule(colorizer, max_pixels=MAX_PIXELS, max_samples=MAX_SAMPLES)
    tf.saved_model.save(module, str(path), signatures=module.signatures())
    return path


@pytest.fixture(scope="module")
def loaded(saved_path):
    return tf.saved_model.load(str(saved_path)).signatures


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return photos.SKIMAGE_PHOTOS["astronaut"]()


def test_signatures_name_their_inputs_and_outputs(loaded):
    _, default_inputs = loaded["serving_default"].structured_input_signature
    assert default_inputs == {"image_bytes": tf.TensorSpec([None], tf.string, name="image_bytes")}
    _, sample_inputs = loaded["samples"].structured_input_signature
    assert sample_inputs == {
        "image_bytes": tf.TensorSpec([None], tf.string, name="image_bytes"),
        "num_samples": tf.TensorSpec([], tf.int32, name="num_samples"),
        "temperature": tf.TensorSpec([], tf.float32, name="temperature"),
    }
    assert list(loaded["serving_default"].structured_outputs) == ["image_bytes"]
    assert list(loaded["samples"].structured_outputs) == ["image_bytes"]


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_colourizes_like_the_colorizer_and_keeps_lightness(
    loaded, colorizer, astronaut, image_format
):
    encoded = _encode(astronaut, image_format)
    png = loaded["serving_default"](image_bytes=tf.constant([encoded]))["image_bytes"]
    assert png.shape == (1,)
    coloured = _decode(png[0])
    assert coloured.shape == astronaut.shape
    served_input = tf.io.decode_image(encoded, channels=3).numpy() / 255.0
    expected = np.round(colorizer.colorize(tf.constant(served_input, tf.float32)).numpy() * 255)
    assert np.abs(coloured - expected).max() <= 1
    assert np.abs(coloured.astype(float) - astronaut).mean() > 1  # it is not the input
    lightness_error = rgb_to_lab(coloured / 255.0)[..., 0] - rgb_to_lab(served_input)[..., 0]
    assert float(tf.reduce_mean(tf.abs(lightness_error))) < 1.0


def test_colour_input_is_converted_to_gray(loaded, astronaut):
    """A colour photo and its 8-bit gray copy give the same colouring (up to the copy's
    rounding): the model sees lightness only."""
    pngs = loaded["serving_default"](
        image_bytes=tf.constant([_encode(astronaut), _encode(gray_copy(astronaut))])
    )["image_bytes"]
    colour_in, gray_in = _decode(pngs[0]).astype(float), _decode(pngs[1]).astype(float)
    assert np.abs(colour_in - gray_in).mean() < 1.0


def test_batch_may_mix_sizes_and_gray_images(loaded, astronaut):
    gray = np.asarray(Image.fromarray(astronaut[:30, :45]).convert("L"))
    batch = [_encode(astronaut[:40, :70]), _encode(gray)]
    pngs = loaded["serving_default"](image_bytes=tf.constant(batch))["image_bytes"]
    assert [_decode(png).shape for png in pngs] == [(40, 70, 3), (30, 45, 3)]


def test_samples_signature_returns_k_different_colourings(loaded, astronaut):
    batch = [_encode(astronaut[:64, :96]), _encode(astronaut[100:148, 50:90])]
    pngs = loaded["samples"](
        image_bytes=tf.constant(batch), num_samples=tf.constant(3), temperature=tf.constant(1.0)
    )["image_bytes"]
    assert pngs.shape == (2, 3)
    first = [_decode(png) for png in pngs[0]]
    assert all(image.shape == (64, 96, 3) for image in first)
    assert [_decode(png).shape for png in pngs[1]] == [(48, 40, 3)] * 3
    assert np.abs(first[0].astype(int) - first[1]).mean() > 0.5


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([], "image_bytes must hold at least one image"),
        ([b"definitely not an image"], "Unknown image file format"),
        ([np.zeros((600, 600, 3), np.uint8)], f"max_pixels={MAX_PIXELS}"),
        (
            [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x02"],
            f"max_pixels={MAX_PIXELS}",
        ),
    ],
)
@pytest.mark.parametrize("signature", ["serving_default", "samples"])
def test_bad_images_are_invalid_argument(loaded, signature, batch, message):
    batch = [_encode(item) if isinstance(item, np.ndarray) else item for item in batch]
    inputs = {"image_bytes": tf.constant(batch, tf.string)}
    if signature == "samples":
        inputs.update(num_samples=tf.constant(2), temperature=tf.constant(1.0))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded[signature](**inputs)


@pytest.mark.parametrize(
    ("num_samples", "temperature", "message"),
    [
        (0, 1.0, f"num_samples must be 1 to {MAX_SAMPLES}"),
        (MAX_SAMPLES + 1, 1.0, f"num_samples must be 1 to {MAX_SAMPLES}"),
        (2, 0.0, "temperature must be a positive finite number"),
        (2, float("inf"), "temperature must be a positive finite number"),
    ],
)
def test_bad_sampling_arguments_are_invalid_argument(
    loaded, astronaut, num_samples, temperature, message
):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        loaded["samples"](
            image_bytes=tf.constant([_encode(astronaut[:32, :32])]),
            num_samples=tf.constant(num_samples),
            temperature=tf.constant(temperature),
        )


def test_serves_in_a_fresh_process_without_tfstack(saved_path, astronaut, tmp_path):
    (tmp_path / "in.png").write_bytes(_encode(astronaut[:50, :60]))
    script = textwrap.dedent(
        f"""
        import sys
        import tensorflow as tf
        signatures = tf.saved_model.load({str(saved_path)!r}).signatures
        image = tf.constant([open("in.png", "rb").read()])
        png = signatures["serving_default"](image_bytes=image)["image_bytes"][0]
        drawn = signatures["samples"](
            image_bytes=image, num_samples=tf.constant(2), temperature=tf.constant(0.7)
        )["image_bytes"]
        assert not any(name.split(".")[0] in ("tfstack", "models") for name in sys.modules)
        print(tuple(tf.io.decode_png(png).shape), tuple(drawn.shape))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "(50, 60, 3) (1, 2)"


def test_module_checks_its_arguments(colorizer):
    with pytest.raises(ValueError, match="Received: max_pixels=0"):
        ColorizeModule(colorizer, max_pixels=0)
    with pytest.raises(ValueError, match="Received: max_samples=0"):
        ColorizeModule(colorizer, max_samples=0)
