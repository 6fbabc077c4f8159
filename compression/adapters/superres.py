"""superres for the compression pipeline: PSNR Y on held-out photos, ESPCN students."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np
import tensorflow as tf
import tf_keras as keras
from PIL import Image

from compression.adapter import FamilyAdapter, Predict
from models.superres import data as sr_data
from models.superres import evaluate as sr_evaluate
from models.superres import signatures as sr_signatures
from models.superres import train as sr_train
from models.superres.model import BicubicUpsample, PixelShuffle, build_espcn
from models.superres.tflite_model import PolyphaseBicubicUpsample, builtin_ops_model

WARMUP_SIDE = 32  # a small request: tracing, not throughput, is what warmup is for
LATENCY_SIDE = 64  # low-resolution side of the latency batches (128x128 outputs)


class Adapter(FamilyAdapter):
    name = "superres"
    metric = "PSNR Y (dB)"
    higher_is_better = True
    task = "regression"
    tflite_signature = "predict_tensor"  # the SavedModel's float-tensor signature too

    def __init__(self, workdir) -> None:
        super().__init__(workdir)
        self._config: sr_train.TrainConfig | None = None
        self._photos: dict[str, list[np.ndarray]] = {}
        self._bicubic_psnr: float | None = None

    @property
    def config(self) -> sr_train.TrainConfig:
        if self._config is None:
            self.load_model()
        return self._config

    def load_model(self) -> keras.Model:
        model, self._config = sr_train.load_trained(self.workdir)
        return model

    def train_batches(self, batch_size: int | None = None, seed: int = 0) -> tf.data.Dataset:
        return sr_data.patch_dataset(
            self._split("train"),
            scale=self.config.scale,
            patch_size=self.config.patch_size,
            batch_size=batch_size or self.config.batch_size,
            seed=seed,
        )

    def loss(self) -> keras.losses.Loss:
        return keras.losses.MeanSquaredError()  # what the family trains on (PSNR's error)

    def evaluate(self, predict: Predict) -> float:
        """Mean PSNR Y over held-out photos, on 8-bit outputs as the server sends them."""
        scale = self.config.scale
        scores = []
        for image in self._split("heldout"):
            hr = sr_data.crop_to_multiple(tf.convert_to_tensor(image, tf.float32) / 255.0, scale)
            low = sr_data.degrade(hr, scale)[None].numpy()
            output = np.round(np.clip(predict(low)[0], 0.0, 1.0) * 255.0) / 255.0
            scores.append(sr_evaluate.psnr_y(output, hr, scale))
        return float(np.mean(scores))

    def baseline_metric(self) -> tuple[str, float]:
        if self._bicubic_psnr is None:  # the photos do not change during a run
            upsample = BicubicUpsample(self.config.scale)
            self._bicubic_psnr = self.evaluate(lambda low: upsample(low).numpy())
        return "bicubic", self._bicubic_psnr

    def latency_inputs(self, batch_size: int) -> np.ndarray:
        patches = sr_data.patch_dataset(
            self._split("heldout"),
            scale=self.config.scale,
            patch_size=LATENCY_SIDE * self.config.scale,
            batch_size=batch_size,
            seed=1,
            augment=False,
        )
        low, _ = next(iter(patches))
        return low.numpy()

    def custom_objects(self) -> Mapping[str, type]:
        return {
            "BicubicUpsample": BicubicUpsample,
            "PixelShuffle": PixelShuffle,
            "PolyphaseBicubicUpsample": PolyphaseBicubicUpsample,
        }

    def build_student(
        self,
        teacher: keras.Model,
        filters: tuple[int, ...] = (32, 16),
        kernel_sizes: tuple[int, ...] = (5, 3),
    ) -> keras.Model:
        """An ESPCN with other widths/depth; like every ESPCN here it starts as bicubic."""
        return build_espcn(self.config.scale, tuple(filters), tuple(kernel_sizes))

    def imitation_pairs(self, student: keras.Model, teacher: keras.Model) -> list[tuple[str, str]]:
        """Hidden layer i of the student imitates the teacher's hidden layer at the same
        relative depth (the last hidden layers always pair)."""
        student_hidden = _hidden_layers(student)
        teacher_hidden = _hidden_layers(teacher)
        pairs = []
        for index, name in enumerate(student_hidden):
            depth = math.ceil((index + 1) * len(teacher_hidden) / len(student_hidden)) - 1
            pairs.append((name, teacher_hidden[depth]))
        return pairs

    def builtin_ops_model(self, model: keras.Model) -> keras.Model:
        return builtin_ops_model(model)

    def tflite_module(self, model: keras.Model) -> tf.Module:
        return TensorModule(model)

    def serving_module(self, model: keras.Model) -> tuple[tf.Module, dict]:
        module = sr_signatures.SuperResolutionModule(model)
        return module, module.signatures()

    def warmup_inputs(self, tflite: bool) -> tuple[str, dict]:
        photo = Image.fromarray(sr_data.SKIMAGE_PHOTOS["coffee"]())
        photo = photo.resize((WARMUP_SIDE, WARMUP_SIDE), Image.BICUBIC)
        if tflite:
            return self.tflite_signature, {
                "images": np.asarray(photo, np.float32)[None] / np.float32(255.0)
            }
        buffer = io.BytesIO()
        photo.save(buffer, format="PNG")
        return "serving_default", {"image_bytes": [buffer.getvalue()]}

    def _split(self, which: str) -> list[np.ndarray]:
        """Photos of the split the model was trained with (pip-only or with Debian's)."""
        if not self._photos:
            roots = sr_data.DEBIAN_ROOTS if self.config.debian_photos else None
            train, heldout = sr_data.split_photos(sr_data.discover_photos(roots))
            self._photos = {
                "train": [photo.load() for photo in train],
                "heldout": [photo.load() for photo in heldout],
            }
        return self._photos[which]


class TensorModule(tf.Module):
    """Only `SuperResolutionModule.predict_tensor`'s contract, for the TFLite converter:
    tracing the PNG signatures too would cost time and convert nothing."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__(name="superres_tensor")
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def predict_tensor(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """float32 RGB [N, H, W, 3] in [0, 1] -> [N, H*scale, W*scale, 3] in [0, 1]."""
        return {"images": tf.clip_by_value(self.model(images, training=False), 0.0, 1.0)}


def _hidden_layers(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers if layer.name.startswith("feature_")]
