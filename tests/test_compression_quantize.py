"""Post-training quantization and QAT to TFLite, run with LiteRT on held-out photos."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras

from compression.adapter import load_adapter
from compression.candidate import Candidate
from compression.litert import TFLitePredictor
from compression.quantize import PostTrainingQuantization, QuantizationAwareTraining
from compression.stage import StageContext
from models.superres.evaluate import psnr_y
from models.superres.model import build_espcn

# int8 vs float on the same held-out photos: the outputs agree to this PSNR (dB)...
AGREEMENT_PSNR_DB = 40.0
# ...and the task metric moves by less than this (dB).
METRIC_TOLERANCE_DB = 0.15


@pytest.fixture(scope="module")
def adapter(superres_workdir):
    return load_adapter("superres", superres_workdir)


@pytest.fixture(scope="module")
def wide_model(adapter) -> keras.Model:
    """A 90k-parameter ESPCN, briefly trained on real patches: big enough that the
    flatbuffer's fixed ~11 KB (graph, names, quantization parameters) does not hide the
    4x of int8 weights, as it does for the 15k-parameter tiny model."""
    keras.utils.set_random_seed(0)
    model = build_espcn(2, filters=(128, 64), kernel_sizes=(5, 3))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(adapter.train_batches(batch_size=4), epochs=1, steps_per_epoch=20, verbose=0)
    return model


def quantize(adapter, model: keras.Model, mode: str) -> bytes:
    stage = PostTrainingQuantization(mode=mode, representative_samples=50)
    context = StageContext(adapter, model, progress=False)
    return stage.apply(Candidate(model), context).tflite


def heldout_outputs(adapter, predict) -> list[np.ndarray]:
    outputs = []
    adapter.evaluate(lambda low: outputs.append(predict(low)) or outputs[-1])
    return outputs


def test_full_int8_agrees_with_float_on_heldout_photos_and_is_over_3_5x_smaller(
    adapter, wide_model
):
    float32, int8 = (quantize(adapter, wide_model, mode) for mode in ("float", "int8"))
    signature = adapter.tflite_signature

    float_outputs = heldout_outputs(adapter, TFLitePredictor(float32, signature))
    int8_outputs = heldout_outputs(adapter, TFLitePredictor(int8, signature))

    for a, b in zip(float_outputs, int8_outputs, strict=True):
        agreement = psnr_y(np.clip(b[0], 0, 1), np.clip(a[0], 0, 1), 2)
        assert agreement > AGREEMENT_PSNR_DB
    float_metric = adapter.evaluate(TFLitePredictor(float32, signature))
    int8_metric = adapter.evaluate(TFLitePredictor(int8, signature))
    assert abs(float_metric - int8_metric) < METRIC_TOLERANCE_DB
    assert len(float32) / len(int8) >= 3.5


def test_float_tflite_matches_the_keras_model(adapter):
    model = adapter.load_model()
    flatbuffer = quantize(adapter, model, "float")
    keras_outputs = heldout_outputs(adapter, Candidate(model).predictor("predict_tensor"))
    tflite_outputs = heldout_outputs(adapter, TFLitePredictor(flatbuffer, "predict_tensor"))

    for a, b in zip(keras_outputs, tflite_outputs, strict=True):
        np.testing.assert_allclose(np.clip(a, 0, 1), b, atol=1e-4)


@pytest.mark.parametrize(("mode", "max_fraction"), [("dynamic", 0.45), ("float16", 0.6)])
def test_dynamic_range_and_float16_are_smaller_and_close_to_float(adapter, mode, max_fraction):
    model = adapter.load_model()
    float32, quantized = quantize(adapter, model, "float"), quantize(adapter, model, mode)
    signature = adapter.tflite_signature

    assert len(quantized) < max_fraction * len(float32)
    float_metric = adapter.evaluate(TFLitePredictor(float32, signature))
    assert abs(adapter.evaluate(TFLitePredictor(quantized, signature)) - float_metric) < 0.05


def test_quantization_aware_training_quantizes_the_convolutions_and_beats_bicubic(adapter):
    model = adapter.load_model()
    stage = QuantizationAwareTraining(steps=20, batch_size=4)

    candidate = stage.apply(Candidate(model), StageContext(adapter, model, progress=False))

    assert candidate.kind == "tflite"
    assert candidate.details["quantized_layers"] == ["feature_0", "feature_1", "subpixel_conv"]
    assert len(candidate.tflite) < 0.5 * len(quantize(adapter, model, "float"))
    _, bicubic = adapter.baseline_metric()
    assert adapter.evaluate(TFLitePredictor(candidate.tflite, adapter.tflite_signature)) > bicubic
