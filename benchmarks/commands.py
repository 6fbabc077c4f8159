"""`tfstack bench load` (drive a running server) and `tfstack bench run` (what `make bench`
runs). No TensorFlow import here: handlers import lazily."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def register(
    commands: argparse._SubParsersAction,
    with_workdir: Callable[[argparse.ArgumentParser], argparse.ArgumentParser],
) -> None:
    bench = commands.add_parser("bench", help="benchmarks: load generator, full comparison")
    actions = bench.add_subparsers(dest="bench_command", required=True, metavar="ACTION")

    load = actions.add_parser(
        "load", help="closed- or open-loop load on a running model server (gRPC or REST)"
    )
    load.add_argument("--server", required=True, help="HOST:PORT of the gRPC endpoint")
    load.add_argument("--model", required=True, help="served model name")
    load.add_argument("--protocol", choices=("grpc", "rest"), default="grpc")
    load.add_argument(
        "--rest-port", type=int, default=8501, help="REST port on the same host (--protocol rest)"
    )
    load.add_argument(
        "--concurrency", type=int, default=8, help="closed loop: requests in flight (default: 8)"
    )
    load.add_argument("--rate", type=float, help="open loop instead: requests per second")
    load.add_argument("--seconds", type=float, default=10.0, help="measured seconds (10)")
    load.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first (2)")
    load.add_argument("--max-requests", type=int, help="stop after this many measured requests")
    load.add_argument("--processes", type=int, default=2, help="load generator processes (2)")
    load.add_argument("--batch", type=int, default=1, help="rows per request (1)")
    load.add_argument(
        "--shape", type=_shape, help="one example's input shape where the signature has -1s"
    )
    load.add_argument("--json", type=Path, help="also write the result here")
    load.set_defaults(handler=_load)

    run = actions.add_parser(
        "run", help="the whole comparison (`make bench`): tfstack, peers, limit, report"
    )
    run.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    run.add_argument("--workdir", type=Path, default=Path("benchmarks/work"))
    run.add_argument("--seconds", type=float, default=8.0, help="measured seconds per point")
    run.add_argument("--no-peers", action="store_true", help="tfstack, trivial server and limit")
    run.set_defaults(handler=_run)


def _load(args: argparse.Namespace) -> int:
    from benchmarks.load import LoadGenerator, LoadSpec
    from benchmarks.report import print_results
    from benchmarks.served_workload import served_workload
    from benchmarks.tfserving_targets import GrpcPredictTarget, RestPredictTarget
    from tfstack.console import console, write_json

    spec = LoadSpec(
        seconds=args.seconds,
        warmup_seconds=args.warmup,
        concurrency=args.concurrency,
        rate=args.rate,
        max_requests=args.max_requests,
    )
    workload = served_workload(args.server, args.model, args.batch, args.shape)
    if args.protocol == "grpc":
        target = GrpcPredictTarget(args.server, f"{args.server} grpc")
    else:
        host = args.server.rsplit(":", 1)[0]
        target = RestPredictTarget(f"http://{host}:{args.rest_port}", f"{host} rest")
    with LoadGenerator(args.processes) as load:
        result = load.run(target, workload, spec)
    print_results(f"{args.model}: {spec.mode} loop", [result])
    if args.json:
        write_json(args.json, result.to_json())
        console.print(f"result: {args.json}")
    return 1 if result.error_count else 0


def _run(args: argparse.Namespace) -> int:
    from benchmarks.run import run_all

    return run_all(args.out, args.workdir, seconds=args.seconds, with_peers=not args.no_peers)


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(size) for size in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (e.g. 64,64,3)") from None
    if any(size < 1 for size in shape):
        raise argparse.ArgumentTypeError(f"sizes must be >= 1: {text!r}")
    return shape
