"""Patch scorers for `scan`: the Keras model in process, or the served model over gRPC."""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
import tf_keras as keras
from PIL import Image

from models.tumor.scan import PatchScorer
from serving.client import ServingClient

INPUT = "image_bytes"
OUTPUT = "probability"


def keras_scorer(model: keras.Model) -> PatchScorer:
    """The model called in this process (float32 in [0, 1], as the serving signature feeds it)."""

    @tf.function(reduce_retracing=True)
    def predict(patches: tf.Tensor) -> tf.Tensor:
        return model(tf.cast(patches, tf.float32) / 255.0, training=False)[:, 0]

    return lambda patches: predict(tf.convert_to_tensor(patches, tf.uint8)).numpy()


def served_scorer(client: ServingClient, model_name: str = "tumor") -> PatchScorer:
    """Each batch of patches is one Predict call of PNG-encoded patches (lossless, so the
    server sees exactly the pixels a local scan would)."""

    def score(patches: np.ndarray) -> np.ndarray:
        outputs = client.predict(model_name, {INPUT: [encode_png(p) for p in patches]})
        return np.asarray(outputs[OUTPUT], np.float32)

    return score


def encode_png(patch: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(patch).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
