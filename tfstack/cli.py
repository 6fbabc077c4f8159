"""`tfstack`: train, evaluate, export, predict and demo, one subcommand each."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from models import FAMILIES
from tfstack.console import console, print_table, write_json

DEFAULT_WORKDIR = Path(os.environ.get("TFSTACK_WORKDIR", "tfstack-work"))
# Families with commands of their own (`tfstack tumor scan ...`): each module has
# `register(commands, with_workdir)` and must not import TensorFlow at import time.
FAMILY_COMMANDS: tuple[str, ...] = (
    "compression.commands",
    "models.tumor.commands",
    "models.nmt.commands",
    "models.colorize.commands",
    "models.speech.commands",
    "benchmarks.commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfstack",
        description="Train, compress, export and serve Keras models over TensorFlow Serving APIs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_workdir(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument(
            "--workdir",
            type=Path,
            default=DEFAULT_WORKDIR,
            help="where trained checkpoints and reports live (default: %(default)s, "
            "or $TFSTACK_WORKDIR)",
        )
        return sub

    train = with_workdir(commands.add_parser("train", help="train a model family"))
    train.add_argument("model", choices=FAMILIES)
    train.add_argument("--preset", default="demo", help="training preset (tiny, demo, full)")
    train.add_argument("--steps", type=int, help="override the preset's number of steps")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(handler=_train)

    evaluate = with_workdir(
        commands.add_parser(
            "evaluate", help="task metric vs a non-learned baseline on held-out data"
        )
    )
    evaluate.add_argument("model", choices=FAMILIES)
    evaluate.add_argument("--json", type=Path, help="also write the report here")
    evaluate.set_defaults(handler=_evaluate)

    export = with_workdir(
        commands.add_parser("export", help="write a new SavedModel version into a model repository")
    )
    export.add_argument("model", choices=FAMILIES)
    export.add_argument("--repo", type=Path, required=True, help="model repository root")
    export.add_argument("--version", type=int, help="explicit version (default: next)")
    export.set_defaults(handler=_export)

    predict = commands.add_parser("predict", help="call a running model server over gRPC")
    predict.add_argument("--server", required=True, help="HOST:PORT of the gRPC endpoint")
    predict.add_argument("model", choices=FAMILIES)
    predict.add_argument("files", nargs="+", type=Path)
    predict.add_argument("--model-name", help="served model name (default: the family name)")
    predict.add_argument("--version", type=int, help="served version (default: latest)")
    predict.add_argument("--output-dir", type=Path, default=Path("."))
    predict.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    predict.set_defaults(handler=_predict)

    demo = commands.add_parser(
        "demo", help="train, evaluate, export, serve and call every model end to end"
    )
    demo.add_argument(
        "--workdir", type=Path, help="keep everything here for reuse (default: a fresh temp dir)"
    )
    demo.add_argument(
        "--models",
        type=_family_list,
        default=FAMILIES,
        help=f"comma-separated families (default: all: {','.join(FAMILIES)})",
    )
    demo.add_argument("--preset", help="training preset for every family (default: each's demo)")
    demo.add_argument("--retrain", action="store_true", help="train even if a checkpoint exists")
    demo.add_argument(
        "--no-compress", action="store_true", help="skip the compression pipeline step"
    )
    demo.set_defaults(handler=_demo)

    for module in FAMILY_COMMANDS:
        importlib.import_module(module).register(commands, with_workdir)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except (FileNotFoundError, ValueError, TimeoutError) as err:
        console.print(f"[red]error:[/red] {err}")
        return 1
    except Exception as err:
        from serving.errors import ServingError  # imports TensorFlow: only when needed

        if not isinstance(err, ServingError):
            raise
        console.print(f"[red]server error ({err.code.name}):[/red] {err}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return 130


def _train(args: argparse.Namespace) -> int:
    from tfstack.families import load_family

    family = load_family(args.model)
    started = time.monotonic()
    family.train(args.workdir, args.preset, progress=not args.no_progress, steps=args.steps)
    console.print(
        f"trained {args.model} ({args.preset}) in {time.monotonic() - started:.0f}s; "
        f"checkpoint in {args.workdir / args.model}"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from tfstack.families import load_family

    evaluation = load_family(args.model).evaluate(args.workdir)
    print_evaluation(evaluation)
    report = args.json or args.workdir / args.model / "evaluation.json"
    write_json(report, evaluation.to_json())
    console.print(f"report: {report}")
    return 0


def print_evaluation(evaluation) -> None:
    print_table(
        f"{evaluation.family}: held-out evaluation",
        ["metric", "model", evaluation.baseline],
        evaluation.rows,
    )


def _export(args: argparse.Namespace) -> int:
    from export.repository import ModelRepository
    from export.warmup import warmup_assets
    from tfstack.families import load_family

    family = load_family(args.model)
    module, signatures = family.serving_module(args.workdir)
    repo = ModelRepository(args.repo)
    exported = repo.export(
        args.model,
        module,
        signatures,
        version=args.version,
        assets_extra=warmup_assets(args.model, family.warmup_inputs()),
    )
    console.print(
        f"exported {args.model} version {exported.version} to {exported.path} "
        f"({exported.size_bytes / 1e6:.1f} MB); config: {repo.config_path}"
    )
    return 0


def _predict(args: argparse.Namespace) -> int:
    from serving.client import ServingClient
    from tfstack.families import load_family

    family = load_family(args.model)
    inputs = family.request_inputs(args.files)
    with ServingClient(args.server, timeout=args.timeout) as client:
        started = time.perf_counter()
        outputs = client.predict(args.model_name or args.model, inputs, version=args.version)
        elapsed_ms = (time.perf_counter() - started) * 1e3
    for path in family.save_outputs(outputs, args.files, args.output_dir):
        console.print(f"wrote {path}")
    console.print(f"{len(args.files)} file(s) in {elapsed_ms:.0f} ms")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from tfstack.demo import run_demo

    return run_demo(
        args.workdir,
        args.models,
        preset=args.preset,
        retrain=args.retrain,
        compress=not args.no_compress,
    )


def _family_list(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in FAMILIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown model families {unknown or text!r}; choose from {', '.join(FAMILIES)}"
        )
    return names


if __name__ == "__main__":
    sys.exit(main())
