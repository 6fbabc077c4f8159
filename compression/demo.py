"""Compression in `tfstack demo`: a fast pipeline, its release served beside the original.

For tfstack/demo.py, per family with a `<family>-demo.yaml` config:

    result = compress_for_demo(workdir, repo, "superres")   # after the family's export
    ...start the server with --prefer_tflite_model (TFLite releases run on LiteRT;
       versions without model.tflite still load as SavedModels)...
    served = serve_demo(client, workdir, "superres", result.report["original_version"],
                        result.version)                      # a models.evaluation.ServedResult

`compress_for_demo` makes models.config serve both the original version and the
release (`model_version_policy { specific { ... } }`), so one server answers for each.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from compression.adapter import load_adapter
from compression.config import shipped_config
from compression.pipeline import PipelineResult, run
from export.repository import ModelRepository
from models.evaluation import ServedResult
from serving.client import ServingClient
from tfstack.atomic import atomic_write_text


def compress_for_demo(
    workdir: Path, repo: ModelRepository, family: str = "superres", progress: bool = True
) -> PipelineResult:
    """Run `compression/configs/<family>-demo.yaml` on the model trained in `workdir`;
    a release lands in `repo` beside the family's latest version, and both are served."""
    original = max(repo.versions(family), default=None)
    result = run(shipped_config(f"{family}-demo"), workdir, repo.root, progress=progress)
    result.report["original_version"] = original
    if result.version is not None and original is not None:
        serve_versions(repo, family, [original, result.version])
    return result


def serve_versions(repo: ModelRepository, name: str, versions: list[int]) -> None:
    """Pin `name`'s entry in models.config to exactly `versions` (TF Serving's policy)."""
    config = repo.read_config()
    for entry in config.model_config_list.config:
        if entry.name == name:
            entry.model_version_policy.specific.ClearField("versions")
            entry.model_version_policy.specific.versions.extend(versions)
    atomic_write_text(repo.config_path, text_format.MessageToString(config))


def serve_demo(
    client: ServingClient, workdir: Path, family: str, original: int, compressed: int | None
) -> ServedResult:
    """Score the original and the released version through the server, on held-out data,
    with the family's float-tensor signature (the one the TFLite model has)."""
    adapter = load_adapter(family, workdir)
    signature = adapter.tflite_signature
    versions = {"original": original, "compressed": compressed}
    rows, scores = [], {}
    for label, version in versions.items():
        if version is None:
            continue
        metadata = client.metadata(family, version)[signature]
        (alias_in,), (alias_out,) = metadata["inputs"], metadata["outputs"]
        timings: list[float] = []

        def predict(
            inputs: np.ndarray, version=version, aliases=(alias_in, alias_out), log=timings
        ):
            started = time.perf_counter()
            outputs = client.predict(family, {aliases[0]: inputs}, signature, version=version)
            log.append(time.perf_counter() - started)
            return outputs[aliases[1]]

        scores[label] = adapter.evaluate(predict)
        rows.append((label, version, f"{scores[label]:.3f}", f"{np.median(timings) * 1e3:.0f}"))
    _, reference = adapter.baseline_metric()
    passed = "compressed" in scores and _beats(scores["compressed"], reference, adapter)
    summary = ", ".join(f"{label} {score:.3f}" for label, score in scores.items())
    return ServedResult(
        family=f"{family} (compressed)",
        title=f"{family}: original vs compressed release over gRPC ({adapter.metric}, held out)",
        columns=["model", "version", adapter.metric, "median ms per call"],
        rows=rows,
        summary=f"{summary}; non-learned baseline {reference:.3f}",
        passed=passed,
        report={"scores": scores, "versions": versions, "baseline": reference},
    )


def _beats(score: float, reference: float, adapter) -> bool:
    return score > reference if adapter.higher_is_better else score < reference
