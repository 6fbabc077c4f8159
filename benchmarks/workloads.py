"""The benchmark's three models, written once as plain SavedModels every server loads.

- tiny: y = x @ w + b on 4 features; a call costs microseconds, so what a server adds per
  request is what is measured.
- cnn: a 61k-parameter CNN on 32x32x3 images, batch 1 per request (the issue's reference).
- superres: the superres family's real ESPCN x2 architecture (models/superres/model.py) with
  the builder's initial weights (untrained: a call costs the same whatever the weights, and
  the zero-initialised last convolution makes the output bicubic, i.e. well-formed images);
  1x64x64x3 in, 1x128x128x3 out: 196 kB responses.

Each is a `serving_default` signature with one float32 input "x" and one float32 output "y".
TensorFlow is imported only by `build_workloads`, so worker processes that only need the
`Workload` record stay light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INPUT_NAME = "x"
OUTPUT_NAME = "y"
# One example's shape in and out, per workload.
SHAPES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "tiny": ((4,), (2,)),
    "cnn": ((32, 32, 3), (10,)),
    "superres": ((64, 64, 3), (128, 128, 3)),
}
# The SavedModel version directory each model is written to, so <root>/<name> is also a
# TensorFlow Serving model base path.
VERSION = "1"


@dataclass(frozen=True)
class Workload:
    """One benchmark model: a SavedModel on disk plus one request's input batch."""

    name: str  # "tiny" | "cnn" | "superres" (also the served model name)
    saved_model_dir: Path  # a plain SavedModel dir (saved_model.pb + variables/)
    input_name: str  # serving_default input key
    output_name: str  # serving_default output key
    batch: np.ndarray  # float32, one request's input (batch 1 by default)
    expected_output_shape: tuple[int, ...]

    @property
    def model_base_path(self) -> Path:
        """The directory holding the version directory, for --model_base_path."""
        return self.saved_model_dir.parent


def build_workloads(
    root: Path, batch_size: int = 1, names: Sequence[str] = tuple(SHAPES)
) -> dict[str, Workload]:
    """Write (or reuse) the three SavedModels under root; float32 in/out, serving_default only.
    `names`: only these (tests build the tiny one alone)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1. Received: batch_size={batch_size}")
    if unknown := set(names) - set(SHAPES):
        raise ValueError(f"unknown workloads {sorted(unknown)}; choose from {list(SHAPES)}")
    root = Path(root).absolute()
    rng = np.random.default_rng(0)
    workloads = {}
    for name in names:
        example_in, example_out = SHAPES[name]
        saved_model_dir = root / name / VERSION
        if not (saved_model_dir / "saved_model.pb").exists():
            _save(name, saved_model_dir)
        workloads[name] = Workload(
            name=name,
            saved_model_dir=saved_model_dir,
            input_name=INPUT_NAME,
            output_name=OUTPUT_NAME,
            batch=rng.random((batch_size, *example_in), dtype=np.float32),
            expected_output_shape=(batch_size, *example_out),
        )
    return workloads


def _save(name: str, saved_model_dir: Path) -> None:
    """Build one model and save it atomically (a half-written dir is never reused)."""
    import shutil
    import tempfile

    import tfstack  # noqa: F401  (configures TensorFlow before it is imported)

    # isort: split
    import tensorflow as tf

    model = _MODEL_BUILDERS[name]()
    example_in = SHAPES[name][0]

    @tf.function(input_signature=[tf.TensorSpec([None, *example_in], tf.float32, INPUT_NAME)])
    def serve(x):
        return {OUTPUT_NAME: model(x, training=False)}

    module = tf.Module()
    module.model = model
    saved_model_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=saved_model_dir.parent))
    try:
        tf.saved_model.save(module, str(staging), signatures={"serving_default": serve})
        shutil.rmtree(saved_model_dir, ignore_errors=True)
        staging.rename(saved_model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _tiny():
    import tf_keras as keras

    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="tiny")


def _cnn():
    """Conv 32, conv 64, pool, conv 64, pool, global average, dense 64, dense 10: 61,130
    parameters, about 29M multiply-adds per image."""
    import tf_keras as keras

    keras.utils.set_random_seed(2)
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(),
            layers.GlobalAveragePooling2D(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="cnn",
    )


def _superres():
    import tf_keras as keras

    from models.superres.model import build_espcn

    keras.utils.set_random_seed(3)
    return build_espcn(scale=2)


_MODEL_BUILDERS = {"tiny": _tiny, "cnn": _cnn, "superres": _superres}
