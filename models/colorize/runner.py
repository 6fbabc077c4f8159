"""What `tfstack colorize` does once parsed: colour the files, print a table, write the grid."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from models.colorize import data, evaluate, family, grid, images, signatures
from tfstack.console import console, print_table


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.samples <= signatures.DEFAULT_MAX_SAMPLES:
        raise ValueError(
            f"--samples must be 0 to {signatures.DEFAULT_MAX_SAMPLES}. Received: {args.samples}"
        )
    if not args.temperature > 0:
        raise ValueError(f"--temperature must be positive. Received: {args.temperature}")
    encoded = [Path(path).read_bytes() for path in args.images]
    started = time.perf_counter()
    if args.server:
        colourings, samples = _served(args, encoded)
    else:
        colourings, samples = _local(args, encoded)
    elapsed_s = time.perf_counter() - started

    rows, table = [], []
    for index, (path, source) in enumerate(zip(args.images, encoded, strict=True)):
        rgb = images.decode_rgb(source)
        colour = images.decode_rgb(colourings[index])
        # A colour input is its own truth; a gray one has none to show or score.
        truth = rgb if data.mean_chroma(rgb) >= data.MIN_MEAN_CHROMA else None
        drawn = [images.decode_rgb(png) for png in samples[index]]
        rows.append([images.gray_copy(rgb), colour, *drawn, truth])
        psnr = "-" if truth is None else f"{evaluate.psnr(colour / 255.0, truth / 255.0):.2f}"
        table.append(
            (
                Path(path).name,
                f"{rgb.shape[1]}x{rgb.shape[0]}",
                psnr,
                f"{evaluate.colourfulness(colour / 255.0):.1f}",
            )
        )
    print_table(
        f"colorize ({'server ' + args.server if args.server else 'local'}, {elapsed_s:.1f}s)",
        ["image", "size", "PSNR vs its colours (dB)", "colourfulness"],
        table,
    )
    columns = ["gray", "colourized", *(f"sample {i + 1}" for i in range(args.samples)), "truth"]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    grid.image_grid(columns, rows).save(args.output)
    console.print(f"wrote {args.output}")
    return 0


def _served(args: argparse.Namespace, encoded: list[bytes]) -> tuple[list, list]:
    from serving.client import ServingClient

    with ServingClient(args.server, timeout=args.timeout) as client:
        inputs = {"image_bytes": np.array(encoded, dtype=object)}
        colourings = list(client.predict(args.model_name, inputs)["image_bytes"])
        samples = [[] for _ in encoded]
        if args.samples:
            drawn = client.predict(
                args.model_name,
                family.samples_inputs(encoded, args.samples, args.temperature),
                signature_name=family.SAMPLES_SIGNATURE,
            )["image_bytes"]
            samples = [list(row) for row in drawn]
    return colourings, samples


def _local(args: argparse.Namespace, encoded: list[bytes]) -> tuple[list, list]:
    """The trained checkpoint through the same signatures the server runs."""
    module, _ = family.serving_module(args.workdir)
    batch = tf.constant(encoded, tf.string)
    colourings = list(module.serving_default(batch)["image_bytes"].numpy())
    samples = [[] for _ in encoded]
    if args.samples:
        drawn = module.samples(batch, tf.constant(args.samples), tf.constant(args.temperature))
        samples = [list(row) for row in drawn["image_bytes"].numpy()]
    return colourings, samples
