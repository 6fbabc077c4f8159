"""tumor for the compression pipeline: patch ROC AUC on the held-out scan grid.

The metric is the patch classifier's ROC AUC over every scan-grid cell of the held-out
slides that a scan scores (tissue), labelled by its centre as training labels patches:
tumor inside a lesion, normal clear of every one, lesion borders left out. FROC and
slide AUC need a whole-slide scan per stage and saturate on the demo slides (1.0 and
1.0 held out: 18 lesions, so one lesion moves the FROC by up to 5.6%); the patch AUC
sees every cell the scan sees, costs one pass over them, and moves with the model's
ranking of the hard normal tissue (lymphoid aggregates, folds, epidermis) against
tumor. It does not see everything: a few more confident false positives per slide
cost FROC at low false-positive rates while hardly moving it (compression/README.md
gives both for the release).

Fine-tuning batches are the family's: half tumor, half normal patches, of which the
trained config's share are hard negatives mined with the trained model, augmented.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
import tf_keras as keras
from PIL import Image

from compression.adapter import FamilyAdapter, Predict
from models.tumor import baseline, data, scorers
from models.tumor import evaluate as tumor_evaluate
from models.tumor import family as tumor_family
from models.tumor import signatures as tumor_signatures
from models.tumor import train as tumor_train
from models.tumor.model import build_patch_classifier

EVALUATION_BATCH = 256


class Adapter(FamilyAdapter):
    name = "tumor"
    metric = "patch AUC"
    higher_is_better = True
    # The model outputs a probability (the serving contract), not a logit: distillation
    # regresses the teacher's probabilities.
    task = "regression"
    tflite_signature = "predict_tensor"  # the SavedModel's float-tensor signature too

    def __init__(self, workdir) -> None:
        super().__init__(workdir)
        self._config: tumor_train.TrainConfig | None = None
        self._samplers: dict[str, data.PatchSampler] = {}
        self._heldout: tuple[np.ndarray, np.ndarray] | None = None  # cells, labels
        self._hard_negatives: np.ndarray | None = None
        self._baseline_auc: float | None = None

    @property
    def config(self) -> tumor_train.TrainConfig:
        if self._config is None:
            self.load_model()
        return self._config

    def load_model(self) -> keras.Model:
        model, self._config = tumor_train.load_trained(self.workdir)
        return model

    def train_batches(self, batch_size: int | None = None, seed: int = 0) -> tf.data.Dataset:
        """Augmented (patches, labels [B, 1]) with the trained model's hard negatives."""
        sampler = data.PatchSampler(self._sampler("train").slides, self.config.patch_size, seed)
        sampler.hard_negatives = self._mined_hard_negatives()
        batches = data.batches(sampler, batch_size or self.config.batch_size, self._hard_share())
        return batches.map(lambda patches, labels: (patches, labels[:, None]))

    def loss(self) -> keras.losses.Loss:
        return keras.losses.BinaryCrossentropy()

    def evaluate(self, predict: Predict) -> float:
        """ROC AUC of `predict`'s probabilities over the held-out scan-grid cells."""
        cells, labels = self.heldout_cells()
        scores = np.concatenate(
            [
                np.asarray(predict(self.patches(cells[i : i + EVALUATION_BATCH]) / 255.0))
                .reshape(-1)
                .astype(np.float64)
                for i in range(0, len(cells), EVALUATION_BATCH)
            ]
        )
        return tumor_evaluate.slide_auc(scores, labels)  # ROC AUC of any scores

    def baseline_metric(self) -> tuple[str, float]:
        if self._baseline_auc is None:
            cells, labels = self.heldout_cells()
            scores = np.concatenate(
                [
                    baseline.darkness_scores(self.patches(cells[i : i + EVALUATION_BATCH]))
                    for i in range(0, len(cells), EVALUATION_BATCH)
                ]
            )
            self._baseline_auc = tumor_evaluate.slide_auc(scores, labels)
        return "darkness threshold", self._baseline_auc

    def latency_inputs(self, batch_size: int) -> np.ndarray:
        """Held-out scan-grid patches, as a scan sends them."""
        cells, _ = self.heldout_cells()
        picks = np.random.default_rng(1).choice(len(cells), batch_size, replace=False)
        return self.patches(cells[np.sort(picks)]) / np.float32(255.0)

    def representative_inputs(self, count: int) -> Iterator[list[np.ndarray]]:
        """Unaugmented training patches, half tumor and half normal as in training."""
        patches, _ = self._sampler("train").batch(count, self._hard_share())
        for patch in patches:
            yield [patch[None].astype(np.float32) / np.float32(255.0)]

    def build_student(
        self,
        teacher: keras.Model,
        widths: tuple[int, ...] = (16, 32, 64, 96),
        blocks_per_stage: int = 1,
        dropout: float | None = None,
    ) -> keras.Model:
        """The family's MobileNet-style classifier with other widths/depth."""
        return build_patch_classifier(
            self.config.patch_size,
            tuple(widths),
            blocks_per_stage,
            self.config.dropout if dropout is None else dropout,
        )

    def imitation_pairs(self, student: keras.Model, teacher: keras.Model) -> list[tuple[str, str]]:
        """The stem and the last block of every stage of the student imitate the
        teacher's at the same resolution (stage i halves it i times in both)."""
        teacher_at = {_resolution(teacher, name): name for name in _stage_ends(teacher)}
        return [
            (name, teacher_at[_resolution(student, name)])
            for name in _stage_ends(student)
            if _resolution(student, name) in teacher_at
        ]

    def tflite_module(self, model: keras.Model) -> tf.Module:
        return PatchTensorModule(model)

    def serving_module(self, model: keras.Model) -> tuple[tf.Module, dict]:
        module = tumor_signatures.TumorPatchModule(model)
        return module, module.signatures()

    def warmup_inputs(self, tflite: bool) -> tuple[str, dict]:
        request = tumor_family.warmup_inputs()
        if not tflite:
            return "serving_default", request
        (png,) = request[scorers.INPUT]
        patch = Image.open(io.BytesIO(png)).convert("RGB")
        side = self.config.patch_size
        patch = patch.resize((side, side), Image.BICUBIC)
        return self.tflite_signature, {"patches": np.asarray(patch, np.float32)[None] / 255.0}

    def _hard_share(self) -> float:
        return self.config.hard_fraction if self.config.mining_at else 0.0

    def _sampler(self, split: str) -> data.PatchSampler:
        """The split's slides in memory (read once per run)."""
        if split not in self._samplers:
            records = tumor_train.slide_set(self.workdir, self.config, split, progress=False)
            loaded = [
                data.load_training_slide(record, self.config.patch_size, self.config.stride)
                for record in records
            ]
            self._samplers[split] = data.PatchSampler(loaded, self.config.patch_size)
        return self._samplers[split]

    def _mined_hard_negatives(self) -> np.ndarray:
        """The normal cells the trained model scores highest, mined as training does."""
        if self._hard_negatives is None:
            sampler = data.PatchSampler(self._sampler("train").slides, self.config.patch_size)
            if self.config.mining_at:
                tumor_train.mine_hard_negatives(
                    self.load_model(), sampler, self.config.mining_pool, self.config.hard_negatives
                )
            self._hard_negatives = sampler.hard_negatives
        return self._hard_negatives

    def heldout_cells(self) -> tuple[np.ndarray, np.ndarray]:
        """(slide, row, col) of every held-out scan-grid cell with a clear label, and the
        labels (True: tumor). Tumor centres are kept on the 4 px grid the scan grid is on."""
        if self._heldout is None:
            stride = self.config.stride
            cells, labels = [], []
            for index, slide in enumerate(self._sampler("heldout").slides):
                tumor = np.concatenate([np.zeros((0, 2), np.int64), *slide.lesion_centres])
                on_grid = np.all(tumor % stride == stride // 2, axis=1)
                for centres, label in ((tumor[on_grid], True), (slide.grid_normal_centres, False)):
                    cells.append(np.column_stack([np.full(len(centres), index), centres]))
                    labels.append(np.full(len(centres), label))
            self._heldout = np.concatenate(cells), np.concatenate(labels)
        return self._heldout

    def patches(self, cells: np.ndarray) -> np.ndarray:
        """uint8 [N, P, P, 3]: the held-out patches centred on `cells`."""
        sampler = self._sampler("heldout")
        return np.stack([sampler.patch(*(int(v) for v in cell)) for cell in cells])


class PatchTensorModule(tf.Module):
    """Only `TumorPatchModule.predict_tensor`'s contract, at the model's fixed patch size,
    for the TFLite converter (the PNG signature does not convert to builtin ops)."""

    def __init__(self, model: keras.Model) -> None:
        super().__init__(name="tumor_tensor")
        self.model = model
        side = int(model.input_shape[1])
        self.predict_tensor = tf.function(
            self._predict,
            input_signature=[tf.TensorSpec([None, side, side, 3], tf.float32, name="patches")],
        )

    def _predict(self, patches: tf.Tensor) -> dict[str, tf.Tensor]:
        """float32 RGB [N, P, P, 3] in [0, 1] -> tumor probability [N]."""
        return {"probability": self.model(patches, training=False)[:, 0]}


def _stage_ends(model: keras.Model) -> list[str]:
    """The stem's activation and each stage's last block's, in depth order."""
    ends: dict[str, str] = {"stem": "stem_relu"}
    for layer in model.layers:
        if layer.name.startswith("stage") and layer.name.endswith("_pointwise_relu"):
            ends[layer.name.split("_")[0]] = layer.name  # later blocks overwrite earlier
    return list(ends.values())


def _resolution(model: keras.Model, layer: str) -> tuple[int, int]:
    return tuple(model.get_layer(layer).output.shape[1:3])
