"""The characters the model spells, and text <-> label ids for CTC.

CTC's blank is the last class (`BLANK`), where `tf.nn.ctc_loss(blank_index=-1)` and
TensorFlow's CTC decoders expect it.
"""

from __future__ import annotations

ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"
BLANK = len(ALPHABET)
NUM_CLASSES = len(ALPHABET) + 1
_IDS = {char: index for index, char in enumerate(ALPHABET)}


def encode(text: str) -> list[int]:
    """Label ids of a normalized transcript (see `corpus.normalize_transcript`)."""
    unknown = sorted(set(text) - set(_IDS))
    if unknown:
        raise ValueError(f"characters outside the alphabet: {unknown}. Received: text={text!r}")
    return [_IDS[char] for char in text]
