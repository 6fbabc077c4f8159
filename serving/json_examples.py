"""Classify and Regress over REST: tf.Examples from JSON, results to JSON (json_tensor.cc).

`"examples"` (and an optional `"context"` merged into each) become an `Input`;
each feature is a value or a list of one kind: integers and bools as int64,
other numbers as float, strings and `{"b64": ...}` as bytes. Results are
`{"results": [[[label, score], ...], ...]}` (classify) and `{"results": [y, ...]}`
(regress).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from tensorflow.core.example import example_pb2, feature_pb2
from tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2

from serving import json_values
from serving.errors import InvalidArgumentError

CONTEXT_KEY, EXAMPLES_KEY = "context", "examples"


def examples_input(doc: Mapping[str, Any]) -> input_pb2.Input:
    """The `Input` of a :classify or :regress request ("examples", optional "context")."""
    request_input = input_pb2.Input()
    has_context = CONTEXT_KEY in doc
    if has_context:
        _fill_example(doc[CONTEXT_KEY], request_input.example_list_with_context.context)
    if EXAMPLES_KEY not in doc:
        raise json_values.format_error(
            doc, f"When method is classify, key '{EXAMPLES_KEY}' is expected and was not found"
        )
    examples = doc[EXAMPLES_KEY]
    if not isinstance(examples, list):
        raise json_values.format_error(doc, f"Expecting '{EXAMPLES_KEY}' value to be an list/array")
    if not examples:
        raise json_values.format_error(doc, f"'{EXAMPLES_KEY}' value is an empty array")
    for example in examples:
        target = (
            request_input.example_list_with_context.examples.add()
            if has_context
            else request_input.example_list.examples.add()
        )
        _fill_example(example, target)
    return request_input


def _fill_example(value: Any, example: example_pb2.Example) -> None:
    if not isinstance(value, dict):
        raise InvalidArgumentError(
            f"Example must be JSON object but got JSON {json_values.json_type(value)}"
        )
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_to_feature(item, name, feature)
        example.features.feature[name].CopyFrom(feature)


def _add_to_feature(value: Any, name: str, feature: feature_pb2.Feature) -> None:
    """AddValueToFeature: bools and integers as int64, other numbers as float,
    strings and b64 objects as bytes; one kind per feature."""

    def check_kind(kind: str) -> None:
        current = feature.WhichOneof("kind")
        if current not in (None, kind):
            raise InvalidArgumentError(
                f"Unexpected element type in feature: {name} expecting type: "
                f"{current.removesuffix('_list')}"
            )

    if isinstance(value, bool):
        check_kind("int64_list")
        feature.int64_list.value.append(int(value))
    elif isinstance(value, dict) and json_values.is_b64(value):
        check_kind("bytes_list")
        feature.bytes_list.value.append(json_values.decode_b64(value))
    elif isinstance(value, str):
        check_kind("bytes_list")
        feature.bytes_list.value.append(value.encode())
    # A JSON parser keeps integers in [int64 min, uint64 max] as integers, others as doubles.
    elif json_values.is_int(value) and -(2**63) <= value <= 2**64 - 1:
        check_kind("int64_list")
        if value > 2**63 - 1:
            raise InvalidArgumentError(
                f"Feature: {name} has uint64 element. Only int64 is supported."
            )
        feature.int64_list.value.append(value)
    elif json_values.is_number(value):
        check_kind("float_list")
        if not json_values.is_lossless(value, "float"):
            raise json_values.lossy_error(value, "float")
        feature.float_list.value.append(value)
    else:
        kind = json_values.json_type(value)
        raise InvalidArgumentError(f"Feature: {name} has element with unexpected JSON type: {kind}")


def classify_response(result: classification_pb2.ClassificationResult) -> bytes:
    """{"results": [[[label, score], ...], ...]}: one list of classes per example."""
    if not result.classifications:
        raise InvalidArgumentError("Cannot convert empty ClassificationResults to JSON")
    rows = []
    for classifications in result.classifications:
        classes = (
            f"[{json.dumps(c.label)},{json_values.decimal(c.score, np.float32)}]"
            for c in classifications.classes
        )
        rows.append(f"[{','.join(classes)}]")
    return f'{{"results":[{",".join(rows)}]}}'.encode()


def regress_response(result: regression_pb2.RegressionResult) -> bytes:
    """{"results": [value, ...]}: one value per example."""
    if not result.regressions:
        raise InvalidArgumentError("Cannot convert empty RegressionResults to JSON")
    values = (json_values.decimal(r.value, np.float32) for r in result.regressions)
    return f'{{"results":[{",".join(values)}]}}'.encode()
