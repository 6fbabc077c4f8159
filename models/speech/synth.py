"""Speakers made of Debian's speech synthesisers: one voice and one sentence -> a 16 kHz WAV.

A `Voice` is an engine (`espeak-ng` with an accent and a voice variant, or a
`flite` voice) with a pitch and a speaking rate. espeak-ng writes 22.05 kHz and
flite's voices 16 kHz, so `sox` converts every utterance to what the served model
takes: 16 kHz, mono, 16-bit PCM.

The split is by speaker: `TRAIN_VOICES` and `HELDOUT_VOICES` share no voice, and
the held-out ones include espeak-ng accent and variant pairs, a Klatt voice and a
flite voice (`slt`, a woman's) that training never hears.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SAMPLE_RATE = 16000
ESPEAK_WORDS_PER_MINUTE = 175  # espeak-ng's default rate; `speed` scales it
TOOLS = ("espeak-ng", "flite", "sox")


@dataclasses.dataclass(frozen=True)
class Voice:
    """One synthetic speaker. `voice` is espeak-ng's `-v` (accent+variant) or flite's `-voice`."""

    engine: str
    voice: str
    pitch: int = 50  # espeak-ng 0-99; flite ignores it
    speed: float = 1.0  # relative speaking rate

    def __post_init__(self):
        if self.engine not in ("espeak-ng", "flite"):
            raise ValueError(f"`engine` must be espeak-ng or flite. Received: engine={self.engine}")
        if not 0.5 <= self.speed <= 2.0:
            raise ValueError(f"`speed` must be in [0.5, 2]. Received: speed={self.speed}")

    @property
    def name(self) -> str:
        """Unique and file-system safe, e.g. `espeak-ng_en-us+m3_p40_s1.15`."""
        return f"{self.engine}_{self.voice}_p{self.pitch}_s{self.speed:g}"

    def command(self, text: str, wav_path: Path) -> list[str]:
        """The synthesiser's command line writing `text` to `wav_path` (native rate)."""
        if self.engine == "espeak-ng":
            rate = str(round(ESPEAK_WORDS_PER_MINUTE * self.speed))
            voice = ["-v", self.voice, "-p", str(self.pitch), "-s", rate]
            return ["espeak-ng", *voice, "-w", str(wav_path), text]
        stretch = f"duration_stretch={1.0 / self.speed:.3f}"
        return ["flite", "-voice", self.voice, "--setf", stretch, "-t", text, "-o", str(wav_path)]


def _espeak(voice: str, pitch: int, speed: float) -> Voice:
    return Voice("espeak-ng", voice, pitch, speed)


TRAIN_VOICES = (  # engines and accents interleaved, so a preset's first n voices are varied
    _espeak("en-us+m1", 50, 1.0),
    _espeak("en-gb+f1", 65, 1.1),
    Voice("flite", "kal16"),
    _espeak("en-gb-scotland+m6", 40, 1.05),
    _espeak("en-us+f2", 60, 0.9),
    _espeak("en-gb-x-rp+m5", 50, 0.85),
    Voice("flite", "rms", speed=1.05),
    _espeak("en-029+m3", 45, 1.0),
    _espeak("en-us+klatt", 50, 1.0),
    _espeak("en-gb-x-gbcwmd+f2", 50, 0.9),
    Voice("flite", "awb", speed=0.95),
    _espeak("en-us+m3", 40, 1.15),
    _espeak("en-gb-x-rp+f3", 55, 1.0),
    _espeak("en-us-nyc+m2", 45, 1.0),
    _espeak("en-gb-scotland+f4", 60, 0.95),
    _espeak("en-gb+m4", 35, 0.95),
    _espeak("en-us+f5", 70, 1.05),
    _espeak("en-gb-x-gbclan+m2", 55, 1.1),
    _espeak("en-gb+klatt4", 45, 0.95),
)
HELDOUT_VOICES = (
    _espeak("en-us+m7", 45, 1.0),
    _espeak("en-gb-x-rp+f5", 65, 1.05),
    _espeak("en-029+f1", 55, 0.95),
    _espeak("en-gb+klatt2", 50, 1.1),
    Voice("flite", "slt"),
)


def missing_tools() -> list[str]:
    """The synthesis tools that are not on PATH (Debian: espeak-ng, flite, sox)."""
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def synthesize(voice: Voice, text: str, wav_path: Path) -> Path:
    """Speak `text` into `wav_path` as 16 kHz mono PCM16 WAV."""
    wav_path = Path(wav_path)
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: the cache only ever holds complete files.
    with tempfile.TemporaryDirectory(prefix=".tts-", dir=wav_path.parent) as temp:
        native = Path(temp) / "native.wav"
        _run(voice.command(text, native))
        converted = Path(temp) / "16k.wav"
        rate = str(SAMPLE_RATE)
        _run(["sox", "-q", str(native), "-r", rate, "-c", "1", "-b", "16", str(converted)])
        os.replace(converted, wav_path)
    return wav_path


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command[:3])} ... failed: {result.stderr.strip()[-500:]}")
