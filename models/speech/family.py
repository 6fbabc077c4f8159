"""The speech family as the CLI and demo see it (see `models/__init__.py`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from models.evaluation import Evaluation
from models.speech import evaluate as sp_evaluate
from models.speech import train as sp_train
from models.speech.audio import wav_bytes
from models.speech.demo import serve_demo  # noqa: F401  (part of the family interface)
from models.speech.signatures import SpeechRecognitionModule
from models.training import has_checkpoint, preset_config

NAME = "speech"
PRESETS = sp_train.PRESETS
DEMO_PRESET = "demo"


def train(workdir: Path, preset: str = "demo", progress: bool = True, steps: int | None = None):
    """Train from a preset (optionally with a different step count); returns the Keras model."""
    config = preset_config(PRESETS, preset, steps)
    return sp_train.train(config, Path(workdir), progress=progress)


def is_trained(workdir: Path) -> bool:
    return has_checkpoint(sp_train.load_trained, workdir)


def evaluate(workdir: Path, progress: bool = True) -> Evaluation:
    """WER and CER on held-out voices, clean and at each SNR, vs the most frequent
    training transcript; also on sentences never heard in training, and with beam search."""
    model, _ = sp_train.load_trained(Path(workdir))
    answer = sp_evaluate.most_frequent(sp_train.training_transcripts(Path(workdir)))
    result = sp_evaluate.evaluate(model, answer, progress=progress)
    scores = result["scores"]
    rows = []
    noise_groups = [g for g in scores if g.startswith("noise ") or g.endswith(" noise")]
    for group in ("all", *sp_evaluate.CONDITIONS, *sorted(noise_groups), "unseen sentences"):
        label = "all held-out" if group == "all" else group
        for metric in ("wer", "cer"):
            model_score, baseline_score = (scores[group][k][metric] for k in ("model", "baseline"))
            rows.append((f"{metric.upper()} {label}", model_score, baseline_score))
    clean_baseline = scores["clean"]["baseline"]
    for metric in ("wer", "cer"):
        beam = result["beam_search_clean"][metric]
        rows.append((f"{metric.upper()} clean, beam search", beam, clean_baseline[metric]))
    return Evaluation(
        family=NAME,
        baseline="most frequent transcript",
        metrics=_metrics(result),
        rows=rows,
        details=result,
    )


def _metrics(result: dict) -> dict[str, float]:
    """Flat names for the JSON report: `wer`, `baseline_cer`, `wer_10_dB`, `cer_clean`..."""
    metrics = {}
    for group, entry in result["scores"].items():
        if group.startswith("voice "):
            continue  # per voice: in the details
        suffix = "" if group == "all" else "_" + group.replace(" ", "_")
        for who, prefix in (("model", ""), ("baseline", "baseline_")):
            for metric, value in entry[who].items():
                metrics[f"{prefix}{metric}{suffix}"] = value
    for metric, value in result["beam_search_clean"].items():
        metrics[f"{metric}_clean_beam_search"] = value
    return metrics


def serving_module(workdir: Path) -> tuple[tf.Module, dict]:
    model, _ = sp_train.load_trained(Path(workdir))
    module = SpeechRecognitionModule(model)
    return module, module.signatures()


def warmup_inputs() -> dict[str, list[bytes]]:
    """A serving_default request for export's warmup file: one second of a quiet tone
    (any valid WAV traces the signature; the transcript does not matter)."""
    seconds = np.arange(16000, dtype=np.float32) / 16000.0
    return {"audio_bytes": [wav_bytes(0.1 * np.sin(2 * np.pi * 440.0 * seconds))]}


def request_inputs(paths: list[Path]) -> dict[str, np.ndarray]:
    """WAV files go to the server as they are: the model decodes them."""
    return {"audio_bytes": np.array([Path(p).read_bytes() for p in paths], dtype=object)}


def save_outputs(outputs: dict[str, np.ndarray], paths: list[Path], out_dir: Path) -> list[Path]:
    """One `<name>.txt` transcript per input file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for source, transcript in zip(paths, outputs["transcript"], strict=True):
        target = out_dir / f"{Path(source).stem}.txt"
        target.write_text(transcript.decode() + "\n")
        written.append(target)
    return written
