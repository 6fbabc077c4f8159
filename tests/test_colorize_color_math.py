"""Lab conversion and ab-bin decoding: the pure tensor functions under both stages."""

import numpy as np
import pytest
import skimage.color
import tensorflow as tf

from models.colorize import chroma, evaluate
from models.colorize.lab import lab_to_rgb, rgb_to_lab
from models.superres import data as photos


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return photos.SKIMAGE_PHOTOS["astronaut"]() / 255.0


def test_rgb_to_lab_matches_scikit_image(astronaut):
    np.testing.assert_allclose(rgb_to_lab(astronaut), skimage.color.rgb2lab(astronaut), atol=1e-3)


def test_lab_to_rgb_matches_scikit_image_and_round_trips(astronaut):
    rng = np.random.default_rng(0)
    lab = np.stack(
        [rng.uniform(0, 100, 500), rng.uniform(-110, 110, 500), rng.uniform(-110, 110, 500)], -1
    )
    with np.errstate(invalid="ignore"), pytest.warns(UserWarning):  # scikit-image clips too
        expected = np.clip(skimage.color.lab2rgb(lab), 0.0, 1.0)
    np.testing.assert_allclose(lab_to_rgb(lab), expected, atol=1e-4)
    np.testing.assert_allclose(lab_to_rgb(rgb_to_lab(astronaut)), astronaut, atol=1e-4)


def test_bins_tile_the_ab_plane():
    assert chroma.NUM_BINS == 22 * 22
    assert chroma.BIN_CENTERS.min() == -105 and chroma.BIN_CENTERS.max() == 105
    assert len(np.unique(chroma.BIN_CENTERS, axis=0)) == chroma.NUM_BINS


def test_soft_encoding_is_a_distribution_centred_on_the_colour():
    ab = tf.constant([[12.0, -37.0], [2.0, 3.0], [-79.0, 64.0]])
    target = chroma.soft_encode(ab)
    np.testing.assert_allclose(tf.reduce_sum(target, -1), 1.0, rtol=1e-5)
    # Away from the border the mean of the target is the colour itself.
    np.testing.assert_allclose(chroma.annealed_mean(tf.math.log(target), 1.0), ab, atol=0.5)
    nearest = tf.gather(chroma.BIN_CENTERS, tf.argmax(target, -1))
    np.testing.assert_allclose(nearest, [[15, -35], [5, 5], [-75, 65]])


def test_annealed_mean_moves_from_the_mean_to_the_mode_as_temperature_drops():
    logits = np.full(chroma.NUM_BINS, -30.0, np.float32)
    mode, other = 100, 300
    logits[mode], logits[other] = np.log(0.7), np.log(0.3)
    mean = 0.7 * chroma.BIN_CENTERS[mode] + 0.3 * chroma.BIN_CENTERS[other]
    np.testing.assert_allclose(chroma.annealed_mean(logits, 1.0), mean, atol=1e-3)
    np.testing.assert_allclose(
        chroma.annealed_mean(logits, 0.05), chroma.BIN_CENTERS[mode], atol=1e-3
    )


@pytest.mark.parametrize("correlation_px", [0.0, 2.0])
def test_sampling_draws_bins_with_the_tempered_probabilities(correlation_px):
    probabilities = np.zeros(chroma.NUM_BINS, np.float32)
    probabilities[[10, 200, 400]] = [0.6, 0.3, 0.1]
    logits = np.log(probabilities + 1e-12)
    tf.random.set_seed(3)
    shape = tf.constant([64, 16, 16, chroma.NUM_BINS])
    noise = chroma.correlated_gumbel(shape, correlation_px)
    drawn = chroma.sample(tf.broadcast_to(logits, shape), 1.0, noise).numpy().reshape(-1, 2)
    shares = [np.mean(np.all(drawn == chroma.BIN_CENTERS[i], axis=-1)) for i in (10, 200, 400)]
    np.testing.assert_allclose(shares, [0.6, 0.3, 0.1], atol=0.04)
    # Temperature 0.5 squares the odds: 0.36 : 0.09 : 0.01.
    drawn = chroma.sample(tf.broadcast_to(logits, shape), 0.5, noise).numpy().reshape(-1, 2)
    share = np.mean(np.all(drawn == chroma.BIN_CENTERS[10], axis=-1))
    assert share == pytest.approx(0.36 / 0.46, abs=0.04)


def test_correlated_noise_agrees_between_neighbours():
    tf.random.set_seed(4)
    shape = tf.constant([4, 32, 32, 8])
    white, smooth = chroma.correlated_gumbel(shape, 0.0), chroma.correlated_gumbel(shape, 2.0)

    def neighbour_correlation(noise):
        noise = noise.numpy()
        return np.corrcoef(noise[:, :, :-1].ravel(), noise[:, :, 1:].ravel())[0, 1]

    assert abs(neighbour_correlation(white)) < 0.05
    assert neighbour_correlation(smooth) > 0.7


def test_psnr_ssim_and_colourfulness():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1, (48, 40, 3)).astype(np.float32)
    assert evaluate.ssim(image, image) == pytest.approx(1.0)
    assert evaluate.psnr(image, np.clip(image + 0.01, 0, 1)) > 39.0
    gray = evaluate.with_chroma(image, (0.0, 0.0))
    assert evaluate.colourfulness(gray) < 0.5  # gray has no opponent colour
    red = np.zeros((8, 8, 3), np.float32)
    red[..., 0] = 1.0
    # Hasler-Süsstrunk on a flat pure red: no spread, 0.3 * |(255, 127.5)|.
    assert evaluate.colourfulness(red) == pytest.approx(0.3 * np.hypot(255, 127.5), rel=1e-4)


def test_baselines_keep_lightness_and_paint_one_chroma(astronaut):
    painted = evaluate.with_chroma(astronaut, (20.0, -10.0))
    lab = rgb_to_lab(painted).numpy()
    original = rgb_to_lab(astronaut).numpy()
    in_gamut = np.all((painted.numpy() > 0.01) & (painted.numpy() < 0.99), axis=-1)
    assert in_gamut.mean() > 0.5
    np.testing.assert_allclose(lab[..., 0][in_gamut], original[..., 0][in_gamut], atol=0.05)
    painted_ab = lab[..., 1:][in_gamut]
    np.testing.assert_allclose(painted_ab, np.broadcast_to([20, -10], painted_ab.shape), atol=0.05)
