"""Training on random patches of the train split, and the on-disk checkpoint.

Checkpoint layout, under `<workdir>/superres/checkpoint/`: `config.json` (the
TrainConfig), `model.weights.h5` and `history.json` (mean loss per chunk of steps,
seconds). Each file is written to a temporary name and renamed into place;
`config.json` is removed first and written last, so a half-written checkpoint reads
as missing rather than as a model that does not match its config.
"""

import dataclasses
import json
import pathlib

import tensorflow as tf
import tf_keras as keras

from models.superres import data
from models.superres.model import build_espcn
from models.training import TrainingLog
from tfstack import distribute
from tfstack.atomic import atomic_write, atomic_write_text

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
HISTORY_FILE = "history.json"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; saved beside its weights."""

    scale: int = 2
    filters: tuple[int, ...] = (64, 32)
    kernel_sizes: tuple[int, ...] = (5, 3)
    steps: int = 3000
    batch_size: int = 16
    patch_size: int = 64
    learning_rate: float = 1e-3  # Adam's, decayed to zero along a cosine over `steps`
    seed: int = 0
    debian_photos: bool = True  # False: scikit-image photos only, same on every machine
    log_every: int = 100  # steps per history entry

    def __post_init__(self):
        for field in ("steps", "batch_size", "patch_size", "log_every"):
            if getattr(self, field) < 1:
                raise ValueError(
                    f"`{field}` must be positive. Received: {field}={getattr(self, field)}"
                )

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Inverse of `dataclasses.asdict` after a JSON round trip (lists -> tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


PRESETS = {
    # Unit tests: pip-only data so every machine trains the same model. ~11 s on two
    # idle cores; +1.2 dB PSNR over bicubic on the pinned held-out photos.
    "tiny": TrainConfig(filters=(32, 32), steps=600, debian_photos=False),
    # `tfstack demo`: ~105 s on two idle cores; +2.1 dB over bicubic held out
    # (+1.8 dB on the pinned scikit-image photos, also when trained on those alone).
    "demo": TrainConfig(steps=5000),
    # For people with time (~40 min on two cores).
    "full": TrainConfig(filters=(64, 64, 32), kernel_sizes=(5, 3, 3), steps=60000, batch_size=32),
}


def checkpoint_dir(workdir: pathlib.Path) -> pathlib.Path:
    """Where `train` saves and `load_trained` looks."""
    return pathlib.Path(workdir) / "superres" / "checkpoint"


def train(config: TrainConfig, workdir: pathlib.Path, progress: bool = True) -> keras.Model:
    """Trains a model from scratch on the train split and checkpoints it in `workdir`.

    Under TF_CONFIG with several workers (tfstack.distribute) every worker runs this in
    lockstep on its share of each batch; only the chief's checkpoint lands in `workdir`."""
    strategy = distribute.strategy_from_tf_config()
    keras.utils.set_random_seed(config.seed)
    with distribute.scope(strategy):
        model = build_espcn(config.scale, config.filters, config.kernel_sizes)
        history = _fit(model, _train_batches(config), config, progress, strategy)
    with distribute.checkpoint_workdir(workdir, strategy) as target:
        _save_checkpoint(model, config, history, target)
    return model


def load_trained(workdir: pathlib.Path) -> tuple[keras.Model, TrainConfig]:
    """The model and config that `train` saved in `workdir`."""
    directory = checkpoint_dir(workdir)
    if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"no trained superres model in {directory}; run `tfstack train superres` first"
        )
    config = TrainConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text()))
    model = build_espcn(config.scale, config.filters, config.kernel_sizes)
    model.load_weights(directory / WEIGHTS_FILE)
    return model, config


def _train_batches(config: TrainConfig) -> tf.data.Dataset:
    train_photos, _ = data.split_photos(
        data.discover_photos(data.DEBIAN_ROOTS if config.debian_photos else None)
    )
    return data.patch_dataset(
        [photo.load() for photo in train_photos],
        scale=config.scale,
        patch_size=config.patch_size,
        batch_size=config.batch_size,
        seed=config.seed,
    )


def _fit(
    model: keras.Model,
    batches: tf.data.Dataset,
    config: TrainConfig,
    progress: bool,
    strategy: tf.distribute.Strategy | None = None,
) -> dict:
    """Adam on MSE with cosine decay; returns the history (mean loss per chunk, timings)."""
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.steps)
    optimizer = keras.optimizers.Adam(schedule)
    batches = batches.take(config.steps)
    if strategy is not None:
        # Every worker builds the same seeded batches and trains on its slice of each, so
        # the run has the preset's batch size and step count, split over the workers.
        options = tf.data.Options()
        by_element = tf.data.experimental.AutoShardPolicy.DATA
        options.experimental_distribute.auto_shard_policy = by_element
        batches = strategy.experimental_distribute_dataset(batches.with_options(options))
    replicas = strategy or tf.distribute.get_strategy()  # the default one: a plain call

    @tf.function
    def train_step(lr: tf.Tensor, hr: tf.Tensor) -> tf.Tensor:
        def replica_step(lr: tf.Tensor, hr: tf.Tensor) -> tf.Tensor:
            with tf.GradientTape() as tape:
                # MSE is what PSNR measures; L1 sometimes never left the bicubic start.
                loss = tf.reduce_mean(tf.square(hr - model(lr, training=True)))
                # Gradients are summed over replicas: scale so the sum is the mean's.
                loss = loss / replicas.num_replicas_in_sync
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return loss

        losses = replicas.run(replica_step, args=(lr, hr))
        return replicas.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    with TrainingLog("superres", config.steps, config.log_every, progress) as log:
        for step, (lr, hr) in enumerate(batches, start=1):
            log.step(step, {"loss": float(train_step(lr, hr))})
    return {**log.history(), "replicas": replicas.num_replicas_in_sync}


def _save_checkpoint(
    model: keras.Model, config: TrainConfig, history: dict, workdir: pathlib.Path
) -> None:
    directory = checkpoint_dir(workdir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).unlink(missing_ok=True)
    atomic_write(directory / WEIGHTS_FILE, model.save_weights)
    atomic_write_text(directory / HISTORY_FILE, json.dumps(history, indent=2))
    atomic_write_text(directory / CONFIG_FILE, json.dumps(dataclasses.asdict(config), indent=2))
