"""One SentencePiece subword vocabulary shared by English and German.

A joint vocabulary lets names, numbers and technical terms that are the same in both
languages map to the same pieces, so the decoder can learn to copy them. The trained
model is kept as its serialized proto: `tensorflow_text.SentencepieceTokenizer` takes
exactly those bytes, so the SavedModel carries the tokenizer with no asset file.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import sentencepiece

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


def train_sentencepiece(texts: Iterable[str], vocab_size: int) -> bytes:
    """A unigram SentencePiece model proto trained on `texts` (deterministic: one thread).

    `vocab_size` is an upper bound: a small corpus may yield fewer pieces."""
    if vocab_size < 16:
        raise ValueError(f"`vocab_size` must be at least 16. Received: vocab_size={vocab_size}")
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        num_threads=1,
        minloglevel=2,
    )
    return model.getvalue()


class Vocabulary:
    """Python-side encoding for training; the serving graph uses the same proto in TF."""

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        self._processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)

    @property
    def size(self) -> int:
        return self._processor.get_piece_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self._processor.encode(list(texts), out_type=int)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self._processor.decode([list(map(int, row)) for row in ids])
