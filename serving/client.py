"""A small client for any TensorFlow Serving compatible server (ours or the original).

Built on the official `tensorflow_serving.apis` stubs only, so what works here
works against tensorflow_model_server too. Used by `tfstack predict` and the
demo. Failed RPCs raise the `serving.errors` class of their status code, e.g.
`NotFoundError`, whose `code` is the grpc.StatusCode.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    input_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from serving.errors import ServingError, error_for_code
from serving.tensors import dtype_name

_MAX_MESSAGE_BYTES = 2**31 - 1
_RETRY_WHILE_WAITING = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)

TensorLike = np.ndarray | Sequence[bytes]
# A tf.Example feature: floats, ints, or bytes/str; one value or a list of them.
FeatureValue = float | int | bytes | str | Sequence[float] | Sequence[int] | Sequence[bytes | str]
Features = Mapping[str, FeatureValue]


class ServingClient:
    """PredictionService and ModelService calls with numpy in and out."""

    def __init__(
        self,
        target: str,
        timeout: float = 30.0,
        credentials: grpc.ChannelCredentials | None = None,
        token: str | None = None,
    ) -> None:
        """`credentials` (e.g. `grpc.ssl_channel_credentials(ca, key, cert)`) for a TLS server;
        `token` for a server started with --auth_token_file (sent as a bearer token)."""
        self.target = target
        self.timeout = timeout
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        options = [
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
        ]
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=options)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def predict(
        self,
        model_name: str,
        inputs: Mapping[str, TensorLike],
        signature_name: str = "serving_default",
        version: int | None = None,
        output_filter: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run a signature; byte-string lists become DT_STRING tensors."""
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = version
        for alias, value in inputs.items():
            request.inputs[alias].CopyFrom(_tensor_proto(value))
        request.output_filter.extend(output_filter or ())
        response = self._call(self._predictions.Predict, request)
        return {alias: tf.make_ndarray(proto) for alias, proto in response.outputs.items()}

    def classify(
        self,
        model_name: str,
        examples: Sequence[Features],
        signature_name: str = "serving_default",
        context: Features | None = None,
        version: int | None = None,
    ) -> list[list[tuple[str, float]]]:
        """Classify tf.Examples built from feature dicts: (label, score) per class and example."""
        request = classification_pb2.ClassificationRequest(input=example_input(examples, context))
        _set_model_spec(request.model_spec, model_name, signature_name, version)
        response = self._call(self._predictions.Classify, request)
        return [
            [(entry.label, entry.score) for entry in classifications.classes]
            for classifications in response.result.classifications
        ]

    def regress(
        self,
        model_name: str,
        examples: Sequence[Features],
        signature_name: str = "serving_default",
        context: Features | None = None,
        version: int | None = None,
    ) -> list[float]:
        """Regress tf.Examples built from feature dicts: one value per example."""
        request = regression_pb2.RegressionRequest(input=example_input(examples, context))
        _set_model_spec(request.model_spec, model_name, signature_name, version)
        response = self._call(self._predictions.Regress, request)
        return [regression.value for regression in response.result.regressions]

    def model_status(self, name: str) -> list[tuple[int, str]]:
        """(version, state name) of every version the server knows, newest first."""
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = name
        response = self._call(self._models.GetModelStatus, request)
        state = get_model_status_pb2.ModelVersionStatus.State
        return [(entry.version, state.Name(entry.state)) for entry in response.model_version_status]

    def metadata(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Signatures as plain data: {key: {"inputs": {alias: {"dtype", "shape"}}, ...}}."""
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = name
        if version is not None:
            request.model_spec.version.value = version
        request.metadata_field.append("signature_def")
        response = self._call(self._predictions.GetModelMetadata, request)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signature_map)
        return {
            key: {
                "method_name": signature.method_name,
                "inputs": {alias: _tensor_info(info) for alias, info in signature.inputs.items()},
                "outputs": {alias: _tensor_info(info) for alias, info in signature.outputs.items()},
            }
            for key, signature in signature_map.signature_def.items()
        }

    def wait_until_available(self, name: str, timeout: float) -> int:
        """Wait until a version of `name` is AVAILABLE (server may still be starting);
        returns the highest available version."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                available = [v for v, state in self.model_status(name) if state == "AVAILABLE"]
                if available:
                    return max(available)
            except ServingError as err:
                if err.code not in _RETRY_WHILE_WAITING:
                    raise
            if time.monotonic() >= deadline:
                raise TimeoutError(f"model {name} not available at {self.target} after {timeout}s")
            time.sleep(0.2)

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise error_for_code(err.code(), err.details() or "") from None


def example_input(examples: Sequence[Features], context: Features | None = None) -> input_pb2.Input:
    """An `Input` of tf.Examples (ExampleListWithContext when there is a `context`). Python
    ints become int64 features, floats float features, bytes and str bytes features."""
    proto = input_pb2.Input()
    if context is None:
        target = proto.example_list.examples
    else:
        _fill_example(proto.example_list_with_context.context, context)
        target = proto.example_list_with_context.examples
    for features in examples:
        _fill_example(target.add(), features)
    return proto


def _fill_example(example: example_pb2.Example, features: Features) -> None:
    for name, value in features.items():
        values = list(value) if isinstance(value, list | tuple | np.ndarray) else [value]
        feature = example.features.feature[name]
        if all(isinstance(v, bytes | str) for v in values):
            feature.bytes_list.value.extend(v.encode() if isinstance(v, str) else v for v in values)
        elif all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in values):
            feature.int64_list.value.extend(int(v) for v in values)
        else:
            feature.float_list.value.extend(float(v) for v in values)


def _set_model_spec(
    spec: model_pb2.ModelSpec, name: str, signature_name: str, version: int | None
) -> None:
    spec.name = name
    spec.signature_name = signature_name
    if version is not None:
        spec.version.value = version


def _tensor_proto(value: TensorLike) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OSU":
            return tf.make_tensor_proto(value, dtype=tf.string)
        return tf.make_tensor_proto(value)
    return tf.make_tensor_proto(list(value), dtype=tf.string)


def _tensor_info(info: Any) -> dict[str, Any]:
    shape = None if info.tensor_shape.unknown_rank else [d.size for d in info.tensor_shape.dim]
    return {"dtype": dtype_name(info.dtype), "shape": shape}
