"""speech in `tfstack demo`: held-out voices through the server, clean and noisy, vs baseline."""

from __future__ import annotations

from pathlib import Path

from models.evaluation import ServedResult
from models.speech import evaluate as sp_evaluate
from models.speech import train as sp_train
from models.speech.audio import wav_bytes
from serving.client import ServingClient

NAME = "speech"
REQUEST_BATCH = 25  # WAV files per Predict call


def serve_demo(client: ServingClient, workdir: Path) -> ServedResult:
    """Transcribe the held-out test set through the server (greedy, and beam search when
    clean); WER and CER per condition vs the most frequent training transcript."""
    tests = sp_evaluate.test_set()
    answer = sp_evaluate.most_frequent(sp_train.training_transcripts(Path(workdir)))
    hypotheses = _transcribe(client, [test.waveform for test in tests], "serving_default")
    clean = [test for test in tests if test.condition == "clean"]
    beam = _transcribe(client, [test.waveform for test in clean], "beam_search")
    scores = sp_evaluate.score(tests, hypotheses, answer)
    example = next(test for test in tests if not test.seen_sentence)
    heard = {  # the example sentence, as the model heard it in each condition
        test.condition: hypothesis
        for test, hypothesis in zip(tests, hypotheses, strict=True)
        if (test.reference, test.voice) == (example.reference, example.voice)
    }
    rows = [_row(c, scores[c], heard[c]) for c in sp_evaluate.CONDITIONS]
    beam_scores = sp_evaluate.error_rates([test.reference for test in clean], beam)
    rows.append(_row("clean, beam search", {**scores["clean"], "model": beam_scores}, ""))
    rows.append(_row("unseen sentences", scores["unseen sentences"], ""))
    rows.append(_row("all", scores["all"], ""))
    overall = scores["all"]
    passed = all(overall["model"][m] < overall["baseline"][m] for m in ("wer", "cer"))
    return ServedResult(
        family=NAME,
        title=(
            f"{NAME} over gRPC, {len(tests)} utterances of unseen voices; "
            f"example: {example.voice} saying {example.reference!r}"
        ),
        columns=["condition", "WER model", "WER baseline", "CER model", "CER baseline", "heard"],
        rows=rows,
        summary=(
            f"WER {overall['model']['wer']:.3f} vs {overall['baseline']['wer']:.3f}, "
            f"CER {overall['model']['cer']:.3f} vs {overall['baseline']['cer']:.3f} "
            f"(baseline: always {answer!r})"
        ),
        passed=passed,
        report={
            "scores": scores,
            "beam_search_clean": beam_scores,
            "baseline_answer": answer,
            "example": {"voice": example.voice, "reference": example.reference, "heard": heard},
        },
    )


def _transcribe(client: ServingClient, waveforms: list, signature: str) -> list[str]:
    transcripts = []
    for start in range(0, len(waveforms), REQUEST_BATCH):
        batch = [wav_bytes(waveform) for waveform in waveforms[start : start + REQUEST_BATCH]]
        outputs = client.predict(NAME, {"audio_bytes": batch}, signature)
        transcripts += [text.decode() for text in outputs["transcript"]]
    return transcripts


def _row(condition: str, score: dict, example: str) -> tuple:
    return (
        condition,
        score["model"]["wer"],
        score["baseline"]["wer"],
        score["model"]["cer"],
        score["baseline"]["cer"],
        example,
    )
