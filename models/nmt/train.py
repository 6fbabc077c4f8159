"""Training on the train split, and the on-disk checkpoint.

Checkpoint layout, under `<workdir>/nmt/checkpoint/`: `config.json` (the TrainConfig),
`sentencepiece.model` (the vocabulary, trained on the train split only),
`model.weights.h5` and `history.json` (corpus counts, mean loss per chunk of steps,
seconds). Each file is written to a temporary name and renamed into place;
`config.json` is removed first and written last, so a half-written checkpoint reads as
missing rather than as a model that does not match its config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras

from models.nmt import corpus
from models.nmt.model import LuongSeq2Seq, build_seq2seq
from models.nmt.vocab import BOS_ID, EOS_ID, PAD_ID, Vocabulary, train_sentencepiece
from models.training import TrainingLog
from tfstack.atomic import atomic_write, atomic_write_bytes, atomic_write_text

CONFIG_FILE = "config.json"
VOCAB_FILE = "sentencepiece.model"
WEIGHTS_FILE = "model.weights.h5"
HISTORY_FILE = "history.json"
_BUCKET_BOUNDARIES = (8, 12, 16, 24, 32, 48)  # subwords: batches of similar lengths pad less


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model; saved beside its weights."""

    vocab_size: int = 4000
    embedding_dim: int = 128
    units: int = 256
    num_layers: int = 2
    dropout: float = 0.2
    steps: int = 4000
    batch_size: int = 64
    learning_rate: float = 2e-3  # Adam's, decayed to zero along a cosine over `steps`
    max_tokens: int = 64  # subwords per side, EOS included; longer training pairs are skipped
    seed: int = 0
    debian_data: bool = True  # False: the pip-only catalogs, same on every machine
    eval_sentences: int | None = None  # held-out pairs `evaluate` scores (None: all)
    log_every: int = 100  # steps per history entry

    def __post_init__(self):
        for field in ("steps", "batch_size", "max_tokens", "log_every"):
            if getattr(self, field) < 1:
                raise ValueError(
                    f"`{field}` must be positive. Received: {field}={getattr(self, field)}"
                )

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        return cls(**values)


PRESETS = {
    # Unit tests: the pip-only corpus (3.3k training pairs), so every machine trains the
    # same model.
    "tiny": TrainConfig(
        vocab_size=800,
        embedding_dim=64,
        units=128,
        steps=1500,
        learning_rate=3e-3,
        debian_data=False,
    ),
    # `tfstack demo`: Ding sentences and Debian catalogs when installed.
    "demo": TrainConfig(
        vocab_size=2000,
        embedding_dim=96,
        units=192,
        steps=2400,
        learning_rate=3e-3,
        eval_sentences=500,
    ),
    # For people with time.
    "full": TrainConfig(
        vocab_size=8000, embedding_dim=256, units=512, steps=40000, learning_rate=1e-3
    ),
}


def checkpoint_dir(workdir: pathlib.Path) -> pathlib.Path:
    """Where `train` saves and `load_trained` looks."""
    return pathlib.Path(workdir) / "nmt" / "checkpoint"


def load_corpus(config: TrainConfig) -> corpus.Corpus:
    """The corpus a config trains and evaluates on."""
    return corpus.load_corpus(corpus.DEBIAN_SOURCES if config.debian_data else None)


def train(
    config: TrainConfig, workdir: pathlib.Path, progress: bool = True
) -> tuple[LuongSeq2Seq, Vocabulary]:
    """Trains vocabulary and model from scratch on the train split; checkpoints both."""
    keras.utils.set_random_seed(config.seed)
    pairs = load_corpus(config)
    vocab = Vocabulary(
        train_sentencepiece(
            (text for pair in pairs.train for text in (pair.english, pair.german)),
            config.vocab_size,
        )
    )
    model = _build_model(config, vocab)
    batches, used = _train_batches(pairs.train, vocab, config)
    history = _fit(model, batches, config, progress)
    history["corpus"] = {**pairs.counts, "train pairs used (length limit)": used}
    history["vocab_size"] = vocab.size
    _save_checkpoint(model, vocab, config, history, workdir)
    return model, vocab


def load_trained(workdir: pathlib.Path) -> tuple[LuongSeq2Seq, Vocabulary, TrainConfig]:
    """The model, vocabulary and config that `train` saved in `workdir`."""
    directory = checkpoint_dir(workdir)
    config = load_config(workdir)
    vocab = Vocabulary((directory / VOCAB_FILE).read_bytes())
    model = _build_model(config, vocab)
    model.load_weights(directory / WEIGHTS_FILE)
    return model, vocab, config


def load_config(workdir: pathlib.Path) -> TrainConfig:
    """The config of the complete checkpoint in `workdir`."""
    directory = checkpoint_dir(workdir)
    if not all((directory / name).is_file() for name in (CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE)):
        raise FileNotFoundError(
            f"no trained nmt model in {directory}; run `tfstack train nmt` first"
        )
    return TrainConfig.from_dict(json.loads((directory / CONFIG_FILE).read_text()))


def encode_pairs(
    pairs: Sequence[corpus.Pair], vocab: Vocabulary, max_tokens: int
) -> tuple[list[list[int]], list[list[int]]]:
    """(source ids + EOS, target ids + EOS) of the pairs within `max_tokens` per side."""
    sources = vocab.encode([pair.english for pair in pairs])
    targets = vocab.encode([pair.german for pair in pairs])
    kept = [
        ([*source, EOS_ID], [*target, EOS_ID])
        for source, target in zip(sources, targets, strict=True)
        if len(source) < max_tokens and len(target) < max_tokens
    ]
    return [source for source, _ in kept], [target for _, target in kept]


def _build_model(config: TrainConfig, vocab: Vocabulary) -> LuongSeq2Seq:
    return build_seq2seq(
        vocab.size,
        embedding_dim=config.embedding_dim,
        units=config.units,
        num_layers=config.num_layers,
        dropout=config.dropout,
    )


def _train_batches(
    pairs: Sequence[corpus.Pair], vocab: Vocabulary, config: TrainConfig
) -> tuple[tf.data.Dataset, int]:
    """Endless shuffled (source, target input, target output) batches of similar lengths."""
    sources, targets = encode_pairs(pairs, vocab, config.max_tokens)
    examples = tf.data.Dataset.from_tensor_slices(
        (tf.ragged.constant(sources, tf.int32), tf.ragged.constant(targets, tf.int32))
    )

    def teacher_forcing(source: tf.Tensor, target: tf.Tensor):
        return source, tf.concat([[BOS_ID], target[:-1]], axis=0), target

    batches = (
        examples.shuffle(len(sources), seed=config.seed, reshuffle_each_iteration=True)
        .repeat()
        .map(teacher_forcing)
        .bucket_by_sequence_length(
            lambda source, target_in, target_out: tf.maximum(
                tf.shape(source)[0], tf.shape(target_out)[0]
            ),
            bucket_boundaries=list(_BUCKET_BOUNDARIES),
            bucket_batch_sizes=[config.batch_size] * (len(_BUCKET_BOUNDARIES) + 1),
            padding_values=PAD_ID,
        )
        .prefetch(tf.data.AUTOTUNE)
    )
    return batches, len(sources)


def _fit(model: LuongSeq2Seq, batches: tf.data.Dataset, config: TrainConfig, progress: bool):
    """Adam on the targets' negative log-likelihood (padding masked), cosine decay; returns
    the history."""
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, config.steps)
    optimizer = keras.optimizers.Adam(schedule, global_clipnorm=1.0)
    ids = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[ids, ids, ids])
    def train_step(source, target_in, target_out) -> tf.Tensor:
        with tf.GradientTape() as tape:
            log_probs = model.target_log_probs(source, target_in, target_out, training=True)
            mask = tf.cast(target_out != PAD_ID, log_probs.dtype)
            loss = -tf.reduce_sum(log_probs * mask) / tf.reduce_sum(mask)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    with TrainingLog("nmt", config.steps, config.log_every, progress) as log:
        for step, batch in enumerate(batches.take(config.steps), start=1):
            loss = float(train_step(*batch))
            if not math.isfinite(loss):
                raise ValueError(
                    f"training diverged at step {step} (loss {loss}); try a lower learning_rate"
                )
            log.step(step, {"loss": loss})
    return log.history()


def _save_checkpoint(
    model: LuongSeq2Seq,
    vocab: Vocabulary,
    config: TrainConfig,
    history: dict,
    workdir: pathlib.Path,
) -> None:
    directory = checkpoint_dir(workdir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).unlink(missing_ok=True)
    atomic_write_bytes(directory / VOCAB_FILE, vocab.model_proto)
    atomic_write(directory / WEIGHTS_FILE, model.save_weights)
    atomic_write_text(directory / HISTORY_FILE, json.dumps(history, indent=2))
    atomic_write_text(directory / CONFIG_FILE, json.dumps(dataclasses.asdict(config), indent=2))
