"""Colour photos, the split, and the training batches both stages learn from."""

import numpy as np
import pytest
import tensorflow as tf

from models.colorize import data
from models.colorize.lab import rgb_to_lab
from models.superres import data as photos


@pytest.fixture(scope="module")
def pip_only():
    return data.colour_photos(debian_roots=None)


def test_gray_photos_are_dropped_from_both_splits(pip_only):
    train, heldout = pip_only
    assert sorted(photo.name for photo, _ in heldout) == ["astronaut", "chelsea", "coffee"]
    names = {photo.name for photo, _ in train}
    assert names == {"rocket", "motorcycle", "hubble_deep_field", "immunohistochemistry", "retina"}
    assert not names & {"camera", "moon", "coins", "brick", "grass", "gravel"}
    assert all(data.mean_chroma(image) >= data.MIN_MEAN_CHROMA for _, image in train + heldout)


def test_mean_chroma_and_mean_ab():
    gray = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    assert data.mean_chroma(np.repeat(gray, 8, axis=0)) < 0.01  # float rounding only
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255
    lab = rgb_to_lab(np.array([1.0, 0.0, 0.0])).numpy()
    # Pixel-weighted: three red images and one gray one of the same size.
    flat = np.full((4, 4, 3), 128, np.uint8)
    np.testing.assert_allclose(data.mean_ab([red, red, red, flat]), 0.75 * lab[1:], rtol=1e-4)


@pytest.fixture(scope="module")
def batch(pip_only):
    train, _ = pip_only
    batches = data.training_batches([image for _, image in train], 64, 32, 4, seed=7)
    return next(iter(batches))


def test_batches_hold_both_stages_examples(batch):
    assert {key: tuple(value.shape) for key, value in batch.items()} == {
        "stage1_l": (4, 32, 32, 1),
        "low_ab": (4, 8, 8, 2),
        "refine_l": (4, 32, 32, 1),
        "refine_coarse_ab": (4, 32, 32, 2),
        "refine_ab": (4, 32, 32, 2),
    }
    lightness = batch["stage1_l"].numpy()
    assert 0 <= lightness.min() < lightness.max() <= 100
    assert float(tf.reduce_max(tf.abs(batch["refine_ab"]))) < 128
    # The coarse colour is a blurred version of the true colour of the same patch.
    error = tf.reduce_mean(tf.abs(batch["refine_coarse_ab"] - batch["refine_ab"]))
    spread = tf.reduce_mean(tf.abs(batch["refine_ab"] - tf.reduce_mean(batch["refine_ab"])))
    assert float(error) < float(spread)


def test_batches_repeat_for_a_seed(pip_only, batch):
    train, _ = pip_only
    again = next(iter(data.training_batches([image for _, image in train], 64, 32, 4, seed=7)))
    for key in batch:
        np.testing.assert_array_equal(batch[key], again[key])


def test_batches_check_their_arguments():
    image = photos.SKIMAGE_PHOTOS["astronaut"]()
    with pytest.raises(ValueError, match="Received: refine_side=60"):
        data.training_batches([image], 60, 32, 4)
    with pytest.raises(ValueError, match=r"Received: images=\[\]"):
        data.training_batches([], 64, 32, 4)
