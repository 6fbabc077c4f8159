"""Shared pieces of the serving tests: tiny real SavedModels and a real server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

from serving.server import ModelServer, ServerOptions

POLL_SECONDS = 0.2
WAIT_SECONDS = 30.0


class TinyModel(tf.Module):
    """`affine`: y = x * w + b (w, b variables); its assert is the graph's own input check.
    `shout`: DT_STRING in and out. `hold`: creates the file `started`, then runs until
    the file `release` exists, so a test controls exactly how long a request is in flight."""

    def __init__(self, w: float, b: float = 1.0) -> None:
        super().__init__()
        self.w = tf.Variable(w)
        self.b = tf.Variable(b)

    @tf.function(input_signature=[tf.TensorSpec([None, 1], tf.float32)])
    def affine(self, x):
        tf.debugging.assert_non_negative(x, message="x must be >= 0")
        return {"y": x * self.w + self.b, "doubled": x * 2.0}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def shout(self, text):
        return {"upper": tf.strings.upper(text), "length": tf.strings.length(text)}

    @tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string)])
    def hold(self, started, release):
        def held(i):
            return tf.logical_and(tf.size(tf.io.matching_files(release)) == 0, i < 10_000_000)

        with tf.control_dependencies([tf.io.write_file(started, "")]):
            (steps,) = tf.while_loop(held, lambda i: (i + 1,), [tf.constant(0)])
        return {"steps": steps}


def save_model(model_dir: Path, version: int, w: float, warmup: bytes | None = None) -> Path:
    """Write a version the way an exporter does: to a temp dir, renamed when complete."""
    model = TinyModel(w)
    signatures = {
        "serving_default": model.affine,
        "shout": model.shout,
        "hold": model.hold,
    }
    temp = model_dir / f".tmp-{uuid.uuid4().hex}"
    tf.saved_model.save(model, str(temp), signatures=signatures)
    if warmup is not None:
        (temp / "assets.extra").mkdir()
        (temp / "assets.extra" / "tf_serving_warmup_requests").write_bytes(warmup)
    final = model_dir / str(version)
    os.rename(temp, final)
    return final


def warmup_records(*requests: predict_pb2.PredictRequest) -> bytes:
    """A tf_serving_warmup_requests file (TFRecord of PredictionLog) holding `requests`."""
    with tempfile.TemporaryDirectory() as temp:
        path = Path(temp) / "records"
        with tf.io.TFRecordWriter(str(path)) as writer:
            for request in requests:
                log = prediction_log_pb2.PredictionLog()
                log.predict_log.request.CopyFrom(request)
                writer.write(log.SerializeToString())
        return path.read_bytes()


def predict_request(
    model: str,
    inputs: dict[str, np.ndarray | list[bytes]],
    signature: str = "",
    version: int | None = None,
) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    for alias, value in inputs.items():
        if isinstance(value, list):
            request.inputs[alias].CopyFrom(tf.make_tensor_proto(value, dtype=tf.string))
        else:
            request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return request


def held_request(model: str, tmp_path: Path) -> tuple[predict_pb2.PredictRequest, Path, Path]:
    """A request to `hold`, and its (started, release) files."""
    started, release = tmp_path / "request-started", tmp_path / "request-release"
    inputs = {
        "started": np.array(str(started).encode(), dtype=object),
        "release": np.array(str(release).encode(), dtype=object),
    }
    return predict_request(model, inputs, "hold"), started, release


def x_input(*values: float) -> dict[str, np.ndarray]:
    return {"x": np.array([[v] for v in values], np.float32)}


class Stubs:
    """The official TensorFlow Serving stubs on one channel."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)
        self.predictions = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        self.models = model_service_pb2_grpc.ModelServiceStub(self.channel)

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        return self.predictions.Predict(request, timeout=WAIT_SECONDS)

    def status(self, model: str, version: int | None = None):
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        return self.models.GetModelStatus(request, timeout=WAIT_SECONDS)

    def states(self, model: str) -> dict[int, str]:
        """version -> state name; {} while the model is unknown."""
        state = get_model_status_pb2.ModelVersionStatus.State
        try:
            response = self.status(model)
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.NOT_FOUND:
                return {}
            raise
        return {s.version: state.Name(s.state) for s in response.model_version_status}

    def close(self) -> None:
        self.channel.close()


@contextlib.contextmanager
def running_server(**options) -> Iterator[tuple[ModelServer, Stubs]]:
    """An in-process server on an ephemeral 127.0.0.1 port, stopped on exit. A failed load
    is final at once (no --max_num_load_retries) unless a test asks for retries."""
    options.setdefault("file_system_poll_wait_seconds", POLL_SECONDS)
    options.setdefault("max_num_load_retries", 0)
    server = ModelServer(ServerOptions(port=0, grpc_bind_address="127.0.0.1", **options))
    port = server.start()
    stubs = Stubs(f"127.0.0.1:{port}")
    try:
        yield server, stubs
    finally:
        stubs.close()
        server.stop(grace=1.0)


def wait_until(condition: Callable[[], object], timeout: float = WAIT_SECONDS, what: str = ""):
    """Poll `condition` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.05)


def rpc_error(call: Callable[[], object]) -> grpc.RpcError:
    """The RpcError `call` raises (fails the test if it succeeds)."""
    try:
        call()
    except grpc.RpcError as err:
        return err
    raise AssertionError("expected the RPC to fail")


# -- TF1-style SavedModels with classify/regress signatures (Classify, Regress, MultiInference) --


def save_half_plus_two(model_dir: Path, version: int) -> Path:
    """TF Serving's `half_plus_two` test model (saved_model_half_plus_two.py), written with
    tf.compat.v1 in a graph of its own so eager mode is untouched: tf.Examples with float
    features "x" and "x2" (default 0) are parsed; y = 0.5x + 2, y2 = 0.5x + 3, y3 = 0.5x2 + 3.

    Signatures: `serving_default` (predict, x -> y), `classify_x_to_y` (scores only),
    `regress_x_to_y`, `regress_x_to_y2`, `regress_x2_to_y3` (its input is x2, not examples),
    and ours: `classify_x_and_y` (classes ["x", "y"], scores [x, y]), `classify_classes_only`,
    `classify_bad_scores` (rank-1 scores, which TF Serving rejects)."""
    v1 = tf.compat.v1
    build = v1.saved_model.build_tensor_info
    temp = model_dir / f".tmp-{uuid.uuid4().hex}"
    with tf.Graph().as_default() as graph, v1.Session(graph=graph) as session:
        a, b, c = v1.Variable(0.5, name="a"), v1.Variable(2.0, name="b"), v1.Variable(3.0, name="c")
        examples = v1.placeholder(tf.string, shape=[None], name="tf_example")
        features = v1.io.parse_example(
            examples,
            {
                "x": v1.io.FixedLenFeature([1], tf.float32),
                "x2": v1.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
            },
        )
        x = tf.identity(features["x"], name="x")
        x2 = tf.identity(features["x2"], name="x2")
        y = tf.identity(a * x + b, name="y")
        y2 = tf.identity(a * x + c, name="y2")
        y3 = tf.identity(a * x2 + c, name="y3")
        labels = tf.tile(tf.constant([["x", "y"]]), [tf.shape(x)[0], 1])

        def signature(method: str, inputs: dict, outputs: dict):
            return v1.saved_model.build_signature_def(
                {k: build(t) for k, t in inputs.items()},
                {k: build(t) for k, t in outputs.items()},
                f"tensorflow/serving/{method}",
            )

        signatures = {
            "serving_default": signature("predict", {"x": x}, {"y": y}),
            "classify_x_to_y": signature("classify", {"inputs": examples}, {"scores": y}),
            "regress_x_to_y": signature("regress", {"inputs": examples}, {"outputs": y}),
            "regress_x_to_y2": signature("regress", {"inputs": examples}, {"outputs": y2}),
            "regress_x2_to_y3": signature("regress", {"inputs": x2}, {"outputs": y3}),
            "classify_x_and_y": signature(
                "classify",
                {"inputs": examples},
                {"classes": labels, "scores": tf.concat([x, y], axis=1)},
            ),
            "classify_classes_only": signature(
                "classify", {"inputs": examples}, {"classes": labels}
            ),
            "classify_bad_scores": signature(
                "classify", {"inputs": examples}, {"scores": tf.reshape(y, [-1])}
            ),
        }
        session.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(str(temp))
        builder.add_meta_graph_and_variables(session, ["serve"], signature_def_map=signatures)
        builder.save()
    final = model_dir / str(version)
    os.rename(temp, final)
    return final


# -- REST (plain HTTP against the server's REST port) ------------------------------------


def http(
    port: int, method: str, path: str, body: bytes | str | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """(status, body, headers) of one HTTP request to 127.0.0.1:`port`; never raises for
    an HTTP error status."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read(), dict(err.headers)


def http_json(port: int, method: str, path: str, body: object = None) -> tuple[int, object]:
    """(status, decoded JSON body); `body` is sent as JSON unless it is already text."""
    if body is not None and not isinstance(body, str | bytes):
        body = json.dumps(body)
    status, payload, _ = http(port, method, path, body)
    return status, json.loads(payload)


# -- an image model, as the families serve them (undecodable bytes, empty batches) ---------

MAX_IMAGE_PIXELS = 256 * 256


class ImageModel(tf.Module):
    """`serving_default`: `image_bytes` string [N] of PNG/JPEG -> `image_bytes` PNG upscaled x2
    (nearest), like superres. An empty batch, undecodable bytes or an image over
    MAX_IMAGE_PIXELS fail the graph's own checks: INVALID_ARGUMENT, as the families do."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def upscale(self, image_bytes):
        tf.debugging.assert_positive(tf.size(image_bytes), message="empty batch")

        def one(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            pixels = tf.shape(image)[0] * tf.shape(image)[1]
            tf.debugging.assert_less_equal(pixels, MAX_IMAGE_PIXELS, message="image too large")
            size = tf.shape(image)[:2] * 2
            return tf.io.encode_png(tf.image.resize(image, size, method="nearest"))

        return {"image_bytes": tf.map_fn(one, image_bytes, fn_output_signature=tf.string)}


def save_image_model(model_dir: Path, version: int) -> Path:
    model = ImageModel()
    temp = model_dir / f".tmp-{uuid.uuid4().hex}"
    tf.saved_model.save(model, str(temp), signatures={"serving_default": model.upscale})
    final = model_dir / str(version)
    os.rename(temp, final)
    return final


def png_bytes(height: int, width: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return tf.io.encode_png(pixels).numpy()


# -- the server as a child process: its pid (RSS, SIGKILL), its user ------------------------


def rss_bytes(pid: int) -> int:
    """Resident set size of process `pid` (VmRSS in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class ChildServer:
    """`python -m serving` on 127.0.0.1 with ephemeral ports, as a container runs it; what
    tfstack.server_process.ServerProcess does, plus the pid, SIGKILL, timings and a `prefix`
    command to run it under (e.g. setpriv, so that root meets permission errors)."""

    GRPC_LINE = re.compile(r"Running gRPC ModelServer at 127\.0\.0\.1:(\d+)")
    REST_LINE = re.compile(r"Exporting HTTP/REST API at:127\.0\.0\.1:(\d+)")

    def __init__(self, flags: list[str], log_path: Path, prefix: list[str] | None = None) -> None:
        self.flags, self.log_path, self.prefix = list(flags), log_path, prefix or []
        self.process: subprocess.Popen | None = None
        self.port: int | None = None
        self.rest_port: int | None = None
        self._log_offset = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> float:
        """Start; returns the seconds until the gRPC port was open (models loaded)."""
        command = [sys.executable, "-m", "serving", "--port=0", "--grpc_bind_address=127.0.0.1"]
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            self.process = subprocess.Popen(
                [*self.prefix, *command, *self.flags], stdout=log, stderr=subprocess.STDOUT
            )
        while time.monotonic() - started < timeout and self.process.poll() is None:
            if match := self.GRPC_LINE.search(self.log()):
                self.port = int(match.group(1))
                if rest := self.REST_LINE.search(self.log()):
                    self.rest_port = int(rest.group(1))
                return time.monotonic() - started
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"server not up after {timeout}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        """What this run wrote to the log so far."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read().decode(errors="replace")

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def terminate(self, timeout: float = 60.0) -> tuple[int, float]:
        """SIGTERM, as Kubernetes sends; returns (exit code, seconds until it exited)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL (the OOM killer, a node failure): no drain, nothing cleaned up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def __enter__(self) -> ChildServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.kill()


def write_models_config(path: Path, bases: dict[str, Path]) -> Path:
    """A models.config serving each model name from its base path (latest version)."""
    entries = "".join(
        f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" }}\n'
        for name, base in bases.items()
    )
    path.write_text(f"model_config_list {{\n{entries}}}\n")
    return path


# -- a corpus of bad requests with the answer each must get (fuzz, memory, soak tests) -------

REQUEST_LIMIT_BYTES = 1 << 20  # --max_request_bytes of the servers these requests go to


@dataclasses.dataclass(frozen=True)
class BadGrpc:
    name: str
    request: predict_pb2.PredictRequest
    code: grpc.StatusCode
    fragment: str  # part of the error message


@dataclasses.dataclass(frozen=True)
class BadRest:
    name: str
    path: str
    body: bytes
    status: int
    fragment: str
    headers: tuple[tuple[str, str], ...] = ()


def _tensor(dtype: int, dims: list[int], **fields) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=dtype, **fields)
    for size in dims:
        proto.tensor_shape.dim.add(size=size)
    return proto


def _predict(model: str, signature: str = "", **inputs) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    for alias, proto in inputs.items():
        request.inputs[alias].CopyFrom(proto)
    return request


def bad_grpc_requests() -> list[BadGrpc]:
    """Predict requests to "tiny" (TinyModel) and "image" (ImageModel) that must fail."""
    invalid, exhausted = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED
    floats = tf.make_tensor_proto(np.ones((2, 1), np.float32))
    short = tf.make_tensor_proto(np.ones((3, 1), np.float32))
    short.tensor_content = short.tensor_content[:-2]
    png = png_bytes(8, 8)

    def image(*items: bytes) -> tensor_pb2.TensorProto:
        return tf.make_tensor_proto(list(items), dtype=tf.string)

    return [
        BadGrpc("dtype", _predict("tiny", x=tf.make_tensor_proto([[1]])), invalid, "DT_FLOAT"),
        BadGrpc("rank", _predict("tiny", x=tf.make_tensor_proto([1.0])), invalid, "shape"),
        BadGrpc(
            "negative dim", _predict("tiny", x=_tensor(1, [-1, 1])), invalid, "negative dimension"
        ),
        BadGrpc("huge dim", _predict("tiny", x=_tensor(1, [2**40, 1])), invalid, "too large"),
        BadGrpc(
            "fill past the limit",
            _predict("tiny", x=_tensor(1, [REQUEST_LIMIT_BYTES, 1], float_val=[1.0])),
            invalid,
            f"more than the limit of {REQUEST_LIMIT_BYTES}",
        ),
        BadGrpc(
            "huge string shape",
            _predict("image", image_bytes=_tensor(7, [2**31], string_val=[png])),
            invalid,
            "too large",
        ),
        BadGrpc("short tensor_content", _predict("tiny", x=short), invalid, "tensor_content"),
        BadGrpc(
            "uint8 out of range",
            _predict("tiny", x=_tensor(4, [1, 1], int_val=[300])),
            invalid,
            "out of bounds",
        ),
        BadGrpc(
            "signature", _predict("tiny", "nope", x=floats), grpc.StatusCode.FAILED_PRECONDITION, ""
        ),
        BadGrpc("input name", _predict("tiny", z=floats), invalid, "not found in request"),
        BadGrpc("no inputs", _predict("tiny"), invalid, "input size does not match"),
        BadGrpc("model", _predict("nope", x=floats), grpc.StatusCode.NOT_FOUND, "nope"),
        BadGrpc("empty name", _predict("", x=floats), invalid, "no name"),
        BadGrpc("empty batch", _predict("image", image_bytes=image()), invalid, "empty batch"),
        BadGrpc("not an image", _predict("image", image_bytes=image(b"GIF8")), invalid, ""),
        BadGrpc("truncated PNG", _predict("image", image_bytes=image(png[:40])), invalid, ""),
        BadGrpc(
            "image too large",
            _predict("image", image_bytes=image(png_bytes(300, 300))),
            invalid,
            "image too large",
        ),
        BadGrpc(
            "message over the limit",
            _predict("image", image_bytes=image(b"\0" * (REQUEST_LIMIT_BYTES + 1))),
            exhausted,
            "larger than max",
        ),
    ]


def bad_rest_requests() -> list[BadRest]:
    """REST requests to "tiny" and "image" that must fail, with their HTTP status."""
    deep = b'{"instances": ' + b"[" * 70 + b"1.0" + b"]" * 70 + b"}"
    nested = b"[" * 100_000 + b"]" * 100_000
    big = b'{"instances": [' + b"1.0," * (REQUEST_LIMIT_BYTES // 4) + b"1.0]}"
    form = (("Content-Type", "multipart/form-data; boundary=x"),)
    return [
        BadRest("empty body", "/v1/models/tiny:predict", b"", 400, "document is empty"),
        BadRest("not JSON", "/v1/models/tiny:predict", b"\x89PNG\r\n", 400, "JSON Parse error"),
        BadRest("not UTF-8", "/v1/models/tiny:predict", b'{"a": "\xff"}', 400, "Parse error"),
        BadRest("deep JSON", "/v1/models/tiny:predict", deep, 400, "levels deep"),
        BadRest("very deep JSON", "/v1/models/tiny:predict", nested, 400, "nested too deeply"),
        BadRest(
            "invalid base64",
            "/v1/models/image:predict",
            b'{"instances": [{"b64": "%%%"}]}',
            400,
            "Unable to base64 decode",
        ),
        BadRest(
            "base64 of no image",
            "/v1/models/image:predict",
            b'{"instances": [{"b64": "aGVsbG8="}]}',
            400,
            "",
        ),
        BadRest(
            "empty instances", "/v1/models/image:predict", b'{"instances": []}', 400, "No values"
        ),
        BadRest(
            "empty inputs",
            "/v1/models/image:predict",
            b'{"inputs": []}',
            400,
            "empty batch",
        ),
        BadRest("wrong type", "/v1/models/tiny:predict", b'{"instances": [["x"]]}', 400, "String"),
        BadRest(
            "multipart body", "/v1/models/tiny:predict", b"--x\r\n\r\n1\r\n--x--", 400, "", form
        ),
        BadRest("body over the limit", "/v1/models/tiny:predict", big, 413, "--max_request_bytes"),
        BadRest("traversal", "/v1/models/..%2F..%2Fetc:predict", b"{}", 400, "Invalid model name"),
        BadRest("newline in the name", "/v1/models/a%0Ab:predict", b"{}", 400, "control character"),
        BadRest("unknown model", "/v1/models/nope:predict", b'{"instances": [[1.0]]}', 404, ""),
    ]


# -- sustained load: every answer recorded (faults, drain, soak) -------------------------


@dataclasses.dataclass(frozen=True)
class Answer:
    started: float  # time.monotonic() when the request was sent
    seconds: float
    code: grpc.StatusCode
    version: int  # the version that answered (0 on error)
    y: float  # output "y" for x = 1 (NaN on error)


class RequestLoop:
    """`clients` threads, each with its own channel, calling Predict(model, x=[[1.0]]) back to
    back until stop(); every answer is kept for the test to judge (errors, versions, latency).
    Bounded: it stops by itself after `max_seconds`."""

    def __init__(
        self, target: str, model: str, clients: int = 2, max_seconds: float = 600.0
    ) -> None:
        self.target, self.model, self.max_seconds = target, model, max_seconds
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            for i in range(clients)
        ]

    def start(self) -> RequestLoop:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Answer]:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT_SECONDS)
        return sorted(self.answers, key=lambda answer: answer.started)

    def count(self) -> int:
        return len(self.answers)

    def _run(self) -> None:
        request = predict_request(self.model, x_input(1.0))
        deadline = time.monotonic() + self.max_seconds
        with grpc.insecure_channel(self.target) as channel:
            predict = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict
            while not self._stop.is_set() and time.monotonic() < deadline:
                started = time.monotonic()
                try:
                    response = predict(request, timeout=WAIT_SECONDS)
                    answer = Answer(
                        started,
                        time.monotonic() - started,
                        grpc.StatusCode.OK,
                        response.model_spec.version.value,
                        response.outputs["y"].float_val[0],
                    )
                except grpc.RpcError as err:
                    answer = Answer(started, time.monotonic() - started, err.code(), 0, math.nan)
                self.answers.append(answer)  # list.append is atomic

    def __enter__(self) -> RequestLoop:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def error_counts(answers: list[Answer]) -> dict[str, int]:
    """Failed answers by status code name."""
    counts: dict[str, int] = {}
    for answer in answers:
        if answer.code != grpc.StatusCode.OK:
            counts[answer.code.name] = counts.get(answer.code.name, 0) + 1
    return counts
