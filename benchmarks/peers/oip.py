"""Open Inference Protocol (KServe v2) clients: gRPC ModelInfer and REST /v2/.../infer.

MLServer and KServe both speak it. The gRPC stubs are generated from open_inference.proto
by grpcio-tools at first use, into a cache outside the repository keyed by the proto and
the protobuf/grpcio-tools versions, so they always match the installed runtime and nothing
generated is checked in. protoc runs in a child process: grpc_tools' compiler loaded into a
process that already holds TensorFlow aborts on a corrupt abseil mutex (both embed abseil).

Both targets send the input as one raw little-endian buffer, the protocol's fastest
encoding: `raw_input_contents` over gRPC, the binary tensor extension (JSON header +
bytes, `Inference-Header-Content-Length`) over REST. A server that got raw input answers
with raw output.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import aiohttp
import numpy as np

from benchmarks.target import RequestError, Target, check_shape, grpc_channel
from benchmarks.workloads import Workload

REQUEST_TIMEOUT_SECONDS = 30.0
_BINARY_HEADER = "Inference-Header-Content-Length"


_PROTO = Path(__file__).with_name("open_inference.proto")


def _stubs():
    """Import the generated modules, generating them into the cache first if needed."""
    key = hashlib.sha256(_PROTO.read_bytes())
    key.update(f"{metadata.version('protobuf')} {metadata.version('grpcio-tools')}".encode())
    cache_root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    stubs_dir = cache_root / "tfstack" / f"oip-stubs-{key.hexdigest()[:16]}"
    if not stubs_dir.exists():
        _generate(stubs_dir)
    if str(stubs_dir) not in sys.path:
        sys.path.append(str(stubs_dir))  # the _grpc module imports its _pb2 by top-level name
    return importlib.import_module("open_inference_pb2"), importlib.import_module(
        "open_inference_pb2_grpc"
    )


def _generate(stubs_dir: Path) -> None:
    stubs_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".oip-", dir=stubs_dir.parent))
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "grpc_tools.protoc",
                f"-I{_PROTO.parent}",
                f"--python_out={staging}",
                f"--grpc_python_out={staging}",
                _PROTO.name,
            ],
            check=True,
        )
        staging.rename(stubs_dir)
    except OSError:
        if not stubs_dir.exists():  # another process won the rename: theirs is as good
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


oip_pb2, oip_pb2_grpc = _stubs()


def infer_request(workload: Workload) -> oip_pb2.ModelInferRequest:
    """The workload's batch as a ModelInferRequest with its input in raw_input_contents."""
    request = oip_pb2.ModelInferRequest(model_name=workload.name)
    request.inputs.add(name=workload.input_name, datatype="FP32", shape=list(workload.batch.shape))
    request.raw_input_contents.append(workload.batch.astype("<f4", copy=False).tobytes())
    return request


def output_array(response: oip_pb2.ModelInferResponse, workload: Workload) -> np.ndarray:
    """The workload's output from a response (raw or typed contents); checks its shape."""
    for index, tensor in enumerate(response.outputs):
        if tensor.name != workload.output_name:
            continue
        check_shape(tuple(tensor.shape), workload)
        if response.raw_output_contents:
            array = np.frombuffer(response.raw_output_contents[index], dtype="<f4")
        else:
            array = np.asarray(tensor.contents.fp32_contents, dtype=np.float32)
        if array.size != math.prod(tensor.shape):
            raise RequestError("wrong output size", f"{array.size} values for {tensor.shape}")
        return array.reshape(tuple(tensor.shape))
    raise RequestError("missing output", workload.output_name)


class OipGrpcTarget(Target):
    """GRPCInferenceService/ModelInfer on HOST:PORT over grpc.aio."""

    def __init__(self, address: str, label: str) -> None:
        self.address = address
        self.label = label

    async def open(self, workload: Workload) -> None:
        self._workload = workload
        self._channel = grpc_channel(self.address)
        self._infer = oip_pb2_grpc.GRPCInferenceServiceStub(self._channel).ModelInfer
        self._request = infer_request(workload)

    async def output(self) -> np.ndarray:
        """One request; the decoded output."""
        response = await self._infer(self._request, timeout=REQUEST_TIMEOUT_SECONDS)
        return output_array(response, self._workload)

    async def infer(self) -> None:
        await self.output()

    async def close(self) -> None:
        await self._channel.close()


class OipRestTarget(Target):
    """POST BASE_URL/v2/models/NAME/infer with the binary tensor extension, over aiohttp."""

    def __init__(self, base_url: str, label: str) -> None:
        self.base_url = base_url
        self.label = label

    async def open(self, workload: Workload) -> None:
        self._workload = workload
        raw = workload.batch.astype("<f4", copy=False).tobytes()
        header = json.dumps(
            {
                "inputs": [
                    {
                        "name": workload.input_name,
                        "shape": list(workload.batch.shape),
                        "datatype": "FP32",
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ],
                "parameters": {"binary_data_output": True},
            }
        ).encode()
        self._body = header + raw
        self._headers = {
            "Content-Type": "application/octet-stream",
            _BINARY_HEADER: str(len(header)),
        }
        self._url = f"{self.base_url}/v2/models/{workload.name}/infer"
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        )

    async def output(self) -> np.ndarray:
        """One request; the decoded output."""
        async with self._session.post(self._url, data=self._body, headers=self._headers) as reply:
            body = await reply.read()
            if reply.status != 200:
                raise RequestError(f"HTTP {reply.status}", body[:200].decode(errors="replace"))
            header_length = reply.headers.get(_BINARY_HEADER)
        return _rest_output(body, header_length, self._workload)

    async def infer(self) -> None:
        await self.output()

    async def close(self) -> None:
        await self._session.close()


def _rest_output(body: bytes, header_length: str | None, workload: Workload) -> np.ndarray:
    header = json.loads(body if header_length is None else body[: int(header_length)])
    offset = 0 if header_length is None else int(header_length)
    for tensor in header.get("outputs", []):
        size = tensor.get("parameters", {}).get("binary_data_size")
        if tensor["name"] == workload.output_name:
            check_shape(tuple(tensor["shape"]), workload)
            if size is None:
                return np.asarray(tensor["data"], dtype=np.float32).reshape(tensor["shape"])
            array = np.frombuffer(body, dtype="<f4", count=size // 4, offset=offset)
            return array.reshape(tensor["shape"])
        offset += size or 0
    raise RequestError("missing output", workload.output_name)
