"""superres in TFLite builtin ops: bicubic x2/x4 as a polyphase convolution."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models.superres.model import BicubicUpsample
from models.superres.tflite_model import (
    PolyphaseBicubicUpsample,
    builtin_ops_model,
    keys_cubic,
    phase_filters,
)
from models.superres.train import load_trained


@pytest.mark.parametrize(("scale", "tolerance"), [(2, 1e-5), (4, 1e-5), (3, 1e-3)])
def test_polyphase_upsampling_matches_tf_image_resize_bicubic(scale, tolerance):
    images = tf.random.stateless_uniform([2, 13, 21, 3], seed=[5, scale])

    expected = BicubicUpsample(scale)(images)
    actual = PolyphaseBicubicUpsample(scale)(images)

    assert actual.shape == expected.shape
    # Borders included: TF drops taps outside the image and renormalizes; so do we.
    # x3 phases fall between the entries of TF's 1024-entry coefficient table.
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=tolerance)


def test_every_phase_filter_is_a_partition_of_unity():
    for scale in (2, 3, 4):
        np.testing.assert_allclose(phase_filters(scale).sum(axis=1), 1.0, atol=1e-12)
    assert keys_cubic(np.array([0.0, 1.0, 2.0])).tolist() == [1.0, 0.0, 0.0]


def test_the_builtin_ops_model_is_the_trained_model(superres_workdir):
    model, _ = load_trained(superres_workdir)
    images = tf.random.stateless_uniform([1, 24, 40, 3], seed=[1, 1])

    builtin = builtin_ops_model(model)

    assert not any(isinstance(layer, BicubicUpsample) for layer in builtin.layers)
    np.testing.assert_allclose(builtin(images).numpy(), model(images).numpy(), atol=1e-5)
