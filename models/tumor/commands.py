"""`tfstack tumor make-slides` and `tfstack tumor scan`.

No TensorFlow at import time (the CLI imports every family's commands to build its
parser); handlers import what they need.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path

DEFAULT_PATCH_SIZE = 64
DEFAULT_STRIDE = 32


def register(
    commands: argparse._SubParsersAction,
    with_workdir: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    tumor = commands.add_parser("tumor", help="tumor family: generate slides, scan slides")
    actions = tumor.add_subparsers(dest="tumor_command", required=True, metavar="ACTION")

    make = actions.add_parser(
        "make-slides",
        help="generate synthetic slides on real tissue (pyramidal TIFF, masks, lesion JSON)",
    )
    make.add_argument("--out", type=Path, required=True, help="directory to write into")
    make.add_argument(
        "--split",
        choices=("train", "heldout"),
        default="heldout",
        help="which regions of the real images to build on (default: %(default)s)",
    )
    make.add_argument("--count", type=int, default=8, help="slides (default: %(default)s)")
    make.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    make.add_argument("--size", type=int, default=1536, help="side in px (default: %(default)s)")
    make.add_argument("--no-progress", action="store_true", help="no progress bar")
    make.set_defaults(handler=_make_slides)

    scan = with_workdir(
        actions.add_parser(
            "scan", help="heatmap PNG, detections JSON and slide score of whole slides"
        )
    )
    scan.add_argument("slides", nargs="+", type=Path, help="slide files (SVS, TIFF, ...)")
    scan.add_argument(
        "--server",
        help="HOST:PORT: score patches through a model server over gRPC "
        "(default: the trained checkpoint in the workdir, in this process)",
    )
    scan.add_argument("--model-name", default="tumor", help="served model name")
    scan.add_argument(
        "--baseline", action="store_true", help="scan with the darkness threshold detector"
    )
    scan.add_argument("--patch-size", type=int, help="default: the checkpoint's, else 64")
    scan.add_argument("--stride", type=int, help="default: the checkpoint's, else 32")
    scan.add_argument("--output-dir", type=Path, default=Path("."))
    scan.add_argument("--no-progress", action="store_true", help="no progress bar")
    scan.set_defaults(handler=_scan)


def _make_slides(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from models.tumor import slides
    from tfstack.console import console, print_table

    spec = slides.SlideSpec(height=args.size, width=args.size)
    with Progress(disable=args.no_progress) as bar:
        task = bar.add_task("slides", total=args.count)
        records = slides.make_slides(
            args.out,
            args.split,
            args.count,
            spec,
            args.seed,
            on_slide=lambda index: bar.update(task, completed=index + 1),
        )
    print_table(
        f"{len(records)} {args.split} slides in {args.out}",
        ["slide", "lesions", "smallest lesion (px)"],
        [
            (r.name, len(r.lesions), min((les["diameter_px"] for les in r.lesions), default=""))
            for r in records
        ],
    )
    console.print(f"manifest: {Path(args.out) / slides.MANIFEST}")
    return 0


def _scan(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from models.tumor import scan
    from tfstack.console import console, print_table

    scorer, patch_size, stride, close = _scorer(args)
    rows = []
    try:
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            disable=args.no_progress,
        ) as bar:
            for path in args.slides:
                task = bar.add_task(path.name, total=None)
                result = scan.scan(
                    path,
                    scorer,
                    patch_size,
                    stride,
                    on_batch=lambda done, total, task=task: bar.update(
                        task, completed=done, total=total
                    ),
                )
                rows.append(_write_scan(path, result, args.output_dir))
    finally:
        close()
    print_table(
        "tumor scan",
        ["slide", "slide score", "detections >= 0.5", "lesions found", "patches", "seconds"],
        rows,
    )
    console.print(f"heatmaps and detections in {args.output_dir}")
    return 0


def _scorer(args: argparse.Namespace):
    """(scorer, patch size, stride, close) for the local model, the server or the baseline."""
    from models.tumor import baseline, scorers, train

    config = None
    if not args.server and not args.baseline:
        model, config = train.load_trained(args.workdir)
        scorer, close = scorers.keras_scorer(model), lambda: None
    else:
        with contextlib.suppress(FileNotFoundError):
            _, config = train.load_trained(args.workdir)
        if args.baseline:
            scorer, close = baseline.darkness_scores, lambda: None
        else:
            from serving.client import ServingClient

            client = ServingClient(args.server, timeout=120.0)
            scorer, close = scorers.served_scorer(client, args.model_name), client.close
    patch_size = args.patch_size or (config.patch_size if config else DEFAULT_PATCH_SIZE)
    stride = args.stride or (config.stride if config else DEFAULT_STRIDE)
    return scorer, patch_size, stride, close


def _write_scan(path: Path, result, output_dir: Path) -> tuple:
    """Write `<stem>_heatmap.png` and `<stem>_detections.json`; a table row."""
    import json

    import numpy as np

    from models.tumor import evaluate, overlay, slides
    from tfstack.console import write_json

    output_dir.mkdir(parents=True, exist_ok=True)
    stem = path.name.split(".")[0]
    report = result.to_json()
    labels, found = None, ""
    truth = path.parent / f"{stem}.json"
    if truth.is_file() and (path.parent / f"{stem}.mask.png").is_file():
        record = slides.load_record(path)
        labels = record.labels()
        confident = [d for d in result.detections if d.probability >= 0.5]
        hits = evaluate.hit_lesions(confident, evaluate.evaluation_mask(labels))
        found = f"{len(set(hits[hits > 0].tolist()))}/{len(record.lesions)}"
        report["ground_truth"] = {
            "lesions": json.loads(truth.read_text())["lesions"],
            "lesions_found_at_0.5": len(set(hits[hits > 0].tolist())),
            "false_positives_at_0.5": int(np.sum(hits == 0)),
        }
    image = overlay.heatmap_overlay(path, result.heatmap, result.detections, labels)
    image.save(output_dir / f"{stem}_heatmap.png")
    write_json(output_dir / f"{stem}_detections.json", report)
    confident_count = sum(d.probability >= 0.5 for d in result.detections)
    return (
        path.name,
        result.slide_score,
        confident_count,
        found,
        result.patches,
        f"{result.seconds:.1f}",
    )
