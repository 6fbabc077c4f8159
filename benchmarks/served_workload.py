"""A Workload for a model already served elsewhere, read from the server itself.

`tfstack bench load` drives any running server: the serving_default signature's metadata
names the input and output and gives the input's shape; one probe Predict gives the
output shape every later response must have.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmarks.workloads import Workload
from serving.client import ServingClient

SIGNATURE = "serving_default"


def served_workload(
    server: str, model: str, batch_size: int = 1, example_shape: tuple[int, ...] | None = None
) -> Workload:
    """`example_shape`: one example's input shape where the signature leaves dims open."""
    with ServingClient(server, timeout=60.0) as client:
        signature = client.metadata(model).get(SIGNATURE)
        if signature is None:
            raise ValueError(f"model {model!r} has no {SIGNATURE} signature")
        if len(signature["inputs"]) != 1 or len(signature["outputs"]) != 1:
            raise ValueError(
                f"{model!r}: the load generator sends one input and checks one output; "
                f"{SIGNATURE} has inputs {sorted(signature['inputs'])} and outputs "
                f"{sorted(signature['outputs'])}"
            )
        ((input_name, info),) = signature["inputs"].items()
        ((output_name, _),) = signature["outputs"].items()
        if info["dtype"] != "DT_FLOAT":
            raise ValueError(f"{model!r}: input {input_name} is {info['dtype']}; only DT_FLOAT")
        shape = _example_shape(info["shape"], example_shape, model)
        batch = np.random.default_rng(0).random((batch_size, *shape), dtype=np.float32)
        outputs = client.predict(model, {input_name: batch})
    return Workload(
        name=model,
        saved_model_dir=Path(),  # not on this machine: served by someone else
        input_name=input_name,
        output_name=output_name,
        batch=batch,
        expected_output_shape=outputs[output_name].shape,
    )


def _example_shape(
    signature_shape: list[int] | None, given: tuple[int, ...] | None, model: str
) -> tuple[int, ...]:
    if given is not None:
        return given
    if signature_shape is None or any(size < 0 for size in signature_shape[1:]):
        raise ValueError(
            f"{model!r}: its input shape is {signature_shape} (-1: any); give one example's "
            "shape with --shape, e.g. --shape 64,64,3"
        )
    return tuple(signature_shape[1:])
