"""A release candidate: what one stage hands to the next, and how it is cached on disk.

A candidate is a Keras model, or a TFLite flatbuffer together with the Keras model it
was converted from (exported as the version's SavedModel, so servers without
`--prefer_tflite_model` serve the same network in float). `details` holds what the
stage wants in the report (per-layer sparsity, the student's shape, ...).
"""

from __future__ import annotations

import json
import shutil
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from compression.adapter import Predict
from compression.litert import TFLitePredictor
from tfstack.atomic import atomic_write_text

MODEL_FILE = "model.h5"  # HDF5: TFMOT documents quantization-aware models round-trip in it
TFLITE_FILE = "model.tflite"
DETAILS_FILE = "details.json"
COMPLETE_FILE = "complete"  # written last: a directory without it is a crashed stage


@dataclass
class Candidate:
    model: keras.Model
    tflite: bytes | None = None
    details: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "keras" if self.tflite is None else "tflite"

    def predictor(self, signature: str) -> Predict:
        """The candidate as a numpy function: LiteRT for TFLite, a tf.function for Keras."""
        if self.tflite is not None:
            return TFLitePredictor(self.tflite, signature)
        call = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        return lambda inputs: call(_as_tensors(inputs)).numpy()

    def save(self, directory: Path) -> Path:
        """Write to `directory` atomically (a sibling temp dir renamed into place)."""
        directory = Path(directory)
        temp = directory.with_name(f".tmp-{uuid.uuid4().hex}-{directory.name}")
        temp.mkdir(parents=True)
        try:
            with warnings.catch_warnings():  # "HDF5 is legacy": chosen on purpose, above
                warnings.simplefilter("ignore", UserWarning)
                self.model.save(temp / MODEL_FILE)
            if self.tflite is not None:
                (temp / TFLITE_FILE).write_bytes(self.tflite)
            atomic_write_text(temp / DETAILS_FILE, json.dumps(self.details, indent=2))
            atomic_write_text(temp / COMPLETE_FILE, "")
            shutil.rmtree(directory, ignore_errors=True)
            temp.rename(directory)
        finally:
            shutil.rmtree(temp, ignore_errors=True)
        return directory

    @classmethod
    def load(cls, directory: Path, custom_objects: Mapping[str, type]) -> Candidate:
        directory = Path(directory)
        with tfmot.quantization.keras.quantize_scope(dict(custom_objects)):
            model = keras.models.load_model(directory / MODEL_FILE, compile=False)
        tflite = directory / TFLITE_FILE
        return cls(
            model=model,
            tflite=tflite.read_bytes() if tflite.is_file() else None,
            details=json.loads((directory / DETAILS_FILE).read_text()),
        )

    @staticmethod
    def is_saved(directory: Path) -> bool:
        return (Path(directory) / COMPLETE_FILE).is_file()


def _as_tensors(inputs: np.ndarray | Mapping[str, np.ndarray]) -> tf.Tensor | dict:
    """One float32 tensor, or for a model with several named inputs each as it is typed."""
    if isinstance(inputs, Mapping):
        return {name: tf.convert_to_tensor(value) for name, value in inputs.items()}
    return tf.convert_to_tensor(inputs, tf.float32)


def count_parameters(model: keras.Model) -> tuple[int, int]:
    """(parameters, non-zero parameters) over the trainable weights."""
    weights = [np.asarray(w) for w in model.trainable_weights]
    return sum(w.size for w in weights), sum(int(np.count_nonzero(w)) for w in weights)
