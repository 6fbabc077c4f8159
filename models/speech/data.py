"""Who says what: training and test utterances, synthesised once into an on-disk cache,
and the tf.data pipeline of noisy training batches.

The cache (`$TFSTACK_CACHE/speech`, default `~/.cache/tfstack/speech`) holds one WAV
per voice and sentence, named by the voice and a hash of the text, and the noise
files; it only ever gains complete files, so runs (and test sessions) share it.

Training batches are multi-condition, as in Aurora-4: each utterance is kept clean
with probability `clean_fraction`, else it gets one noise kind, drawn uniformly from
the synthetic (white, pink, brown) and recorded (street, transport, babble, machinery)
ones that `noise.load_noise` found, at an SNR drawn uniformly from `snr_range`, from
the training part of the noise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tensorflow as tf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from models.speech import alphabet, noise
from models.speech.audio import read_wav
from models.speech.features import waveform_features
from models.speech.synth import Voice, synthesize


def default_cache_dir() -> Path:
    """`$TFSTACK_CACHE/speech`, or `~/.cache/tfstack/speech`."""
    root = os.environ.get("TFSTACK_CACHE") or Path.home() / ".cache" / "tfstack"
    return Path(root) / "speech"


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One voice saying one (normalized) sentence."""

    voice: Voice
    text: str

    def path(self, cache_dir: Path) -> Path:
        digest = hashlib.sha256(self.text.encode()).hexdigest()[:20]
        return Path(cache_dir) / "utterances" / self.voice.name / f"{digest}.wav"


def utterances(
    voices: Sequence[Voice], sentences: Sequence[str], per_voice: int, seed: int
) -> list[Utterance]:
    """Each voice says `per_voice` different sentences (all when there are fewer), drawn
    with a generator seeded by `seed` and the voice, so adding a voice changes no other's."""
    chosen = []
    for voice in voices:
        rng = np.random.default_rng([seed, *voice.name.encode()])
        count = min(per_voice, len(sentences))
        picks = rng.choice(len(sentences), size=count, replace=False)
        chosen += [Utterance(voice, sentences[i]) for i in sorted(picks)]
    return chosen


def synthesize_all(
    items: Sequence[Utterance], cache_dir: Path, progress: bool = True, workers: int = 2
) -> list[Path]:
    """Paths of every utterance's WAV, synthesising the missing ones (`workers` at a time)."""
    paths = [item.path(cache_dir) for item in items]
    missing = [(item, path) for item, path in zip(items, paths, strict=True) if not path.is_file()]
    if missing:
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn())
        with (
            Progress(*columns, TimeRemainingColumn(), disable=not progress) as bar,
            ThreadPoolExecutor(workers) as pool,
        ):
            task = bar.add_task("synthesising speech", total=len(missing))
            jobs = [pool.submit(synthesize, item.voice, item.text, path) for item, path in missing]
            for job in jobs:
                job.result()
                bar.advance(task)
    return paths


def load_waveforms(
    items: Sequence[Utterance], cache_dir: Path, progress: bool = True
) -> list[np.ndarray]:
    """float32 samples of each utterance, synthesised first where not cached."""
    return [read_wav(path) for path in synthesize_all(items, cache_dir, progress)]


@dataclasses.dataclass(frozen=True)
class NoiseConditions:
    """How training utterances are corrupted."""

    clean_fraction: float = 0.25
    snr_range: tuple[float, float] = (0.0, 20.0)


def training_batches(
    waveforms: Sequence[np.ndarray],
    transcripts: Sequence[str],
    noises: dict[str, np.ndarray],
    batch_size: int,
    conditions: NoiseConditions = NoiseConditions(),
    seed: int = 0,
) -> tf.data.Dataset:
    """Endless ((features, frames), (labels, label_lengths)) batches, the same for a seed.

    Noise is mixed in NumPy (cheap); features are computed by TensorFlow in parallel
    with training (`prefetch`)."""
    if len(waveforms) != len(transcripts) or not waveforms:
        raise ValueError("`waveforms` and `transcripts` must be non-empty and of equal length")
    labels = [np.array(alphabet.encode(text), np.int32) for text in transcripts]
    kinds = sorted(noises)

    def batches() -> Iterator[tuple[np.ndarray, ...]]:
        rng = np.random.default_rng(seed)
        while True:
            rows = rng.choice(len(waveforms), batch_size, replace=len(waveforms) < batch_size)
            audio = [_corrupt(waveforms[i], noises, kinds, conditions, rng) for i in rows]
            yield (*_pad(audio), *_pad([labels[i] for i in rows]))

    signature = (
        tf.TensorSpec([batch_size, None], tf.float32),
        tf.TensorSpec([batch_size], tf.int32),
        tf.TensorSpec([batch_size, None], tf.int32),
        tf.TensorSpec([batch_size], tf.int32),
    )

    def to_features(audio, lengths, label_ids, label_lengths):
        return waveform_features(audio, lengths), (label_ids, label_lengths)

    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    return dataset.map(to_features, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def _corrupt(
    speech: np.ndarray,
    noises: dict[str, np.ndarray],
    kinds: Sequence[str],
    conditions: NoiseConditions,
    rng: np.random.Generator,
) -> np.ndarray:
    if not kinds or rng.random() < conditions.clean_fraction:
        return speech
    snr_db = rng.uniform(*conditions.snr_range)
    return noise.mix_at_snr(speech, noises[kinds[rng.integers(len(kinds))]], snr_db, rng)


def _pad(rows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(row) for row in rows], np.int32)
    padded = np.zeros((len(rows), lengths.max()), rows[0].dtype)
    for index, row in enumerate(rows):
        padded[index, : len(row)] = row
    return padded, lengths
