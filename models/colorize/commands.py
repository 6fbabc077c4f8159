"""`tfstack colorize IMAGE...`: colour photos and write a grid (gray, colourings, truth).

With `--server` the served model is called over gRPC (serving_default and `samples`);
without it the checkpoint in `--workdir` runs in process, through the same signatures
that export writes. TensorFlow is imported only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUTPUT = Path("colorized.png")


def register(commands, with_workdir) -> None:
    parser = with_workdir(
        commands.add_parser(
            "colorize", help="colour gray photos; writes a PNG grid (gray, colourings, truth)"
        )
    )
    parser.add_argument(
        "images", nargs="+", type=Path, metavar="IMAGE", help="photos (gray or colour) to colour"
    )
    parser.add_argument(
        "--samples", type=int, default=3, help="sampled colourings per image (default: %(default)s)"
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="sampling temperature: 1 samples the model, lower is more conservative "
        "(default: %(default)s)",
    )
    parser.add_argument("--server", help="HOST:PORT of a model server (default: run locally)")
    parser.add_argument("--model-name", default="colorize", help="served model name")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="grid PNG to write (default: %(default)s)",
    )
    parser.set_defaults(handler=_colorize)


def _colorize(args: argparse.Namespace) -> int:
    from models.colorize.runner import run

    return run(args)
