"""What the voices say: spoken commands to a home assistant, and their split.

Sentences follow the patterns of the Fluent Speech Commands corpus ("turn on the
lights in the kitchen", "decrease the volume"): real English a person says to a
device, from a vocabulary of about 60 words. A CTC model that learns spelling from
a few CPU minutes of audio needs that small a vocabulary; every word still occurs in
many sentences, so what the model learns is letters, not a list of sentences.

`split_sentences` holds out about 15% of the sentences (by a SHA-256 of the text,
so the split is the same on every machine): evaluation reports on sentences never
heard in training as well as on held-out voices.
"""

from __future__ import annotations

import hashlib
import itertools
import re

DEVICES = ("lights", "lamp", "heating", "music", "radio", "fan", "oven", "television")
ROOMS = ("kitchen", "bedroom", "bathroom", "garden", "living room", "office")
NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
SETTINGS = ("volume", "temperature", "heat")
CHANGES = ("increase", "decrease", "raise", "lower")
OPENINGS = ("door", "front door", "window", "garage")


def all_sentences() -> list[str]:
    """Every sentence of the grammar once, sorted (about 260)."""
    sentences = set()
    for state, device in itertools.product(("on", "off"), DEVICES):
        sentences.add(f"turn {state} the {device}")
        sentences.add(f"turn the {device} {state}")
        sentences.update(f"switch {state} the {device} in the {room}" for room in ROOMS)
    for change, setting in itertools.product(CHANGES, SETTINGS):
        sentences.add(f"{change} the {setting}")
        sentences.update(f"{change} the {setting} in the {room}" for room in ROOMS)
    for number in NUMBERS:
        sentences.add(f"set a timer for {number} minutes")
        sentences.add(f"wake me up at {number}")
    for action, opening in itertools.product(("open", "close", "lock"), OPENINGS):
        sentences.add(f"{action} the {opening}")
    sentences.update(("play some music", "play the next song", "play the news", "stop the music"))
    sentences.update(f"call {who}" for who in ("mom", "dad", "the office", "my sister"))
    sentences.update(f"what is the weather {when}" for when in ("today", "tomorrow", "like"))
    return sorted(sentences)


def split_sentences(
    sentences: list[str], heldout_fraction: float = 0.15
) -> tuple[list[str], list[str]]:
    """(train, held_out), each sorted, identical on every run and machine."""
    if not 0.0 <= heldout_fraction < 1.0:
        raise ValueError(
            f"`heldout_fraction` must be in [0, 1). Received: heldout_fraction={heldout_fraction}"
        )
    train, heldout = [], []
    for sentence in sorted(sentences):
        digest = hashlib.sha256(sentence.encode()).digest()
        held = int.from_bytes(digest[:8], "big") / 2.0**64 < heldout_fraction
        (heldout if held else train).append(sentence)
    return train, heldout


def normalize_transcript(text: str) -> str:
    """Lower case, letters, apostrophes and single spaces: what the model can spell."""
    text = re.sub(r"[^a-z' ]+", " ", text.lower())
    return re.sub(r" +", " ", text).strip()
