"""Translation quality against copying the source, as the MT literature measures it.

sacreBLEU (13a tokenization, corpus level) and chrF (character 6-grams, beta 2) of
detokenized output against one reference, on held-out pairs of the corpus. The
baseline "translation" is the English source itself: it scores on names, numbers and
loanwords the languages share, which is what a model has to beat by actually
translating. Translations come from the same `TranslationModule` that is exported, so
`tfstack evaluate nmt` scores what the server will answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sacrebleu
import tensorflow as tf

from models.nmt import corpus
from models.nmt.signatures import DEFAULT_BEAM_SIZE, TranslationModule

BATCH_SIZE = 64
EXAMPLES = 5


def score(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus sacreBLEU and chrF of `hypotheses` against one reference each."""
    if not references or len(hypotheses) != len(references):
        raise ValueError(
            "`hypotheses` and `references` must be non-empty and of equal length. "
            f"Received: {len(hypotheses)} hypotheses, {len(references)} references"
        )
    return {
        "bleu": sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score,
        "chrf": sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score,
    }


def translate_all(
    translate: Callable[[list[str]], Sequence[bytes]], sentences: Sequence[str]
) -> list[str]:
    """`translate` (strings in, UTF-8 bytes out) over `sentences` in batches."""
    translations = []
    for start in range(0, len(sentences), BATCH_SIZE):
        translations += [
            t.decode("utf-8") for t in translate(sentences[start : start + BATCH_SIZE])
        ]
    return translations


def evaluate(module: TranslationModule, pairs: Sequence[corpus.Pair]) -> dict:
    """Scores of beam search (the served default), greedy decoding and copying the source."""
    if not pairs:
        raise ValueError("`pairs` must hold at least one pair. Received: pairs=[]")
    sources = [pair.english for pair in pairs]
    references = [pair.german for pair in pairs]
    beam = translate_all(
        lambda batch: module.serving_default(tf.constant(batch))["translation"].numpy(), sources
    )
    greedy = translate_all(
        lambda batch: module.greedy(tf.constant(batch))["translation"].numpy(), sources
    )
    scores = {
        "model": score(beam, references),
        "greedy": score(greedy, references),
        "copy": score(sources, references),
    }
    return {
        **{f"{name}_{metric}": value for name, s in scores.items() for metric, value in s.items()},
        "sentences": len(pairs),
        "beam_size": DEFAULT_BEAM_SIZE,
        "sacrebleu_version": sacrebleu.__version__,
        "examples": [
            {"english": s, "reference": r, "translation": t}
            for s, r, t in zip(sources[:EXAMPLES], references, beam, strict=False)
        ],
    }
