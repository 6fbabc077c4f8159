"""The SavedModel serving contract, exercised through `tf.saved_model.load`."""

import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from models.superres import data
from models.superres.model import build_espcn
from models.superres.signatures import SuperResolutionModule

MAX_PIXELS = 300_000  # above the 512x512 astronaut, below a 600x600 image


def _encode(image: np.ndarray, image_format: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def model():
    """Untrained except a random output layer, so outputs differ from bicubic."""
    model = build_espcn(filters=(16, 8))
    layer = model.get_layer("subpixel_conv")
    rng = np.random.default_rng(0)
    layer.set_weights([rng.normal(0, 0.05, w.shape).astype("float32") for w in layer.get_weights()])
    return model


@pytest.fixture(scope="module")
def saved_path(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("superres") / "1"
    module = SuperResolutionModule(model, scale=2, max_pixels=MAX_PIXELS)
    tf.saved_model.save(module, str(path), signatures=module.signatures())
    return path


@pytest.fixture(scope="module")
def serve(saved_path):
    return tf.saved_model.load(str(saved_path)).signatures["serving_default"]


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    photos = {photo.name: photo for photo in data.discover_photos(None)}
    return photos["astronaut"].load()


def _expected_png_pixels(model, image: np.ndarray) -> np.ndarray:
    upscaled = model(tf.cast(image, tf.float32)[None] / 255.0)[0]
    return np.round(np.clip(upscaled.numpy(), 0.0, 1.0) * 255.0)


def _decode(png: tf.Tensor) -> np.ndarray:
    assert png.numpy().startswith(b"\x89PNG")
    return tf.io.decode_png(png).numpy()


def test_signature_names_its_input_and_output(serve):
    _, inputs = serve.structured_input_signature
    assert inputs == {"image_bytes": tf.TensorSpec([None], tf.string, name="image_bytes")}
    assert list(serve.structured_outputs) == ["image_bytes"]


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
def test_upscales_heldout_photo_like_the_keras_model(serve, model, astronaut, image_format):
    encoded = _encode(astronaut, image_format)
    png = serve(image_bytes=tf.constant([encoded]))["image_bytes"]
    assert png.shape == (1,)
    upscaled = _decode(png[0])
    assert upscaled.shape == (1024, 1024, 3)
    served_input = tf.io.decode_image(encoded, channels=3).numpy()  # JPEG is lossy
    difference = np.abs(upscaled.astype(float) - _expected_png_pixels(model, served_input))
    assert difference.max() <= 1


def test_batch_may_mix_sizes_and_gray_images(serve, astronaut):
    gray = np.asarray(Image.fromarray(astronaut[:30, :45]).convert("L"))
    batch = [_encode(astronaut[:40, :70], "PNG"), _encode(gray, "PNG")]
    pngs = serve(image_bytes=tf.constant(batch))["image_bytes"]
    assert [_decode(png).shape for png in pngs] == [(80, 140, 3), (60, 90, 3)]


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        ([], "image_bytes must hold at least one image"),
        ([b"definitely not an image"], "Unknown image file format"),
        ([np.zeros((600, 600, 3), np.uint8)], f"max_pixels={MAX_PIXELS}"),
        # A 26-byte file declaring 100000x100000: refused from the header, not decoded.
        (
            [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x02"],
            f"max_pixels={MAX_PIXELS}",
        ),
    ],
)
def test_bad_input_is_invalid_argument(serve, batch, message):
    batch = [_encode(item, "PNG") if isinstance(item, np.ndarray) else item for item in batch]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(image_bytes=tf.constant(batch, tf.string))


def test_x4_runs_the_model_twice_with_8_bit_in_between(saved_path, model, astronaut):
    x4 = tf.saved_model.load(str(saved_path)).signatures["x4"]
    crop = astronaut[:40, :50]
    png = x4(image_bytes=tf.constant([_encode(crop, "PNG")]))["image_bytes"]
    once = _expected_png_pixels(model, crop)
    # Graph and eager kernels may round a pixel differently (oneDNN under load); one
    # level off in the middle moves a few output pixels by a level or two, no more.
    difference = np.abs(_decode(png[0]).astype(float) - _expected_png_pixels(model, once))
    assert difference.shape == (160, 200, 3)
    assert difference.max() <= 2 and difference.mean() < 0.05


def test_x4_limits_inputs_to_a_quarter_of_max_pixels(saved_path):
    x4 = tf.saved_model.load(str(saved_path)).signatures["x4"]
    side = int((MAX_PIXELS // 4) ** 0.5) + 1  # a x2 request may send this, x4 may not
    too_big = _encode(np.zeros((side, side, 3), np.uint8), "PNG")
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"max_pixels={MAX_PIXELS // 4}"):
        x4(image_bytes=tf.constant([too_big]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least one image"):
        x4(image_bytes=tf.constant([], tf.string))


def test_tensor_signature_matches_model(saved_path, model):
    predict = tf.saved_model.load(str(saved_path)).signatures["predict_tensor"]
    images = tf.random.uniform([2, 9, 13, 3], seed=6)
    upscaled = predict(images=images)["images"]
    np.testing.assert_allclose(upscaled, tf.clip_by_value(model(images), 0.0, 1.0), atol=1e-6)


def test_serves_in_a_fresh_process_without_tfstack(saved_path, astronaut, tmp_path):
    (tmp_path / "in.png").write_bytes(_encode(astronaut[:50, :60], "PNG"))
    script = textwrap.dedent(
        f"""
        import sys
        import tensorflow as tf
        serve = tf.saved_model.load({str(saved_path)!r}).signatures["serving_default"]
        png = serve(image_bytes=tf.constant([open("in.png", "rb").read()]))["image_bytes"][0]
        assert not any(name.split(".")[0] in ("tfstack", "models") for name in sys.modules)
        print(tuple(tf.io.decode_png(png).shape))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TF_USE_LEGACY_KERAS")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "(100, 120, 3)"


def test_module_checks_its_arguments(model):
    with pytest.raises(ValueError, match="Received: scale=3"):
        SuperResolutionModule(model, scale=3)
    with pytest.raises(ValueError, match="Received: max_pixels=0"):
        SuperResolutionModule(model, max_pixels=0)
    assert SuperResolutionModule(model).scale == 2
