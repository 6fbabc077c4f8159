"""`tfstack demo`: every model family through the whole chain, in minutes, on a CPU.

For each family: train a small version on real offline data -> evaluate against its
non-learned baseline -> export a version into one model repository. Then start one
tfstack-model-server for all of them, have each family call its model over gRPC with
the official stubs on held-out data, and print what it measured. Families with a
`compression/configs/<family>-demo.yaml` then run that fast compression pipeline; the
release lands as a new version beside the original in the running server (the config
is re-read every second) and both are scored over gRPC. Finally: shut down (SIGTERM).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from compression.config import shipped_config
from export.repository import ModelRepository
from export.warmup import warmup_assets
from models import FAMILIES
from models.evaluation import Evaluation, ServedResult
from serving.client import ServingClient
from tfstack.console import console, print_table, write_json
from tfstack.families import load_family
from tfstack.server_process import ServerProcess


def run_demo(
    workdir: Path | None,
    families: Sequence[str] = FAMILIES,
    preset: str | None = None,
    retrain: bool = False,
    compress: bool = True,
) -> int:
    """Run every step, print the tables, write demo_report.json; 0 when every model won.

    `preset=None` trains each family's own DEMO_PRESET; checkpoints already in
    `workdir` are reused unless `retrain`; `compress=False` skips the compression step."""
    from tfstack.cli import print_evaluation

    started = time.monotonic()
    workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="tfstack-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    console.rule(f"tfstack demo: {', '.join(families)}")
    console.print(f"working directory: {workdir} (pass --workdir to choose and reuse it)")
    repo = ModelRepository(workdir / "models")
    report: dict[str, dict] = {}
    evaluations: dict[str, Evaluation] = {}

    for number, name in enumerate(families, start=1):
        family = load_family(name)
        chosen = preset or family.DEMO_PRESET
        console.rule(f"{number}/{len(families)} {name}")
        timings: dict[str, float] = {}
        step = time.monotonic()
        if retrain or not family.is_trained(workdir):
            console.print(f"[bold]train[/bold] {name} (preset {chosen})")
            family.train(workdir, chosen)
        else:
            console.print(f"[bold]train[/bold]: reusing the checkpoint in {workdir / name}")
        timings["train_s"] = time.monotonic() - step

        step = time.monotonic()
        evaluations[name] = family.evaluate(workdir)
        print_evaluation(evaluations[name])
        timings["evaluate_s"] = time.monotonic() - step

        step = time.monotonic()
        exported = repo.export(
            name,
            *family.serving_module(workdir),
            assets_extra=warmup_assets(name, family.warmup_inputs()),
        )
        console.print(f"[bold]export[/bold]: version {exported.version} -> {exported.path}")
        timings["export_s"] = time.monotonic() - step
        report[name] = {
            "preset": chosen,
            "version": exported.version,
            "evaluation": evaluations[name].to_json(),
            "timings": timings,
        }

    console.rule("serve")
    step = time.monotonic()
    compressed = [name for name in families if compress and _has_demo_pipeline(name)]
    served, exit_code = _serve_and_call(repo, workdir, families, compressed)
    serve_s = time.monotonic() - step
    for (name, stage), result in served.items():
        report[name][stage] = result.to_json()

    total_s = time.monotonic() - started
    passed = (
        exit_code == 0
        and len(served) == len(families) + len(compressed)
        and all(result.passed for result in served.values())
    )
    print_table(
        "summary: held-out evaluation (first metric) and the served model",
        ["model", "metric", "model", "baseline", "baseline name", "over gRPC", "train s"],
        [
            (
                name,
                *evaluations[name].rows[0],
                evaluations[name].baseline,
                _verdict(served.get((name, "served"))),
                f"{report[name]['timings']['train_s']:.0f}",
            )
            for name in families
        ],
    )
    report_path = workdir / "demo_report.json"
    write_json(
        report_path,
        {
            "families": report,
            "server_exit_code": exit_code,
            "timings": {"serve_s": serve_s, "total_s": total_s},
            "passed": passed,
        },
    )
    console.rule(f"demo {'passed' if passed else 'FAILED'} in {total_s:.0f}s")
    console.print(f"report: {report_path}")
    return 0 if passed else 1


def _verdict(result: ServedResult | None) -> str:
    return "beat baseline" if result is not None and result.passed else "FAILED"


def _has_demo_pipeline(family: str) -> bool:
    return shipped_config(f"{family}-demo").is_file()


def _serve_and_call(
    repo: ModelRepository, workdir: Path, families: Sequence[str], compressed: Sequence[str]
) -> tuple[dict[tuple[str, str], ServedResult], int]:
    """Start the real server process, let each family call its model, compress and
    hot-deploy the `compressed` families' releases, stop the server. Results are keyed
    (family, "served") and (family, "compressed")."""
    flags = [
        f"--model_config_file={repo.config_path}",
        "--model_config_file_poll_wait_seconds=1",  # picks up the compressed release
        "--prefer_tflite_model",  # a release with model.tflite runs on LiteRT
    ]
    server = ServerProcess(flags, workdir / "server.log")
    console.print("starting tfstack-model-server on 127.0.0.1")
    served: dict[tuple[str, str], ServedResult] = {}
    try:
        target = server.start()
        console.print(f"serving {', '.join(families)} at {target} (log: {server.log_path})")
        with ServingClient(target, timeout=120.0) as client:
            for name in families:
                result = load_family(name).serve_demo(client, workdir)
                print_table(result.title, result.columns, result.rows)
                verdict = "[green]beats[/green]" if result.passed else "[red]does not beat[/red]"
                console.print(f"{name}: {result.summary} — {verdict} its baseline over gRPC")
                for image in result.images:
                    console.print(f"   image: {image}")
                served[name, "served"] = result
            for name in compressed:
                served[name, "compressed"] = _compress_and_call(client, repo, workdir, name)
    finally:
        exit_code = server.stop()
    console.print(f"server stopped (SIGTERM), exit code {exit_code}")
    return served, exit_code


def _compress_and_call(
    client: ServingClient, repo: ModelRepository, workdir: Path, name: str
) -> ServedResult:
    """Run the family's demo pipeline; when its gates pass, wait for the server to load
    the release beside the original and score both over gRPC."""
    from compression.demo import compress_for_demo, serve_demo

    console.rule(f"compress {name}")
    result = compress_for_demo(workdir, repo, name)
    original = result.report["original_version"]
    if result.version is not None:
        # The new version may briefly replace the original (latest policy) before the
        # re-read config pins both: wait until both answer.
        _wait_for_versions(client, name, [original, result.version], timeout=120.0)
    served = serve_demo(client, workdir, name, original, result.version)
    print_table(served.title, served.columns, served.rows)
    console.print(f"{served.family}: {served.summary}; report: {result.run_dir}")
    return served


def _wait_for_versions(
    client: ServingClient, name: str, versions: Sequence[int], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not {(v, "AVAILABLE") for v in versions} <= set(client.model_status(name)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} versions {list(versions)} not served after {timeout:.0f}s")
        time.sleep(0.5)
