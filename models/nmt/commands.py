"""`tfstack nmt corpus` and `tfstack nmt translate`.

No TensorFlow at import time (the CLI imports every family's commands to build its
parser); handlers import what they need.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def register(
    commands: argparse._SubParsersAction,
    with_workdir: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    nmt = commands.add_parser("nmt", help="nmt family: corpus counts, translate sentences")
    actions = nmt.add_subparsers(dest="nmt_command", required=True, metavar="ACTION")

    counts = actions.add_parser("corpus", help="count the sentence pairs of each source")
    counts.add_argument("--pip-only", action="store_true", help="leave out Debian data")
    counts.add_argument("--json", type=Path, help="also write the counts here")
    counts.set_defaults(handler=_corpus)

    translate = with_workdir(
        actions.add_parser("translate", help="translate English sentences to German")
    )
    translate.add_argument("sentences", nargs="+", help="English sentences")
    translate.add_argument(
        "--server",
        help="HOST:PORT: translate through a model server over gRPC "
        "(default: the trained checkpoint in the workdir, in this process)",
    )
    translate.add_argument("--model-name", default="nmt", help="served model name")
    decoding = translate.add_mutually_exclusive_group()
    decoding.add_argument("--beam-size", type=int, help="beam width (default: serving_default's)")
    decoding.add_argument("--greedy", action="store_true", help="greedy decoding")
    translate.set_defaults(handler=_translate)


def _corpus(args: argparse.Namespace) -> int:
    from models.nmt import corpus
    from tfstack.console import print_table, write_json

    loaded = corpus.load_corpus(None if args.pip_only else corpus.DEBIAN_SOURCES)
    print_table("nmt corpus (English -> German)", ["count", "entries"], loaded.count_rows())
    if args.json:
        write_json(args.json, loaded.counts)
    return 0


def _translate(args: argparse.Namespace) -> int:
    import numpy as np

    from tfstack.console import print_table

    signature, inputs = "serving_default", {"text": [s.encode() for s in args.sentences]}
    if args.greedy:
        signature = "greedy"
    elif args.beam_size is not None:
        signature = "beam_search"
        inputs["beam_size"] = np.array(args.beam_size, np.int32)
    if args.server:
        from serving.client import ServingClient

        with ServingClient(args.server) as client:
            translations = client.predict(args.model_name, inputs, signature)["translation"]
    else:
        from tfstack.families import load_family

        _, signatures = load_family("nmt").serving_module(args.workdir)
        translations = signatures[signature](**inputs)["translation"].numpy()
    rows = [(s, t.decode()) for s, t in zip(args.sentences, translations, strict=True)]
    print_table(f"nmt ({signature})", ["English", "German"], rows)
    return 0
