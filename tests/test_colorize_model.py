"""The two networks and the whole-photo `Colorizer` around them, untrained."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from models.colorize import chroma, evaluate
from models.colorize.colorizer import Colorizer
from models.colorize.lab import rgb_to_lab
from models.colorize.model import build_chroma_network, build_refinement_network


@pytest.fixture(scope="module")
def networks():
    keras.utils.set_random_seed(0)
    return build_chroma_network((8, 8, 16), dropout=0.2), build_refinement_network(8)


def _colorizer(networks, refine_side: int = 64) -> Colorizer:
    return Colorizer(*networks, refine_side, decode_temperature=1.0, sample_correlation_px=2.0)


def test_chroma_network_predicts_bins_at_a_quarter_of_its_input(networks):
    chroma_network, _ = networks
    logits = chroma_network(tf.random.uniform([2, 64, 96, 1], 0, 100), training=False)
    assert logits.shape == (2, 16, 24, chroma.NUM_BINS)


def test_untrained_refinement_passes_the_coarse_colour_through(networks):
    _, refinement_network = networks
    lightness = tf.random.uniform([1, 32, 48, 1], 0, 100, seed=1)
    coarse = tf.random.uniform([1, 32, 48, 2], -60, 60, seed=2)
    refined = refinement_network([lightness, coarse], training=False)
    np.testing.assert_allclose(refined, coarse, atol=1e-3)


def test_builders_check_their_arguments():
    with pytest.raises(ValueError, match=r"Received: filters=\(8, 8\)"):
        build_chroma_network((8, 8))
    with pytest.raises(ValueError, match=r"Received: dropout=1\.0"):
        build_chroma_network(dropout=1.0)
    with pytest.raises(ValueError, match=r"Received: filters=\(0,\)"):
        build_refinement_network(0)


def test_refine_size_keeps_aspect_and_area(networks):
    colorizer = _colorizer(networks, refine_side=128)
    assert colorizer.refine_size(640, 1024).numpy().tolist() == [96, 160]
    assert colorizer.refine_size(30, 45).numpy().tolist() == [112, 160]  # small: upscaled
    assert colorizer.refine_size(4, 4000).numpy().tolist() == [16, 512]  # bounded sides


@pytest.mark.parametrize("shape", [(37, 53, 3), (120, 80, 3)])
def test_colorize_keeps_size_and_lightness(networks, shape):
    colorizer = _colorizer(networks)
    rgb = tf.random.uniform(shape, seed=3)
    coloured = colorizer.colorize(rgb)
    assert coloured.shape == shape
    in_gamut = np.all((coloured.numpy() > 0.02) & (coloured.numpy() < 0.98), axis=-1)
    lightness = rgb_to_lab(coloured)[..., 0].numpy()[in_gamut]
    np.testing.assert_allclose(lightness, rgb_to_lab(rgb)[..., 0].numpy()[in_gamut], atol=0.1)
    # A colour photo and its gray copy are the same input to the model.
    gray = evaluate.with_chroma(rgb, (0.0, 0.0))
    np.testing.assert_allclose(colorizer.colorize(gray), coloured, atol=2e-3)


def test_samples_differ_and_each_keeps_lightness(networks):
    colorizer = _colorizer(networks)
    rgb = tf.random.uniform([48, 64, 3], seed=4)
    tf.random.set_seed(5)
    drawn = colorizer.sample(rgb, tf.constant(3), tf.constant(1.0))
    assert drawn.shape == (3, 48, 64, 3)
    assert float(tf.reduce_mean(tf.abs(drawn[0] - drawn[1]))) > 1e-3
    deterministic = colorizer.sample(rgb, tf.constant(2), tf.constant(1e-8))  # the mode
    np.testing.assert_allclose(deterministic[0], deterministic[1], atol=1e-6)


def test_colorizer_checks_its_arguments(networks):
    with pytest.raises(ValueError, match="Received: refine_side=100"):
        Colorizer(*networks, refine_side=100, decode_temperature=1.0, sample_correlation_px=2)
    with pytest.raises(ValueError, match="decode_temperature=0"):
        Colorizer(*networks, refine_side=64, decode_temperature=0, sample_correlation_px=2)
