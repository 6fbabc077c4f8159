"""`tfstack demo`: every model family through the whole chain, in minutes, on a CPU.

For each family: train a small version on real offline data -> evaluate against its
non-learned baseline -> export a version into one model repository. Then start one
tfstack-model-server for all of them, have each family call its model over gRPC with
the official stubs on held-out data, print what it measured, and shut down (SIGTERM).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

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
) -> int:
    """Run every step, print the tables, write demo_report.json; 0 when every model won.

    `preset=None` trains each family's own DEMO_PRESET; checkpoints already in
    `workdir` are reused unless `retrain`."""
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
    served, exit_code = _serve_and_call(repo, workdir, families)
    serve_s = time.monotonic() - step
    for name, result in served.items():
        report[name]["served"] = result.to_json()

    total_s = time.monotonic() - started
    passed = (
        exit_code == 0
        and len(served) == len(families)
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
                "beat baseline" if served.get(name) and served[name].passed else "FAILED",
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


def _serve_and_call(
    repo: ModelRepository, workdir: Path, families: Sequence[str]
) -> tuple[dict[str, ServedResult], int]:
    """Start the real server process, let each family call its model, stop the server."""
    server = ServerProcess([f"--model_config_file={repo.config_path}"], workdir / "server.log")
    console.print("starting tfstack-model-server on 127.0.0.1")
    served: dict[str, ServedResult] = {}
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
                served[name] = result
    finally:
        exit_code = server.stop()
    console.print(f"server stopped (SIGTERM), exit code {exit_code}")
    return served, exit_code
