"""Training with CTC on noisy synthetic speech, and the on-disk checkpoint.

Checkpoint layout, under `<workdir>/speech/checkpoint/`: `config.json` (the
TrainConfig), `model.weights.h5`, `history.json` (mean loss per chunk of steps,
seconds) and `transcripts.json` (the training transcripts with their counts: the
most frequent one is the evaluation's baseline). `config.json` is removed first and
written last, so a half-written checkpoint reads as missing.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import pathlib
import time

import tensorflow as tf
import tf_keras as keras
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from models.speech import corpus, data, noise
from models.speech.model import build_recognizer, output_frames
from models.speech.synth import TRAIN_VOICES
from tfstack.atomic import atomic_write, atomic_write_text

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
HISTORY_FILE = "history.json"
TRANSCRIPTS_FILE = "transcripts.json"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; saved beside its weights."""

    voices: int = len(TRAIN_VOICES)  # the first `voices` of synth.TRAIN_VOICES
    sentences_per_voice: int = 120  # of the training sentences
    conv_filters: tuple[int, int] = (32, 32)
    rnn_units: int = 96
    rnn_layers: int = 2
    dropout: float = 0.1
    steps: int = 1500
    batch_size: int = 16
    learning_rate: float = 2e-3  # Adam's, decayed to zero along a cosine over `steps`
    clean_fraction: float = 0.25
    snr_range: tuple[float, float] = (0.0, 20.0)
    seed: int = 0
    log_every: int = 50  # steps per history entry

    def __post_init__(self):
        for field in ("voices", "sentences_per_voice", "steps", "batch_size", "log_every"):
            if getattr(self, field) < 1:
                raise ValueError(
                    f"`{field}` must be positive. Received: {field}={getattr(self, field)}"
                )
        if self.voices > len(TRAIN_VOICES):
            raise ValueError(
                f"`voices` must be at most {len(TRAIN_VOICES)}. Received: voices={self.voices}"
            )

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Inverse of `dataclasses.asdict` after a JSON round trip (lists -> tuples)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


PRESETS = {
    # Unit tests: 8 voices, 480 utterances, 400 steps (~100 s of CPU). Held-out voices,
    # clean and noisy: WER 0.40, CER 0.16 (baseline 0.66, 0.70). One GRU layer instead
    # of two learnt half as fast per second (CER 0.31, WER no better than the baseline).
    "tiny": TrainConfig(
        voices=8, sentences_per_voice=60, rnn_units=64, steps=400, learning_rate=3e-3
    ),
    # `tfstack demo`: 19 voices, 2280 utterances, 1500 steps (~400 s of CPU). Held-out
    # voices, clean and noisy: WER 0.20, CER 0.07 (baseline 0.67, 0.62); beam search on
    # clean speech: WER 0.11.
    "demo": TrainConfig(),
    # For people with time (not measured on two cores): every training sentence per voice.
    "full": TrainConfig(sentences_per_voice=224, rnn_units=160, rnn_layers=3, steps=15000),
}


def checkpoint_dir(workdir: pathlib.Path) -> pathlib.Path:
    """Where `train` saves and `load_trained` looks."""
    return pathlib.Path(workdir) / "speech" / "checkpoint"


def build(config: TrainConfig) -> keras.Model:
    return build_recognizer(
        config.conv_filters, config.rnn_units, config.rnn_layers, config.dropout
    )


def training_utterances(config: TrainConfig) -> list[data.Utterance]:
    """What the train split's voices say: training sentences only."""
    train_sentences, _ = corpus.split_sentences(corpus.all_sentences())
    voices = TRAIN_VOICES[: config.voices]
    return data.utterances(voices, train_sentences, config.sentences_per_voice, config.seed)


def train(
    config: TrainConfig,
    workdir: pathlib.Path,
    progress: bool = True,
    cache_dir: pathlib.Path | None = None,
) -> keras.Model:
    """Synthesises (or reads from the cache) the training audio, trains from scratch, and
    checkpoints the model in `workdir`."""
    cache_dir = data.default_cache_dir() if cache_dir is None else pathlib.Path(cache_dir)
    items = training_utterances(config)
    waveforms = data.load_waveforms(items, cache_dir, progress)
    transcripts = [item.text for item in items]
    batches = data.training_batches(
        waveforms,
        transcripts,
        noise.load_noise(cache_dir, "train"),
        config.batch_size,
        data.NoiseConditions(config.clean_fraction, config.snr_range),
        config.seed,
    )
    keras.utils.set_random_seed(config.seed)
    model = build(config)
    history = _fit(model, batches, config, progress)
    history["utterances"] = len(items)
    history["audio_seconds"] = round(sum(len(w) for w in waveforms) / 16000.0, 1)
    _save_checkpoint(model, config, history, collections.Counter(transcripts), workdir)
    return model


def load_trained(workdir: pathlib.Path) -> tuple[keras.Model, TrainConfig]:
    """The model and config that `train` saved in `workdir`."""
    directory = checkpoint_dir(workdir)
    if not (directory / CONFIG_FILE).is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"no trained speech model in {directory}; run `tfstack train speech` first"
        )
    config = TrainConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text()))
    model = build(config)
    model.load_weights(directory / WEIGHTS_FILE)
    return model, config


def training_transcripts(workdir: pathlib.Path) -> dict[str, int]:
    """Training transcript -> how many utterances said it, as saved by `train`."""
    return json.loads((checkpoint_dir(workdir) / TRANSCRIPTS_FILE).read_text())


def _fit(model: keras.Model, batches: tf.data.Dataset, config: TrainConfig, progress: bool) -> dict:
    """Adam on the mean CTC loss, cosine decay, clipped gradients; returns the history."""
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.steps)
    optimizer = keras.optimizers.Adam(schedule, clipnorm=5.0)
    spec = (
        (tf.TensorSpec([None, None, None], tf.float32), tf.TensorSpec([None], tf.int32)),
        (tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None], tf.int32)),
    )

    @tf.function(input_signature=spec)
    def train_step(inputs, targets) -> tf.Tensor:
        (features, frames), (labels, label_lengths) = inputs, targets
        with tf.GradientTape() as tape:
            logits = model([features, frames], training=True)
            loss = tf.reduce_mean(
                tf.nn.ctc_loss(
                    labels,
                    logits,
                    label_lengths,
                    output_frames(frames),
                    logits_time_major=False,
                    blank_index=-1,
                )
            )
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    chunks, chunk_losses = [], []
    start = chunk_start = time.perf_counter()
    with _progress_bar(progress) as bar:
        task = bar.add_task("speech", total=config.steps, loss=float("nan"), rate=0.0)
        for step, (inputs, targets) in enumerate(batches.take(config.steps), start=1):
            chunk_losses.append(float(train_step(inputs, targets)))
            bar.update(task, completed=step)
            if step % config.log_every and step < config.steps:
                continue
            now = time.perf_counter()
            chunks.append(
                {
                    "step": step,
                    "loss": sum(chunk_losses) / len(chunk_losses),
                    "seconds": round(now - start, 3),
                    "steps_per_second": round(len(chunk_losses) / (now - chunk_start), 2),
                }
            )
            bar.update(task, loss=chunks[-1]["loss"], rate=chunks[-1]["steps_per_second"])
            chunk_losses, chunk_start = [], now
    return {"seconds": round(time.perf_counter() - start, 3), "chunks": chunks}


def _progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("CTC loss {task.fields[loss]:.3f}"),
        TextColumn("{task.fields[rate]:.1f} steps/s"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def _save_checkpoint(
    model: keras.Model,
    config: TrainConfig,
    history: dict,
    transcripts: collections.Counter,
    workdir: pathlib.Path,
) -> None:
    directory = checkpoint_dir(workdir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).unlink(missing_ok=True)
    atomic_write(directory / WEIGHTS_FILE, model.save_weights)
    atomic_write_text(directory / HISTORY_FILE, json.dumps(history, indent=2))
    atomic_write_text(directory / TRANSCRIPTS_FILE, json.dumps(dict(transcripts), indent=2))
    atomic_write_text(directory / CONFIG_FILE, json.dumps(dataclasses.asdict(config), indent=2))
