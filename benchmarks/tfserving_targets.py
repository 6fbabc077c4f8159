"""Targets for the TensorFlow Serving APIs: gRPC Predict (official stubs) and REST :predict.

They drive tfstack-model-server, TensorFlow Serving itself, or anything else speaking the
same APIs (the trivial server speaks gRPC Predict). The request is built once in open();
each infer() sends it and checks the output's shape from the response.
"""

from __future__ import annotations

import json

import aiohttp
import numpy as np
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from benchmarks.target import RequestError, Target, check_shape, grpc_channel
from benchmarks.workloads import Workload

REQUEST_TIMEOUT_SECONDS = 30.0


def tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A float32 array as a TensorProto with tensor_content: one memcpy, no per-element work."""
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in array.shape]
        ),
        tensor_content=array.astype("<f4", copy=False).tobytes(),
    )


def predict_response(model: str, outputs: dict[str, np.ndarray]) -> bytes:
    """A serialised PredictResponse (the trivial server's canned answer)."""
    response = predict_pb2.PredictResponse()
    response.model_spec.name = model
    for name, array in outputs.items():
        response.outputs[name].CopyFrom(tensor_proto(array))
    return response.SerializeToString()


class GrpcPredictTarget(Target):
    """PredictionService/Predict on HOST:PORT through the official stubs on grpc.aio."""

    def __init__(self, address: str, label: str, model_name: str | None = None) -> None:
        """`model_name`: the served name (default: the workload's name)."""
        self.address = address
        self.label = label
        self.model_name = model_name

    async def open(self, workload: Workload) -> None:
        self._workload = workload
        self._channel = grpc_channel(self.address)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel).Predict
        self._request = predict_pb2.PredictRequest()
        self._request.model_spec.name = self.model_name or workload.name
        self._request.inputs[workload.input_name].CopyFrom(tensor_proto(workload.batch))

    async def infer(self) -> None:
        response = await self._predict(self._request, timeout=REQUEST_TIMEOUT_SECONDS)
        output = response.outputs.get(self._workload.output_name)
        if output is None:
            raise RequestError("missing output", f"got {sorted(response.outputs)}")
        check_shape(tuple(dim.size for dim in output.tensor_shape.dim), self._workload)

    async def close(self) -> None:
        await self._channel.close()


class RestPredictTarget(Target):
    """POST /v1/models/NAME:predict with the columnar JSON body ("inputs") on aiohttp."""

    def __init__(self, base_url: str, label: str, model_name: str | None = None) -> None:
        """`base_url`: e.g. http://127.0.0.1:8501."""
        self.base_url = base_url.rstrip("/")
        self.label = label
        self.model_name = model_name

    async def open(self, workload: Workload) -> None:
        self._workload = workload
        self._url = f"{self.base_url}/v1/models/{self.model_name or workload.name}:predict"
        self._body = json.dumps({"inputs": {workload.input_name: workload.batch.tolist()}})
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS),
            headers={"Content-Type": "application/json"},
        )

    async def infer(self) -> None:
        async with self._session.post(self._url, data=self._body) as response:
            body = await response.read()
            if response.status != 200:
                raise RequestError(f"HTTP {response.status}", body[:200].decode(errors="replace"))
        outputs = json.loads(body)["outputs"]
        if isinstance(outputs, dict):  # several outputs come by name
            outputs = outputs[self._workload.output_name]
        check_shape(_nested_shape(outputs), self._workload)

    async def close(self) -> None:
        await self._session.close()


def _nested_shape(value) -> tuple[int, ...]:
    """The shape of nested JSON lists, read along the first elements (cheap on large
    responses; the server's own encoder already keeps rows rectangular)."""
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return tuple(shape)
