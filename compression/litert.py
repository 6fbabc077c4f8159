"""TFLite conversion (float, dynamic-range, float16, full int8) and LiteRT inference.

Conversion goes through a SavedModel holding only the chosen signature, so the
TFLite model's SignatureDef carries the SavedModel's name and aliases: a request
written for one works on the other (serving/tflite_servable.py).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import Literal

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

Mode = Literal["float", "dynamic", "float16", "int8"]
MODES: tuple[str, ...] = ("float", "dynamic", "float16", "int8")


def convert(
    module: tf.Module,
    signature: str,
    mode: Mode = "float",
    representative: Callable[[], Iterable[list[np.ndarray]]] | None = None,
) -> bytes:
    """The flatbuffer of `module.<signature>`, builtin ops only.

    `int8` is full-integer quantization (every op int8, calibrated on `representative`)
    with float inputs and outputs, so the signature is the float model's.
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: mode={mode!r}")
    if mode == "int8" and representative is None:
        raise ValueError("full-integer quantization needs a `representative` dataset")
    with tempfile.TemporaryDirectory(prefix="tfstack-tflite-") as saved_model:
        function = getattr(module, signature)
        tf.saved_model.save(module, saved_model, signatures={signature: function})
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, [signature])
        if mode != "float":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if mode == "int8":
            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()


class TFLitePredictor:
    """One signature of a TFLite model as a numpy function: one float input, or named
    inputs (a dict, each as typed), and a single output."""

    def __init__(self, flatbuffer: bytes, signature: str, num_threads: int | None = None) -> None:
        # As many threads as TensorFlow uses by default, so latency ratios compare runtimes,
        # not thread counts.
        threads = num_threads or os.cpu_count() or 1
        self._interpreter = Interpreter(model_content=flatbuffer, num_threads=threads)
        self._runner = self._interpreter.get_signature_runner(signature)
        self._inputs = list(self._runner.get_input_details())
        (self._output,) = self._runner.get_output_details()

    def __call__(self, inputs: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        if isinstance(inputs, Mapping):
            return self._runner(**{k: np.asarray(v) for k, v in inputs.items()})[self._output]
        (name,) = self._inputs
        return self._runner(**{name: np.asarray(inputs, np.float32)})[self._output]
