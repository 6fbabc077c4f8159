"""The nmt family as the CLI and demo see it (see `models/__init__.py`)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from models.evaluation import Evaluation, ServedResult
from models.nmt import corpus
from models.nmt import evaluate as nmt_evaluate
from models.nmt import train as nmt_train
from models.nmt.signatures import DEFAULT_BEAM_SIZE, TranslationModule
from models.training import has_checkpoint, preset_config

NAME = "nmt"
PRESETS = nmt_train.PRESETS
DEMO_PRESET = "demo"
SERVED_SENTENCES = 300  # held-out pairs `serve_demo` sends through the server
SERVED_EXAMPLES = 4
WARMUP_TEXT = ("Change password", "The file could not be opened.")


def train(workdir: Path, preset: str = "demo", progress: bool = True, steps: int | None = None):
    """Train from a preset (optionally with a different step count); returns the Keras model."""
    config = preset_config(PRESETS, preset, steps)
    model, _ = nmt_train.train(config, Path(workdir), progress=progress)
    return model


def is_trained(workdir: Path) -> bool:
    return has_checkpoint(nmt_train.load_config, workdir)


def evaluate(workdir: Path) -> Evaluation:
    """sacreBLEU and chrF of the trained model vs copying the source, on held-out pairs."""
    module, config = _trained_module(Path(workdir))
    heldout = nmt_train.load_corpus(config).heldout
    result = nmt_evaluate.evaluate(module, corpus.sample(heldout, config.eval_sentences))
    return Evaluation(
        family=NAME,
        baseline="copy source",
        metrics={k: float(v) for k, v in result.items() if isinstance(v, int | float)},
        rows=[
            (f"sacreBLEU (beam {DEFAULT_BEAM_SIZE})", result["model_bleu"], result["copy_bleu"]),
            (f"chrF (beam {DEFAULT_BEAM_SIZE})", result["model_chrf"], result["copy_chrf"]),
            ("sacreBLEU (greedy)", result["greedy_bleu"], result["copy_bleu"]),
            ("chrF (greedy)", result["greedy_chrf"], result["copy_chrf"]),
        ],
        details={
            key: result[key] for key in ("sentences", "examples", "sacrebleu_version", "beam_size")
        },
    )


def serving_module(workdir: Path) -> tuple[tf.Module, dict]:
    module, _ = _trained_module(Path(workdir))
    return module, module.signatures()


def warmup_inputs() -> dict[str, list[bytes]]:
    """A serving_default request for export's warmup file: two short real sentences."""
    return {"text": [text.encode() for text in WARMUP_TEXT]}


def request_inputs(paths: list[Path]) -> dict[str, np.ndarray]:
    """UTF-8 text files, one English sentence per line, as one batch of sentences."""
    lines = [line for path in paths for line in _lines(path)]
    if not lines:
        raise ValueError(f"no lines to translate in {', '.join(map(str, paths))}")
    return {"text": np.array([line.encode() for line in lines], dtype=object)}


def save_outputs(outputs: dict[str, np.ndarray], paths: list[Path], out_dir: Path) -> list[Path]:
    """One `<name>.de.txt` per input file, line for line."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    translations = iter(outputs["translation"])
    written = []
    for path in paths:
        lines = [next(translations).decode() for _ in _lines(path)]
        target = out_dir / f"{Path(path).stem}.de.txt"
        target.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        written.append(target)
    return written


def serve_demo(client, workdir: Path) -> ServedResult:
    """Translate held-out sentences through the server; score them against copying.

    `passed` when sacreBLEU beats copying the source (the family's acceptance metric);
    chrF is reported beside it."""
    config = nmt_train.load_config(Path(workdir))
    pairs = corpus.sample(nmt_train.load_corpus(config).heldout, SERVED_SENTENCES)
    sources = [pair.english for pair in pairs]
    references = [pair.german for pair in pairs]
    started = time.perf_counter()
    translations = nmt_evaluate.translate_all(
        lambda batch: client.predict(NAME, {"text": [s.encode() for s in batch]})["translation"],
        sources,
    )
    seconds = time.perf_counter() - started
    model = nmt_evaluate.score(translations, references)
    copy = nmt_evaluate.score(sources, references)
    passed = model["bleu"] > copy["bleu"]
    examples = list(zip(sources, translations, references, strict=True))[:SERVED_EXAMPLES]
    return ServedResult(
        family=NAME,
        title=f"{NAME} over gRPC: {len(pairs)} held-out English sentences -> German",
        columns=["", "served model", "copy source", "reference"],
        rows=[
            ("sacreBLEU", model["bleu"], copy["bleu"], ""),
            ("chrF", model["chrf"], copy["chrf"], ""),
            *((f"example {i}", t, s, r) for i, (s, t, r) in enumerate(examples, start=1)),
        ],
        summary=(
            f"sacreBLEU {model['bleu']:.1f} vs {copy['bleu']:.1f}, chrF {model['chrf']:.1f} vs "
            f"{copy['chrf']:.1f} (copy source), {1e3 * seconds / len(pairs):.0f} ms/sentence"
        ),
        passed=passed,
        report={
            "sentences": len(pairs),
            "model": model,
            "copy_source": copy,
            "seconds": seconds,
            "examples": [{"english": s, "translation": t, "reference": r} for s, t, r in examples],
        },
    )


def _trained_module(workdir: Path) -> tuple[TranslationModule, nmt_train.TrainConfig]:
    """The checkpoint's model behind the serving signatures, cut at its training length."""
    model, vocab, config = nmt_train.load_trained(workdir)
    return TranslationModule(model, vocab.model_proto, max_source_tokens=config.max_tokens), config


def _lines(path: Path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").splitlines()
