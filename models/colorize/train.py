"""Training both stages on random crops of the train split, and the on-disk checkpoint.

The stages train side by side on the same batches, each on its own loss: stage 1 on
cross-entropy against soft-encoded low-resolution ab, stage 2 on squared ab error given
the true low-resolution colour (PixColor trains its refinement on true colour too).

Checkpoint layout, under `<workdir>/colorize/checkpoint/`: `config.json` (the
TrainConfig), `chroma.weights.h5`, `refinement.weights.h5`, `stats.json` (the
training set's mean ab, which the mean-chroma baseline paints, and the photos used) and
`history.json`. `config.json` is removed first and written last, so a half-written
checkpoint reads as missing.
"""

import dataclasses
import json
import pathlib

import tensorflow as tf
import tf_keras as keras

from models.colorize import chroma, data
from models.colorize.colorizer import Colorizer
from models.colorize.model import build_chroma_network, build_refinement_network
from models.superres import data as photos
from models.training import TrainingLog
from tfstack.atomic import atomic_write, atomic_write_text

CONFIG_FILE = "config.json"
CHROMA_WEIGHTS_FILE = "chroma.weights.h5"
REFINEMENT_WEIGHTS_FILE = "refinement.weights.h5"
STATS_FILE = "stats.json"
HISTORY_FILE = "history.json"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; saved beside its weights."""

    refine_side: int = 128  # photos are colourized at about this many pixels squared
    refine_crop: int = 64  # stage 2 trains on patches this big
    chroma_filters: tuple[int, int, int] = (16, 32, 64)
    chroma_dropout: float = 0.3
    refine_filters: int = 16
    steps: int = 1600
    batch_size: int = 8
    learning_rate: float = 2e-3  # Adam's, decayed to zero along a cosine over `steps`
    soft_encoding_sigma: float = 5.0  # ab units; spreads each target over nearby bins
    # Above 1: a network trained on a few dozen photos is overconfident on new ones, and
    # a flatter distribution's mean is the better guess (held out: 1.3 and 1.6 beat 1.0).
    decode_temperature: float = 1.3
    sample_correlation_px: float = 2.0  # low-res pixels over which sampling noise agrees
    seed: int = 0
    debian_photos: bool = True  # False: scikit-image photos only (too few to learn colour)
    log_every: int = 50  # steps per history entry

    def __post_init__(self):
        for field in ("steps", "batch_size", "refine_side", "refine_crop", "log_every"):
            if getattr(self, field) < 1:
                raise ValueError(
                    f"`{field}` must be positive. Received: {field}={getattr(self, field)}"
                )

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        """Inverse of `dataclasses.asdict` after a JSON round trip (lists -> tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


# Measured on two shared CPU cores with the Debian photos (42 colour photos train, 12 held
# out; mean-chroma baseline 17.32 dB, gray copy 16.64 dB). Gains vary by about 0.15 dB
# with the seed; longer or wider training on so few photos only overfits (3200 steps of
# `demo`: +0.35 dB).
PRESETS = {
    # Unit tests: ~40 s; held-out PSNR 17.74 dB, +0.42 dB over mean chroma.
    "tiny": TrainConfig(steps=500),
    # `tfstack demo`: ~100 s; held-out PSNR 17.79 dB, +0.47 dB over mean chroma.
    "demo": TrainConfig(),
    # Wider and longer, for photo collections larger than the bundled ones (~40 min;
    # not measured held out here).
    "full": TrainConfig(
        refine_side=192,
        refine_crop=96,
        chroma_filters=(32, 64, 128),
        refine_filters=32,
        batch_size=16,
        steps=6000,
    ),
}


@dataclasses.dataclass
class Trained:
    """A trained model as `load_trained` returns it."""

    colorizer: Colorizer
    config: TrainConfig
    mean_ab: tuple[float, float]  # of the training photos: the mean-chroma baseline


def checkpoint_dir(workdir: pathlib.Path) -> pathlib.Path:
    """Where `train` saves and `load_trained` looks."""
    return pathlib.Path(workdir) / "colorize" / "checkpoint"


def train(config: TrainConfig, workdir: pathlib.Path, progress: bool = True) -> Trained:
    """Trains both stages from scratch on the train split and checkpoints them in `workdir`."""
    keras.utils.set_random_seed(config.seed)
    train_photos, _ = data.colour_photos(photos.DEBIAN_ROOTS if config.debian_photos else None)
    images = [image for _, image in train_photos]
    chroma_network, refinement_network = _build(config)
    batches = data.training_batches(
        images, config.refine_side, config.refine_crop, config.batch_size, config.seed
    )
    history = _fit(chroma_network, refinement_network, batches, config, progress)
    stats = {
        "mean_ab": data.mean_ab(images),
        "photos": [photo.name for photo, _ in train_photos],
    }
    _save_checkpoint(chroma_network, refinement_network, config, stats, history, workdir)
    return Trained(_colorizer(chroma_network, refinement_network, config), config, stats["mean_ab"])


def load_trained(workdir: pathlib.Path) -> Trained:
    """The model that `train` saved in `workdir`."""
    directory = checkpoint_dir(workdir)
    needed = (CONFIG_FILE, CHROMA_WEIGHTS_FILE, REFINEMENT_WEIGHTS_FILE, STATS_FILE)
    if not all((directory / name).is_file() for name in needed):
        raise FileNotFoundError(
            f"no trained colorize model in {directory}; run `tfstack train colorize` first"
        )
    config = TrainConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text()))
    chroma_network, refinement_network = _build(config)
    chroma_network.load_weights(directory / CHROMA_WEIGHTS_FILE)
    refinement_network.load_weights(directory / REFINEMENT_WEIGHTS_FILE)
    stats = json.loads((directory / STATS_FILE).read_text())
    return Trained(
        _colorizer(chroma_network, refinement_network, config), config, tuple(stats["mean_ab"])
    )


def _build(config: TrainConfig) -> tuple[keras.Model, keras.Model]:
    return (
        build_chroma_network(config.chroma_filters, config.chroma_dropout),
        build_refinement_network(config.refine_filters),
    )


def _colorizer(chroma_network, refinement_network, config: TrainConfig) -> Colorizer:
    return Colorizer(
        chroma_network,
        refinement_network,
        config.refine_side,
        config.decode_temperature,
        config.sample_correlation_px,
    )


def _fit(
    chroma_network: keras.Model,
    refinement_network: keras.Model,
    batches: tf.data.Dataset,
    config: TrainConfig,
    progress: bool,
) -> dict:
    """Adam with cosine decay; returns the history (mean losses per chunk, timings)."""
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.steps)
    optimizer = keras.optimizers.Adam(schedule)
    variables = chroma_network.trainable_variables + refinement_network.trainable_variables

    @tf.function
    def train_step(batch: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        targets = chroma.soft_encode(batch["low_ab"], config.soft_encoding_sigma)
        with tf.GradientTape() as tape:
            logits = chroma_network(batch["stage1_l"], training=True)
            cross_entropy = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(targets, logits))
            refined = refinement_network(
                [batch["refine_l"], batch["refine_coarse_ab"]], training=True
            )
            # ab scaled to about [-1, 1]; the stages share no weights, so one sum is two losses.
            squared_error = tf.reduce_mean(
                tf.square((refined - batch["refine_ab"]) / chroma.AB_LIMIT)
            )
            loss = cross_entropy + squared_error
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        return cross_entropy, squared_error

    with TrainingLog(
        "colorize", config.steps, config.log_every, progress, "cross_entropy", "cross-entropy"
    ) as log:
        for step, batch in enumerate(batches.take(config.steps), start=1):
            cross_entropy, squared_error = train_step(batch)
            log.step(
                step, {"cross_entropy": float(cross_entropy), "refine_mse": float(squared_error)}
            )
    return log.history()


def _save_checkpoint(
    chroma_network: keras.Model,
    refinement_network: keras.Model,
    config: TrainConfig,
    stats: dict,
    history: dict,
    workdir: pathlib.Path,
) -> None:
    directory = checkpoint_dir(workdir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).unlink(missing_ok=True)
    atomic_write(directory / CHROMA_WEIGHTS_FILE, chroma_network.save_weights)
    atomic_write(directory / REFINEMENT_WEIGHTS_FILE, refinement_network.save_weights)
    atomic_write_text(directory / STATS_FILE, json.dumps(stats, indent=2))
    atomic_write_text(directory / HISTORY_FILE, json.dumps(history, indent=2))
    atomic_write_text(directory / CONFIG_FILE, json.dumps(dataclasses.asdict(config), indent=2))
