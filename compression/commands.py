"""`tfstack compress MODEL --config FILE --repo DIR`: run a pipeline, release if gates pass.

No TensorFlow at import time (the CLI imports this to build its parser)."""

from __future__ import annotations

import argparse
from pathlib import Path

GATE_FAILED = 3  # exit code when the pipeline ran but a release gate failed


def register(commands, with_workdir) -> None:
    compress = with_workdir(
        commands.add_parser(
            "compress",
            help="prune/distill/quantize a trained model; publish a version if gates pass",
        )
    )
    compress.add_argument("model", help="model family (with a compression adapter)")
    compress.add_argument(
        "--config", type=Path, help="pipeline YAML (default: compression/configs/MODEL.yaml)"
    )
    compress.add_argument(
        "--repo", type=Path, help="model repository to publish to (without it: measure only)"
    )
    compress.add_argument("--fresh", action="store_true", help="ignore cached stage outputs")
    compress.add_argument("--no-progress", action="store_true", help="no progress bars")
    compress.set_defaults(handler=_compress)


def _compress(args: argparse.Namespace) -> int:
    from compression.config import load_config, shipped_config
    from compression.pipeline import run

    config = load_config(args.config or shipped_config(args.model))
    if config.model != args.model:
        raise ValueError(f"{args.config} compresses {config.model!r}, not {args.model!r}")
    result = run(config, args.workdir, args.repo, progress=not args.no_progress, fresh=args.fresh)
    return 0 if result.passed else GATE_FAILED
