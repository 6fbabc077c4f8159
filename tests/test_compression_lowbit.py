"""Low-bit weights (ternary, DoReFa k-bit) through a custom TFMOT QuantizeConfig."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from compression.adapter import load_adapter
from compression.candidate import Candidate
from compression.lowbit import LowBitQuantizer, LowBitStage, distinct_levels, dorefa, ternarize
from compression.stage import StageContext


@pytest.fixture(scope="module")
def adapter(superres_workdir):
    return load_adapter("superres", superres_workdir)


@pytest.mark.parametrize(
    ("scheme", "bits", "levels"), [("ternary", 2, 3), ("dorefa", 2, 4), ("dorefa", 4, 16)]
)
def test_quantized_kernels_have_at_most_the_promised_levels(scheme, bits, levels):
    kernel = tf.random.stateless_normal([3, 3, 16, 8], seed=[1, 2]) * 0.1

    quantized = LowBitQuantizer(scheme, bits).quantize(kernel)

    assert distinct_levels(quantized) <= levels
    assert distinct_levels(quantized) >= levels - 1  # a real spread, not a collapse
    assert float(tf.reduce_max(tf.abs(quantized - kernel))) < 0.2


def test_ternary_keeps_large_weights_at_their_channels_mean_magnitude():
    kernel = tf.constant([[0.9, 0.01], [-1.1, -0.02], [0.05, 0.5]])  # 2 output channels

    ternary = ternarize(kernel).numpy()

    np.testing.assert_allclose(ternary[:, 0], [1.0, -1.0, 0.0], atol=1e-6)  # alpha = mean(.9, 1.1)
    np.testing.assert_allclose(ternary[:, 1], [0.0, 0.0, 0.5], atol=1e-6)


def test_dorefa_spans_the_layers_range():
    kernel = tf.constant([-0.3, -0.1, 0.0, 0.2, 0.3])

    quantized = dorefa(kernel, bits=1).numpy()  # two levels: +-max|tanh w|

    np.testing.assert_allclose(np.abs(quantized), np.tanh(0.3), rtol=1e-5)


def test_the_gradient_passes_straight_through():
    kernel = tf.Variable(tf.random.stateless_normal([4, 4], seed=[3, 4]))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(3.0 * LowBitQuantizer("ternary")(kernel, True, {}))

    np.testing.assert_allclose(tape.gradient(loss, kernel).numpy(), np.full([4, 4], 3.0))


def test_fine_tuning_recovers_quality_lost_by_ternarizing_trained_weights(adapter):
    teacher = adapter.load_model()
    stage = LowBitStage(scheme="ternary", steps=40, batch_size=4, learning_rate=1e-3)

    tuned = stage.apply(Candidate(teacher), StageContext(adapter, teacher, progress=False))

    assert set(tuned.details["levels"]) == {"feature_0", "feature_1", "subpixel_conv"}
    assert max(tuned.details["levels"].values()) <= 3
    assert all(isinstance(layer, keras.layers.Layer) for layer in tuned.model.layers)
    assert not any(layer.name.startswith("quant_") for layer in tuned.model.layers)  # baked
    direct = keras.models.clone_model(teacher)
    direct.set_weights(teacher.get_weights())
    for name in tuned.details["levels"]:
        layer = direct.get_layer(name)
        layer.kernel.assign(ternarize(layer.kernel))
    signature = adapter.tflite_signature
    assert adapter.evaluate(tuned.predictor(signature)) > adapter.evaluate(
        Candidate(direct).predictor(signature)
    )
