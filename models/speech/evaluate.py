"""Word and character error rates (jiwer) on held-out voices, clean and noisy, vs a baseline.

The test set: every held-out voice (`synth.HELDOUT_VOICES`, never heard in training)
says `SENTENCES_PER_VOICE` training sentences and as many held-out ones (never heard
at all), once clean and once at each SNR of `SNRS_DB`, with the noise kinds taken in
turn (a different kind at each SNR) from the evaluation part of the noise: synthetic
white, pink and brown, and the recorded street, transport, babble and machinery files
that training never hears. It is the same for every preset, and on every machine with
`lincity-ng-data` installed; without it the test set has synthetic noise only, and
the report's `noise_kinds` says so.

Scores are reported overall, per condition (clean, each SNR), per noise kind
(`noise babble`), per class (`recorded noise`, `synthetic noise`) and per class and
SNR (`recorded 0 dB`), per voice, and for seen and unseen sentences.

The baseline does not listen: it answers every utterance with the most frequent
training transcript (the strongest constant answer; the empty string scores a WER
and CER of exactly 1, also reported).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import jiwer
import numpy as np
import tf_keras as keras

from models.speech import corpus, data, noise, recorded_noise
from models.speech.recognize import Transcriber
from models.speech.synth import HELDOUT_VOICES

SNRS_DB = (20, 10, 5, 0)
CONDITIONS = ("clean", *(f"{snr} dB" for snr in SNRS_DB))
SENTENCES_PER_VOICE = 10  # seen in training, and as many unseen
BEAM_WIDTH = 8
TEST_SEED = 1234


@dataclasses.dataclass(frozen=True)
class TestUtterance:
    """One held-out utterance under one condition, ready to transcribe."""

    reference: str
    voice: str
    condition: str
    noise: str  # "" when clean
    seen_sentence: bool
    waveform: np.ndarray = dataclasses.field(repr=False, compare=False)


def test_set(
    cache_dir: Path | None = None,
    progress: bool = True,
    sounds_dir: Path = recorded_noise.SOUNDS_DIR,
) -> list[TestUtterance]:
    """Every held-out voice, sentence and condition (synthesised on first use)."""
    cache_dir = data.default_cache_dir() if cache_dir is None else Path(cache_dir)
    train_sentences, heldout_sentences = corpus.split_sentences(corpus.all_sentences())
    seen = data.utterances(HELDOUT_VOICES, train_sentences, SENTENCES_PER_VOICE, TEST_SEED)
    unseen = data.utterances(HELDOUT_VOICES, heldout_sentences, SENTENCES_PER_VOICE, TEST_SEED)
    items = seen + unseen
    waveforms = data.load_waveforms(items, cache_dir, progress)
    noises = noise.load_noise(cache_dir, "eval", sounds_dir)
    kinds = list(noises)
    tests = []
    for index, (item, clean) in enumerate(zip(items, waveforms, strict=True)):
        is_seen = index < len(seen)
        tests.append(TestUtterance(item.text, item.voice.name, "clean", "", is_seen, clean))
        for position, snr_db in enumerate(SNRS_DB):
            kind = kinds[(index + position) % len(kinds)]
            rng = np.random.default_rng([TEST_SEED, snr_db, index])
            noisy = noise.mix_at_snr(clean, noises[kind], snr_db, rng)
            tests.append(
                TestUtterance(item.text, item.voice.name, f"{snr_db} dB", kind, is_seen, noisy)
            )
    return tests


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus-level WER and CER (errors over all reference words / characters)."""
    return {
        "wer": float(jiwer.wer(list(references), list(hypotheses))),
        "cer": float(jiwer.cer(list(references), list(hypotheses))),
    }


def most_frequent(transcripts: dict[str, int]) -> str:
    """The baseline's answer: the most frequent transcript (ties: alphabetically first)."""
    if not transcripts:
        raise ValueError("`transcripts` must not be empty")
    return min(transcripts, key=lambda text: (-transcripts[text], text))


def score(
    tests: Sequence[TestUtterance], hypotheses: Sequence[str], baseline_answer: str
) -> dict[str, dict]:
    """Model and baseline error rates overall, per condition, per noise kind, per noise
    class (and class and SNR), per voice and for seen and unseen sentences."""
    groups: dict[str, list[int]] = {"all": list(range(len(tests)))}
    for index, test in enumerate(tests):
        sentences = "seen sentences" if test.seen_sentence else "unseen sentences"
        names = [test.condition, f"voice {test.voice}", sentences]
        if test.noise:
            kind_class = noise.noise_class(test.noise)
            names += [f"noise {test.noise}", f"{kind_class} noise"]
            names.append(f"{kind_class} {test.condition}")
        for group in names:
            groups.setdefault(group, []).append(index)
    scores = {}
    for group, rows in groups.items():
        references = [tests[i].reference for i in rows]
        scores[group] = {
            "model": error_rates(references, [hypotheses[i] for i in rows]),
            "baseline": error_rates(references, [baseline_answer] * len(rows)),
            "utterances": len(rows),
        }
    return scores


def evaluate(
    model: keras.Model,
    baseline_answer: str,
    cache_dir: Path | None = None,
    progress: bool = True,
    sounds_dir: Path = recorded_noise.SOUNDS_DIR,
) -> dict:
    """Greedy transcripts of the whole test set scored against the baseline; beam search
    on the clean condition; examples: each voice's first unseen sentence, every condition;
    which noise kinds (and recorded files) the noisy conditions used."""
    tests = test_set(cache_dir, progress, sounds_dir)
    transcriber = Transcriber(model)
    hypotheses = transcriber([test.waveform for test in tests])
    clean = [index for index, test in enumerate(tests) if test.condition == "clean"]
    beam = transcriber([tests[i].waveform for i in clean], beam_width=BEAM_WIDTH)
    references = [tests[i].reference for i in clean]
    return {
        "baseline_answer": baseline_answer,
        "empty_answer": error_rates(references, [""] * len(references)),
        "scores": score(tests, hypotheses, baseline_answer),
        "beam_search_clean": error_rates(references, beam),
        "beam_width": BEAM_WIDTH,
        "examples": _examples(tests, hypotheses),
        "noise_kinds": noise_kinds(tests),
        "recorded_noise_files": {
            category: [path.name for path in parts["eval"]]
            for category, parts in recorded_noise.split_files(sounds_dir).items()
        },
    }


def noise_kinds(tests: Sequence[TestUtterance]) -> dict[str, list[str]]:
    """`synthetic` and `recorded` -> the noise kinds the test set used, in order of use."""
    kinds: dict[str, list[str]] = {"synthetic": [], "recorded": []}
    for test in tests:
        if test.noise and test.noise not in kinds[noise.noise_class(test.noise)]:
            kinds[noise.noise_class(test.noise)].append(test.noise)
    return kinds


def _examples(tests: Sequence[TestUtterance], hypotheses: Sequence[str]) -> list[dict]:
    examples, taken = [], set()
    for test, hypothesis in zip(tests, hypotheses, strict=True):
        if test.seen_sentence or (test.voice, test.condition) in taken:
            continue
        taken.add((test.voice, test.condition))
        examples.append(
            {
                "voice": test.voice,
                "condition": test.condition,
                "reference": test.reference,
                "model": hypothesis,
            }
        )
    return examples
