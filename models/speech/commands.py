"""`tfstack speech voices` and `tfstack speech say`: WAV files to try the served model on.

No TensorFlow at import time (the CLI imports every family's commands to build its
parser); handlers import what they need.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

NOISES = ("white", "pink", "brown")


def register(
    commands: argparse._SubParsersAction,
    with_workdir: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    speech = commands.add_parser("speech", help="speech family: synthetic voices to test with")
    actions = speech.add_subparsers(dest="speech_command", required=True, metavar="ACTION")

    voices = actions.add_parser("voices", help="list the training and held-out voices")
    voices.set_defaults(handler=_voices)

    say = actions.add_parser(
        "say", help="speak a sentence into a 16 kHz mono WAV (espeak-ng/flite, optional noise)"
    )
    say.add_argument("text", help="what to say, e.g. 'turn on the lights in the kitchen'")
    say.add_argument("--out", type=Path, required=True, help="WAV file to write")
    say.add_argument(
        "--voice",
        default="flite_slt_p50_s1",
        help="a voice name from `tfstack speech voices` (default: %(default)s, held out)",
    )
    say.add_argument("--noise", choices=NOISES, help="add sox noise of this colour")
    say.add_argument("--snr", type=float, default=10.0, help="SNR in dB (default: %(default)s)")
    say.set_defaults(handler=_say)


def _voices(args: argparse.Namespace) -> int:
    from models.speech.synth import HELDOUT_VOICES, TRAIN_VOICES
    from tfstack.console import print_table

    rows = [(v.name, v.engine, v.voice, "train") for v in TRAIN_VOICES]
    rows += [(v.name, v.engine, v.voice, "held out") for v in HELDOUT_VOICES]
    print_table("speech voices", ["name", "engine", "voice", "split"], rows)
    return 0


def _say(args: argparse.Namespace) -> int:
    import tempfile

    import numpy as np

    from models.speech import corpus, data, noise
    from models.speech.audio import read_wav, wav_bytes
    from models.speech.synth import HELDOUT_VOICES, TRAIN_VOICES, missing_tools, synthesize
    from tfstack.console import console

    voices = {voice.name: voice for voice in TRAIN_VOICES + HELDOUT_VOICES}
    if args.voice not in voices:
        raise ValueError(f"unknown voice {args.voice!r}; see `tfstack speech voices`")
    if missing_tools():
        raise FileNotFoundError(f"missing {', '.join(missing_tools())}: apt-get install them")
    text = corpus.normalize_transcript(args.text)
    with tempfile.TemporaryDirectory() as temp:
        samples = read_wav(synthesize(voices[args.voice], text, Path(temp) / "say.wav"))
    if args.noise:
        noises = noise.load_noise(data.default_cache_dir(), "eval")
        samples = noise.mix_at_snr(samples, noises[args.noise], args.snr, np.random.default_rng())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(wav_bytes(samples))
    condition = f", {args.noise} noise at {args.snr:g} dB" if args.noise else ""
    console.print(f"wrote {args.out}: {args.voice} saying {text!r}{condition}")
    return 0
