"""Recorded noise: the city ambience of Debian's `lincity-ng-data`, in Aurora-4-like categories.

The game LinCity-NG ships about 500 s of recorded sound effects
(`/usr/share/games/lincity-ng/sounds/*.wav`, mostly 11.025 kHz mono, some 8, 22.05
or 44.1 kHz and stereo), each sound in up to five takes (`RailTrain1.wav` ...
`RailTrain3.wav`). Licence: GPL-2+ (the Debian package's choice; the sounds are
dual-licensed GPL / CC BY-SA 2.0, see /usr/share/doc/lincity-ng-data/copyright);
tfstack reads them from the installed package and never redistributes them.

Sounds grouped like Aurora-4's noise types (street, train station, airport, babble):

- street: TraficHigh, TraficLow, DirtTrack, ResidentialHigh, ResidentialMed,
  ResidentialLow, ResidentialLowLow
- transport: RailTrain, ParklandPlane, Harbor
- babble: SportsCroud, MarketEmpty, MarketFull, MarketLow, MarketMed, School, University
- machinery: IndustryHigh, IndustryLight, CoalMine, OreMine, Mill, WindMill,
  WindMillHTech, Blacksmith, PowerCoalEmpty, PowerCoalFull, PowerCoalLow, PowerCoalMed

The rest is left out: UI clicks and switches under a second (Click, Window*,
PowerLine, Substation*, Raze, Pottery), nature and buildings that fit no Aurora-4
type (Water, Farm, Fire, Green, Health, ...), and the copies among them (Tip2 is
CoalMine2, Water2 is Harbor3, PowerSolar1 is WindMillHTech1).

The split is by file: the last take of every sound with several takes is for
evaluation only, every other file for training, so a test utterance never carries
a recording the model trained on. `sox` converts each file once into the speech
cache (16 kHz mono PCM16, silence trimmed from both ends); loading joins a
category's files, each scaled to unit RMS and faded in and out over 10 ms so the
joins do not click.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from models.speech.audio import read_wav
from models.speech.synth import SAMPLE_RATE
from tfstack.atomic import atomic_write

SOUNDS_DIR = Path("/usr/share/games/lincity-ng/sounds")
PACKAGE = "lincity-ng-data"
CATEGORIES = {
    "street": (
        "TraficHigh",
        "TraficLow",
        "DirtTrack",
        "ResidentialHigh",
        "ResidentialMed",
        "ResidentialLow",
        "ResidentialLowLow",
    ),
    "transport": ("RailTrain", "ParklandPlane", "Harbor"),
    "babble": (
        "SportsCroud",
        "MarketEmpty",
        "MarketFull",
        "MarketLow",
        "MarketMed",
        "School",
        "University",
    ),
    "machinery": (
        "IndustryHigh",
        "IndustryLight",
        "CoalMine",
        "OreMine",
        "Mill",
        "WindMill",
        "WindMillHTech",
        "Blacksmith",
        "PowerCoalEmpty",
        "PowerCoalFull",
        "PowerCoalLow",
        "PowerCoalMed",
    ),
}
PARTS = ("train", "eval")
FADE_SECONDS = 0.01
# sox: trim leading, then (reversed) trailing stretches quieter than -50 dBFS.
TRIM_SILENCE = ("silence 1 0.01 -50d reverse " * 2).split()
_TAKE = re.compile(r"^(?P<sound>[A-Za-z]+?)(?P<take>\d*)$")


def split_files(sounds_dir: Path = SOUNDS_DIR) -> dict[str, dict[str, list[Path]]]:
    """category -> part (`train`/`eval`) -> source WAVs; categories lacking either part are
    left out (all of them when the package is not installed)."""
    takes: dict[str, list[tuple[int, Path]]] = {}
    for path in sorted(Path(sounds_dir).glob("*.wav")):
        match = _TAKE.match(path.stem)
        if match:
            take = int(match["take"] or 0)
            takes.setdefault(match["sound"], []).append((take, path))
    split = {}
    for category, sounds in CATEGORIES.items():
        parts: dict[str, list[Path]] = {part: [] for part in PARTS}
        for sound in sounds:
            ordered = [path for _, path in sorted(takes.get(sound, []))]
            held_out = ordered[-1:] if len(ordered) > 1 else []
            parts["eval"] += held_out
            parts["train"] += ordered[: len(ordered) - len(held_out)]
        if all(parts.values()):
            split[category] = parts
    return split


def converted_path(source: Path, cache_dir: Path) -> Path:
    """`source` as 16 kHz mono PCM16 without leading or trailing silence, made by `sox` once."""
    path = Path(cache_dir) / "noise" / "lincity-ng" / f"{Path(source).stem}.wav"
    if not path.is_file():
        output = ["-r", str(SAMPLE_RATE), "-c", "1", "-b", "16"]

        def convert(temp: Path) -> None:
            command = ["sox", "-q", str(source), *output, str(temp), *TRIM_SILENCE]
            subprocess.run(command, check=True, capture_output=True)

        atomic_write(path, convert)
    return path


def load_recorded(
    cache_dir: Path, part: str, sounds_dir: Path = SOUNDS_DIR
) -> dict[str, np.ndarray]:
    """category -> float32 samples of its `train` or `eval` files joined; empty when the
    package is not installed."""
    if part not in PARTS:
        raise ValueError(f"`part` must be train or eval. Received: part={part}")
    return {
        category: join([read_wav(converted_path(f, cache_dir)) for f in parts[part]])
        for category, parts in split_files(sounds_dir).items()
    }


def join(recordings: list[np.ndarray]) -> np.ndarray:
    """Recordings scaled to unit RMS, faded in and out, end to end (float32); recordings
    shorter than the two fades (none of the categories' files) are left out."""
    fade = np.linspace(0.0, 1.0, round(FADE_SECONDS * SAMPLE_RATE), dtype=np.float32)
    pieces = []
    for samples in recordings:
        if len(samples) < 2 * len(fade):
            continue
        rms = np.sqrt(np.mean(np.square(samples, dtype=np.float64)))
        piece = (samples / rms).astype(np.float32)
        piece[: len(fade)] *= fade
        piece[-len(fade) :] *= fade[::-1]
        pieces.append(piece)
    return np.concatenate(pieces)
