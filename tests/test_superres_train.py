"""Training the `tiny` preset once: checkpoint, reload, and beating bicubic held out."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from models.superres import evaluate, train

# Measured on the 2-core dev machine: tiny gains ~1.1 dB PSNR on the pinned held-out
# photos (astronaut 1.3, chelsea 0.9, coffee 1.0); asserted with a wide margin.
MIN_GAIN_DB = 0.4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workdir")
    model = train.train(train.PRESETS["tiny"], workdir, progress=False)
    return model, workdir


@pytest.fixture(scope="module")
def heldout_scores(trained):
    model, _ = trained
    return evaluate.evaluate_heldout(model, scale=2, debian_roots=None)


def test_checkpoint_holds_config_weights_and_history(trained):
    _, workdir = trained
    directory = train.checkpoint_dir(workdir)
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [train.CONFIG_FILE, train.WEIGHTS_FILE, train.HISTORY_FILE]
    )
    config = json.loads((directory / train.CONFIG_FILE).read_text())
    assert config == json.loads(json.dumps(dataclasses.asdict(train.PRESETS["tiny"])))
    history = json.loads((directory / train.HISTORY_FILE).read_text())
    steps = train.PRESETS["tiny"].steps
    assert history["chunks"][-1]["step"] == steps
    assert history["seconds"] > 0
    assert history["chunks"][-1]["loss"] < history["chunks"][0]["loss"]


def test_load_trained_reproduces_outputs(trained):
    model, workdir = trained
    restored, config = train.load_trained(workdir)
    assert config == train.PRESETS["tiny"]
    images = tf.random.uniform([1, 21, 33, 3], seed=4)
    np.testing.assert_array_equal(restored(images), model(images))


def test_load_trained_without_checkpoint_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `tfstack train superres` first"):
        train.load_trained(tmp_path)


def test_beats_bicubic_on_heldout_photos(heldout_scores):
    assert sorted(heldout_scores["images"]) == ["astronaut", "chelsea", "coffee"]
    assert heldout_scores["psnr_gain_db"] >= MIN_GAIN_DB
    assert heldout_scores["model_ssim"] >= heldout_scores["bicubic_ssim"]
    for scores in heldout_scores["per_image"]:
        assert scores["model_psnr"] > scores["bicubic_psnr"], scores["name"]


def test_x4_by_two_passes_beats_bicubic_x4(trained):
    model, _ = trained
    scores = evaluate.evaluate_heldout(model, scale=2, debian_roots=None, passes=2)
    assert scores["scale"] == 4
    assert scores["psnr_gain_db"] >= MIN_GAIN_DB
    for image in scores["per_image"]:
        assert image["model_psnr"] > image["bicubic_psnr"], image["name"]


def test_presets_are_configs_that_validate():
    assert set(train.PRESETS) == {"tiny", "demo", "full"}
    assert (
        train.TrainConfig.from_dict(dataclasses.asdict(train.PRESETS["full"]))
        == (train.PRESETS["full"])
    )
    with pytest.raises(ValueError, match="Received: steps=0"):
        train.TrainConfig(steps=0)


def test_psnr_and_ssim_on_luma():
    image = tf.random.uniform([40, 40, 3], seed=5)
    assert evaluate.ssim_y(image, image, border=2) == pytest.approx(1.0)
    # Y changes by 65.481/255 * 0.01 everywhere when red does by 0.01.
    shifted = image + tf.constant([0.01, 0.0, 0.0])
    expected = -20 * np.log10(65.481 / 255 * 0.01)
    assert evaluate.psnr_y(image, shifted, border=2) == pytest.approx(expected, rel=1e-3)
    # The border is ignored: damage there does not count.
    damaged = tf.tensor_scatter_nd_update(shifted, [[0, 0]], [[1.0, 1.0, 1.0]])
    assert evaluate.psnr_y(image, damaged, border=2) == pytest.approx(expected, rel=1e-3)
    assert evaluate.psnr_y(image, damaged, border=0) < expected - 1
    with pytest.raises(ValueError, match=r"Received: images=\[\]"):
        evaluate.evaluate(None, [], scale=2)
