"""Training with hard-negative mining, the slide sets it uses, and the on-disk checkpoint.

Training runs in phases. The first draws normal patches uniformly; at each fraction of
`steps` in `mining_at`, the model scores a pool of normal scan-grid patches of the training
slides, and the `hard_negatives` it scores highest make up `hard_fraction` of the normal
patches from then on (the false positives a scan would report: epidermis, lymphoid
aggregates, folds).

Layout under `<workdir>/tumor/`: `slides/<split>-<digest>/` (generated slide sets, reused
while their parameters match) and `checkpoint/` with `config.json` (the TrainConfig),
`model.weights.h5` and `history.json`, each written atomically, `config.json` last.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from models.training import TrainingLog
from models.tumor import data, slides
from models.tumor.model import build_patch_classifier
from tfstack.atomic import atomic_write, atomic_write_text

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
HISTORY_FILE = "history.json"
MINING_BATCH = 512


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model, its slides included."""

    slide_size: int = 1536
    train_slides: int = 16
    heldout_slides: int = 10
    slide_seed: int = 0
    patch_size: int = 64
    stride: int = 32  # scan grid and heatmap cell, px at level 0
    widths: tuple[int, ...] = (24, 48, 96, 128)
    blocks_per_stage: int = 1
    dropout: float = 0.2
    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 2e-3  # Adam's, decayed to zero along a cosine over `steps`
    mining_at: tuple[float, ...] = (0.4, 0.7)
    mining_pool: int = 10000
    hard_negatives: int = 800
    hard_fraction: float = 0.5
    seed: int = 0
    log_every: int = 100

    def __post_init__(self):
        for field in ("slide_size", "train_slides", "heldout_slides", "patch_size", "stride"):
            if getattr(self, field) < 1:
                raise ValueError(
                    f"`{field}` must be positive. Received: {field}={getattr(self, field)}"
                )
        for field in ("steps", "batch_size", "mining_pool", "hard_negatives", "log_every"):
            if getattr(self, field) < 1:
                raise ValueError(
                    f"`{field}` must be positive. Received: {field}={getattr(self, field)}"
                )
        if any(not 0.0 < f < 1.0 for f in self.mining_at) or list(self.mining_at) != sorted(
            self.mining_at
        ):
            raise ValueError(
                f"`mining_at` must be increasing fractions in (0, 1). Received: {self.mining_at}"
            )
        if not 0.0 <= self.hard_fraction <= 1.0:
            raise ValueError(f"`hard_fraction` must be in [0, 1]. Received: {self.hard_fraction}")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Inverse of `dataclasses.asdict` after a JSON round trip (lists -> tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    @property
    def slide_spec(self) -> slides.SlideSpec:
        return slides.SlideSpec(height=self.slide_size, width=self.slide_size)


PRESETS = {
    # Unit tests: 46 CPU-seconds for slides, training and held-out evaluation (under a
    # minute on two cores); FROC 0.88 and slide AUC 0.88 held out, baseline 0.21 and 0.0.
    "tiny": TrainConfig(
        slide_size=1024,
        train_slides=8,
        heldout_slides=6,
        widths=(16, 32, 64, 96),
        blocks_per_stage=1,
        steps=500,
        mining_at=(0.5,),
        mining_pool=3000,
        hard_negatives=300,
    ),
    # `tfstack demo`: 168 CPU-seconds for slides, training and held-out evaluation (about
    # two minutes on two cores); FROC 1.0 and slide AUC 1.0 held out (10 slides, 18
    # lesions), baseline 0.50 and 0.69.
    "demo": TrainConfig(),
    # For people with time: roughly 25 times the demo's training compute (not timed here).
    "full": TrainConfig(
        slide_size=2048,
        train_slides=40,
        heldout_slides=20,
        widths=(32, 64, 128, 256),
        blocks_per_stage=2,
        steps=12000,
        batch_size=128,
        mining_at=(0.3, 0.5, 0.7),
        mining_pool=40000,
        hard_negatives=3000,
    ),
}


def tumor_dir(workdir: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(workdir) / "tumor"


def checkpoint_dir(workdir: pathlib.Path) -> pathlib.Path:
    """Where `train` saves and `load_trained` looks."""
    return tumor_dir(workdir) / "checkpoint"


def slide_set(
    workdir: pathlib.Path, config: TrainConfig, split: str, progress: bool = True
) -> list[slides.SlideRecord]:
    """The `split` slides of `config`, generated into the workdir on first use."""
    count = config.train_slides if split == "train" else config.heldout_slides
    spec = config.slide_spec
    key = json.dumps([dataclasses.asdict(spec), count, config.slide_seed], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    directory = tumor_dir(workdir) / "slides" / f"{split}-{digest}"
    with _slides_progress_bar(progress) as bar:
        task = bar.add_task(f"{split} slides", total=count)
        return slides.make_slides(
            directory,
            split,
            count,
            spec,
            config.slide_seed,
            on_slide=lambda index: bar.update(task, completed=index + 1),
        )


def train(config: TrainConfig, workdir: pathlib.Path, progress: bool = True) -> keras.Model:
    """Generates (or reuses) the training slides, trains from scratch, checkpoints."""
    started = time.perf_counter()
    records = slide_set(workdir, config, "train", progress)
    loaded = [data.load_training_slide(r, config.patch_size, config.stride) for r in records]
    sampler = data.PatchSampler(loaded, config.patch_size, config.seed)
    slides_seconds = time.perf_counter() - started
    keras.utils.set_random_seed(config.seed)
    model = build_patch_classifier(
        config.patch_size, config.widths, config.blocks_per_stage, config.dropout
    )
    history = _fit(model, sampler, config, progress)
    history["slides_seconds"] = round(slides_seconds, 3)
    _save_checkpoint(model, config, history, workdir)
    return model


def load_trained(workdir: pathlib.Path) -> tuple[keras.Model, TrainConfig]:
    """The model and config that `train` saved in `workdir`."""
    directory = checkpoint_dir(workdir)
    if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"no trained tumor model in {directory}; run `tfstack train tumor` first"
        )
    config = TrainConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text()))
    model = build_patch_classifier(
        config.patch_size, config.widths, config.blocks_per_stage, config.dropout
    )
    model.load_weights(directory / WEIGHTS_FILE)
    return model, config


def mine_hard_negatives(
    model: keras.Model, sampler: data.PatchSampler, pool_size: int, keep: int
) -> dict:
    """Score a pool of normal grid patches; the `keep` highest become the sampler's hard
    negatives. Returns what the pool looked like (its false-positive rate at 0.5)."""
    pool = sampler.grid_normal_cells(pool_size)
    scores = np.concatenate(
        [
            model(
                np.stack([sampler.patch(*cell) for cell in pool[i : i + MINING_BATCH]])
                / np.float32(255.0),
                training=False,
            )
            .numpy()
            .ravel()
            for i in range(0, len(pool), MINING_BATCH)
        ]
    )
    hardest = np.argsort(-scores)[:keep]
    sampler.hard_negatives = pool[hardest]
    return {
        "pool": len(pool),
        "false_positive_rate": float(np.mean(scores > 0.5)),
        "hard_min_probability": float(scores[hardest].min()),
        "hard_mean_probability": float(scores[hardest].mean()),
    }


def _fit(
    model: keras.Model, sampler: data.PatchSampler, config: TrainConfig, progress: bool
) -> dict:
    """Adam on binary cross-entropy, cosine decay, mining between phases."""
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.steps)
    optimizer = keras.optimizers.Adam(schedule)
    loss_fn = keras.losses.BinaryCrossentropy()

    @tf.function
    def train_step(patches: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = loss_fn(labels[:, None], model(patches, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    boundaries = [round(f * config.steps) for f in config.mining_at] + [config.steps]
    mining, step = [], 0
    with TrainingLog("tumor", config.steps, config.log_every, progress) as log:
        for phase_end in boundaries:
            hard_fraction = config.hard_fraction if mining else 0.0
            for patches, labels in data.batches(sampler, config.batch_size, hard_fraction).take(
                phase_end - step
            ):
                step += 1
                log.step(step, {"loss": float(train_step(patches, labels))}, phase_end)
            if step < config.steps:
                log.pause("tumor (mining)")
                mined = mine_hard_negatives(
                    model, sampler, config.mining_pool, config.hard_negatives
                )
                mining.append({"step": step, **mined})
                log.resume()
    return {**log.history(), "mining": mining}


def _slides_progress_bar(enabled: bool) -> Progress:
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
    return Progress(*columns, TimeRemainingColumn(), disable=not enabled)


def _save_checkpoint(
    model: keras.Model, config: TrainConfig, history: dict, workdir: pathlib.Path
) -> None:
    directory = checkpoint_dir(workdir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).unlink(missing_ok=True)
    atomic_write(directory / WEIGHTS_FILE, model.save_weights)
    atomic_write_text(directory / HISTORY_FILE, json.dumps(history, indent=2))
    atomic_write_text(directory / CONFIG_FILE, json.dumps(dataclasses.asdict(config), indent=2))
